"""`taskq worker`'s options: defaults, environment twins, the command line winning, checks."""

from __future__ import annotations

import pytest

from taskq import AcknowledgeType
from taskq.cli.options import WorkerOptions, env_variable, parse_worker_args


def parse(*argv: str, **environ: str) -> WorkerOptions:
    return parse_worker_args(list(argv), environ)


def test_defaults() -> None:
    options = parse("app:broker")
    assert options == WorkerOptions(broker="app:broker")
    assert options.workers == 2
    assert options.max_async_tasks == 100
    assert options.max_prefetch == 0
    assert options.max_threadpool_threads == 8
    assert options.ack_type is AcknowledgeType.WHEN_SAVED
    assert options.shutdown_timeout == 5.0
    assert options.max_tasks_per_child is None
    assert options.reload is False
    assert options.fs_discover is False
    assert options.tasks_pattern == ("**/tasks.py",)
    assert options.log_level == "INFO"
    assert "%(processName)s" in options.log_format


def test_every_flag() -> None:
    options = parse(
        "app:broker",
        "app.tasks",
        "app.more_tasks",
        "--workers=3",
        "--max-async-tasks=7",
        "--max-prefetch=4",
        "--max-threadpool-threads=2",
        "--ack-type=WHEN_EXECUTED",
        "--shutdown-timeout=1.5",
        "--max-tasks-per-child=10",
        "--reload",
        "--fs-discover",
        "--tasks-pattern=jobs/*.py",
        "-tp=**/work.py",
        "--log-level=debug",
        "--log-format=%(message)s",
    )
    assert options == WorkerOptions(
        broker="app:broker",
        modules=("app.tasks", "app.more_tasks"),
        workers=3,
        max_async_tasks=7,
        max_prefetch=4,
        max_threadpool_threads=2,
        ack_type=AcknowledgeType.WHEN_EXECUTED,
        shutdown_timeout=1.5,
        max_tasks_per_child=10,
        reload=True,
        fs_discover=True,
        tasks_pattern=("jobs/*.py", "**/work.py"),
        log_level="DEBUG",
        log_format="%(message)s",
    )


def test_every_option_reads_its_environment_variable() -> None:
    options = parse(
        "app:broker",
        TASKQ_WORKER_WORKERS="3",
        TASKQ_WORKER_MAX_ASYNC_TASKS="7",
        TASKQ_WORKER_MAX_PREFETCH="4",
        TASKQ_WORKER_MAX_THREADPOOL_THREADS="2",
        TASKQ_WORKER_ACK_TYPE="manual",
        TASKQ_WORKER_SHUTDOWN_TIMEOUT="0",
        TASKQ_WORKER_MAX_TASKS_PER_CHILD="10",
        TASKQ_WORKER_RELOAD="1",
        TASKQ_WORKER_FS_DISCOVER="yes",
        TASKQ_WORKER_TASKS_PATTERN="jobs/*.py, **/work.py",
        TASKQ_WORKER_LOG_LEVEL="warning",
        TASKQ_WORKER_LOG_FORMAT="%(levelname)s %(message)s",
    )
    assert options == WorkerOptions(
        broker="app:broker",
        workers=3,
        max_async_tasks=7,
        max_prefetch=4,
        max_threadpool_threads=2,
        ack_type=AcknowledgeType.MANUAL,
        shutdown_timeout=0.0,
        max_tasks_per_child=10,
        reload=True,
        fs_discover=True,
        tasks_pattern=("jobs/*.py", "**/work.py"),
        log_level="WARNING",
        log_format="%(levelname)s %(message)s",
    )


@pytest.mark.parametrize(
    ("flags", "environ", "expected"),
    [
        (["--workers", "4"], {"TASKQ_WORKER_WORKERS": "8"}, {"workers": 4}),
        (["-w", "1"], {"TASKQ_WORKER_WORKERS": "8"}, {"workers": 1}),
        (["--no-reload"], {"TASKQ_WORKER_RELOAD": "1"}, {"reload": False}),
        (["--reload"], {"TASKQ_WORKER_RELOAD": "0"}, {"reload": True}),
        (["-tp", "a.py"], {"TASKQ_WORKER_TASKS_PATTERN": "b.py"}, {"tasks_pattern": ("a.py",)}),
        (
            ["--ack-type", "when_received"],
            {"TASKQ_WORKER_ACK_TYPE": "manual"},
            {"ack_type": "when_received"},
        ),
    ],
)
def test_the_command_line_wins_over_the_environment(
    flags: list[str], environ: dict[str, str], expected: dict[str, object]
) -> None:
    options = parse("app:broker", *flags, **environ)
    for name, value in expected.items():
        assert getattr(options, name) == value


