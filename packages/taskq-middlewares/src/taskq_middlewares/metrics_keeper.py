"""The process that serves a worker group's metrics for as long as the group runs.

Worker processes come and go (``--max-tasks-per-child``, crashes, kills), often faster than a
new one starts: an endpoint served by a worker is down between two. So the workers of a
``taskq worker`` group start one small process of their own, the keeper: it imports only
prometheus-client and this package (never the user's app), serves the group's directory with
a `MetricsServer`, and exits when the group's manager is gone. It holds the group's endpoint
lock while it serves; every worker waits for that lock in a thread, and the one that gets it
(no keeper yet, or it died) starts a keeper at once, handing it the lock: workers starting at
once start one keeper, and a killed keeper is replaced without polling.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from taskq_middlewares.metric_files import is_alive
from taskq_middlewares.metrics_server import MetricsServer, MetricsTLS, take_turn

logger = logging.getLogger("taskq.prometheus")

#: Seconds at least between two keepers started by one worker (one that cannot start is not
#: started again in a tight loop).
KEEPER_RESTART_S = 1.0
#: Seconds between two checks by the keeper that the group's manager still runs.
MANAGER_CHECK_S = 0.5


class KeeperLauncher:
    """In a worker process: sees that a keeper serves the group's endpoint, and starts another."""

    def __init__(
        self, directory: Path, addr: str, port: int, tls: MetricsTLS | None, group: int
    ) -> None:
        """Prepare; nothing happens before `start`."""
        self.directory = directory
        self.addr = addr
        self.port = port
        self.tls = tls
        self.group = group
        self._stopping = threading.Event()
        self._last_start = -KEEPER_RESTART_S

    def start(self) -> None:
        """Wait in a background thread for the group's endpoint lock; start a keeper each time.

        The lock is free when no keeper runs (none yet, or it died): the thread gets it at once
        then, and hands it to the keeper it starts.
        """
        threading.Thread(target=self._keep_a_keeper, daemon=True).start()

    def stop(self) -> None:
        """Stop starting keepers; the keeper goes on serving the group."""
        # The thread waits in flock, which nothing interrupts: it stops when it next wakes.
        self._stopping.set()

    def _keep_a_keeper(self) -> None:
        while not self._stopping.is_set():
            turn = take_turn(self.directory, self.addr, self.port, wait=True)
            if turn is None or self._stopping.is_set() or not is_alive(self.group):
                if turn is not None:
                    turn.close()
                return
            too_soon = self._last_start + KEEPER_RESTART_S - time.monotonic()
            if too_soon > 0 and self._stopping.wait(too_soon):
                turn.close()
                return
            self._last_start = time.monotonic()
            with turn:  # the keeper inherits the locked file: no other worker starts one
                self._start_keeper(turn.fileno())

    def _start_keeper(self, turn_fd: int) -> None:
        subprocess.Popen(
            [sys.executable, "-m", __name__, *self._arguments(turn_fd)],
            stdin=subprocess.DEVNULL,
            pass_fds=(turn_fd,),
            start_new_session=True,  # a Ctrl-C meant for the manager leaves it serving
        )
        logger.debug("Metrics: started a keeper for %s:%d", self.addr, self.port)

    def _arguments(self, turn_fd: int) -> list[str]:
        arguments = [str(self.directory), self.addr, str(self.port), str(self.group)]
        arguments.append(str(turn_fd))
        if self.tls is not None:
            arguments += [self.tls.certfile, self.tls.keyfile, self.tls.client_cafile]
        return arguments


def main(argv: list[str] | None = None) -> None:
    """Serve a group's metrics until its manager is gone (run by `KeeperLauncher`)."""
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("directory", type=Path)
    parser.add_argument("addr")
    parser.add_argument("port", type=int)
    parser.add_argument("group", type=int, help="the pid of the group's manager")
    parser.add_argument("turn_fd", type=int, help="the group's endpoint lock, held")
    parser.add_argument("tls", nargs="*", help="certfile keyfile client_cafile")
    options = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s][metrics-keeper][%(levelname)s] %(name)s: %(message)s",
    )
    tls = MetricsTLS(*options.tls) if options.tls else None
    server = MetricsServer(options.directory, options.addr, options.port, tls)
    server.start(os.fdopen(options.turn_fd, "a+b"))
    try:
        while is_alive(options.group):
            time.sleep(MANAGER_CHECK_S)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
