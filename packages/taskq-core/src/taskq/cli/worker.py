"""``taskq worker``: check the app can be imported, then run the worker processes."""

from __future__ import annotations

import logging
import multiprocessing
import sys
from pathlib import Path

from taskq.cli.logs import configure_logging
from taskq.cli.options import WorkerOptions, parse_worker_args
from taskq.cli.process_manager import ProcessManager
from taskq.cli.reload import ChangeWatcher
from taskq.cli.targets import TargetError
from taskq.cli.worker_process import import_app

logger = logging.getLogger("taskq.cli")

#: Exit status of a usage error: a bad option or a target that cannot be imported.
EXIT_USAGE = 2


def main(argv: list[str]) -> int:
    """Run worker processes that execute the tasks a broker delivers."""
    try:
        options = parse_worker_args(argv)
    except SystemExit as exit_:  # argparse exits on --help and on usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    multiprocessing.current_process().name = "manager"
    if options.configure_logging:
        configure_logging(options.log_level, options.log_format)
    try:
        import_app(options, in_worker=False)
    except TargetError as error:
        print(f"taskq worker: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return run(options)


def run(options: WorkerOptions) -> int:
    """Run the worker processes ``options`` describe until a signal stops them."""
    roots = [Path(directory) for directory in options.reload_dir] or [Path.cwd()]
    watcher = ChangeWatcher(roots) if options.reload else None
    logger.info(
        "Starting %d worker process(es) for %s%s",
        options.workers,
        options.broker,
        " (reloading on code changes)" if watcher else "",
    )
    return ProcessManager(options, watcher=watcher).run()