def test_environment_variable_names() -> None:
    assert env_variable("--max-async-tasks") == "TASKQ_WORKER_MAX_ASYNC_TASKS"
    assert env_variable("--workers") == "TASKQ_WORKER_WORKERS"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workers", "0"], "argument --workers/-w: expected an integer >= 1, got '0'"),
        (["--workers", "two"], "argument --workers/-w: expected an integer >= 1, got 'two'"),
        (["--max-prefetch", "-1"], "expected an integer >= 0, got '-1'"),
        (["--max-async-tasks", "0"], "expected an integer >= 1"),
        (["--max-tasks-per-child", "0"], "expected an integer >= 1"),
        (
            ["--shutdown-timeout", "-2"],
            "expected a number of seconds from 0 to 2592000 (30 days), got '-2'",
        ),
        (["--shutdown-timeout", "nan"], "expected a number of seconds from 0 to"),
        (["--shutdown-timeout", "inf"], "from 0 to 2592000 (30 days), got 'inf'"),
        (["--shutdown-timeout", "1e300"], "from 0 to 2592000 (30 days), got '1e300'"),
        (["--ack-type", "sometimes"], "expected one of when_received, when_executed"),
        (["--log-level", "LOUD"], "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        (["--log-format", "%(message"], "not a logging format"),
        (["--tasks-pattern", " "], "expected a glob pattern"),
        (["--task-failure-level", "LOUD"], "expected one of DEBUG, INFO"),
        (["--events", "ftp://somewhere"], "no event store for the URL scheme 'ftp'"),
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    ],
)
def test_bad_values_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse("app:broker", *argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TASKQ_WORKER_WORKERS", "many", "expected an integer >= 1, got 'many'"),
        ("TASKQ_WORKER_RELOAD", "maybe", "expected 1/0, true/false, yes/no or on/off"),
        ("TASKQ_WORKER_SHUTDOWN_TIMEOUT", "soon", "expected a number of seconds"),
        ("TASKQ_WORKER_SHUTDOWN_TIMEOUT", "1e400", "expected a number of seconds from 0 to"),
    ],
)
def test_bad_environment_values_name_the_variable(
    variable: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse("app:broker", **{variable: value})
    assert exit_info.value.code == 2
    assert f"environment variable {variable}={value!r}: {message}" in capsys.readouterr().err


def test_the_logging_and_events_options_read_their_environment_variables() -> None:
    options = parse(
        "app:broker",
        TASKQ_WORKER_LOG_FORMAT="json",
        TASKQ_WORKER_LOG_TASKS="true",
        TASKQ_WORKER_TASK_FAILURE_LEVEL="warning",
        TASKQ_WORKER_EVENTS="sqlite://events.db",
    )
    assert (options.log_format, options.log_tasks) == ("json", True)
    assert (options.task_failure_level, options.events) == ("WARNING", "sqlite://events.db")
    flags = parse(
        "app:broker", "--no-log-tasks", "--events", "memory://", TASKQ_WORKER_LOG_TASKS="1"
    )
    assert (flags.log_tasks, flags.events) == (False, "memory://")


@pytest.mark.parametrize("value", ["", "0", "false", "No", "off"])
def test_false_environment_values(value: str) -> None:
    assert parse("app:broker", TASKQ_WORKER_RELOAD=value).reload is False


def test_a_broker_target_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse()
    assert "the following arguments are required: broker" in capsys.readouterr().err


def test_the_help_shows_each_option_with_its_default_and_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse("--help")
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for shown in (
        "worker processes to run (default: 2) [TASKQ_WORKER_WORKERS]",
        "(default: when_saved) [TASKQ_WORKER_ACK_TYPE]",
        "(default: off) [TASKQ_WORKER_RELOAD]",
        "(default: **/tasks.py) [TASKQ_WORKER_TASKS_PATTERN]",
        "(default: none) [TASKQ_WORKER_MAX_TASKS_PER_CHILD]",
    ):
        assert shown in text


@pytest.mark.parametrize("flag", ["--log-level", "--task-failure-level"])
def test_taskiqs_fatal_level_is_critical(flag: str) -> None:
    options = parse("app:broker", flag, "fatal")
    assert getattr(options, flag.removeprefix("--").replace("-", "_")) == "CRITICAL"
    assert parse("app:broker", TASKQ_WORKER_LOG_LEVEL="FATAL").log_level == "CRITICAL"
