"""The plugin's interface: where targets come from, the capability table, the report, xfails.

Each test runs ``pytest --pyargs taskq_conformance`` in a scratch directory; most select one
or a few suite checks with ``-k``, since the point here is the plugin, not the suite.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import taskq_conformance

HERE = Path(__file__).resolve().parent
BROKER = "taskq_inmemory.conformance:make_broker"
BACKEND = "taskq_inmemory.conformance:make_result_backend"
#: One quick check of the broker suite.
ONE_CHECK = ("-k", "test_startup_and_shutdown_twice")
#: Plugins a run of the suite does without: the cache, and Hypothesis's, which the suite does
#: not use and which imports Hypothesis (0.7 s of CPU per run).
QUIET_PLUGINS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def run_suite(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run the suite the way a third party does, with ``args`` after the package name."""
    return pytester.runpytest_subprocess("--pyargs", "taskq_conformance", *args, *QUIET_PLUGINS)


# -- targets -------------------------------------------------------------------------------------


def test_without_a_target_the_run_fails_and_says_how_to_give_one(pytester: pytest.Pytester):
    result = run_suite(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*taskq-conformance needs something to test*",
            "*pytest --pyargs taskq_conformance --taskq-broker mypkg.testing:make_broker*",
        ]
    )
    assert result.parseoutcomes().get("passed", 0) == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module:make_broker", "--taskq-broker: cannot import 'no_such_module'*"),
        (
            "taskq_inmemory.conformance:no_such_factory",
            "--taskq-broker: 'taskq_inmemory.conformance:no_such_factory' is not a callable*",
        ),
        ("taskq_inmemory.conformance", "--taskq-broker: expected module:attribute*"),
    ],
    ids=["module", "attribute", "no-colon"],
)
def test_a_target_that_cannot_be_loaded_is_a_one_line_error(
    pytester: pytest.Pytester, spec: str, message: str
):
    result = run_suite(pytester, "--taskq-broker", spec)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.errlines
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in "\n".join(result.outlines + result.errlines)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (
            "def make():\n    raise RuntimeError('no server at 10.0.0.1')",
            "--taskq-broker: the factory 'targets:make' raised RuntimeError: no server at 10.0.0.1",
        ),
        (
            "def make(url):\n    return None",
            "--taskq-broker: the factory 'targets:make' raised TypeError: make() missing 1*",
        ),
        (
            "from taskq_inmemory.conformance import make_result_backend as make",
            "--taskq-broker: the factory 'targets:make' made an InmemoryResultBackend, "
            "not a broker (a subclass of taskq.AsyncBroker)",
        ),
        (
            "def make():\n    return None",
            "--taskq-broker: the factory 'targets:make' made a NoneType, not a broker*",
        ),
    ],
    ids=["raises", "needs-arguments", "another-kind", "none"],
)
def test_a_factory_that_does_not_make_an_instance_is_a_one_line_error(
    pytester: pytest.Pytester, factory: str, message: str
):
    pytester.makepyfile(targets=factory)
    result = run_suite(pytester, "--taskq-broker", "targets:make")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.outlines
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.errlines
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in "\n".join(result.outlines + result.errlines)


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ('"delayed"', "'delayed', which is no capability of a broker (those are: acks, *)"),
        ("Capability.NOTIFY", "'notify', which is no capability of a broker*"),
    ],
    ids=["misspelt", "another-kinds"],
)
def test_a_capability_the_kind_does_not_have_is_a_one_line_error(
    pytester: pytest.Pytester, declared: str, message: str
):
    pytester.makepyfile(
        targets=f"""
        from taskq import Capability
        from taskq_inmemory import InMemoryBroker

        class Broker(InMemoryBroker):
            capabilities = InMemoryBroker.capabilities | {{{declared}}}

        make = Broker
        """
    )
    result = run_suite(pytester, "--taskq-broker", "targets:make")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.outlines
    result.stderr.fnmatch_lines([f"ERROR: --taskq-broker: the broker declares {message}"])


def test_an_async_factory_is_awaited(pytester: pytest.Pytester):
    pytester.makepyfile(
        targets="""
        from taskq_inmemory.conformance import make_broker

        async def make():
            return make_broker()
        """
    )
    result = run_suite(pytester, "--taskq-broker", "targets:make", *ONE_CHECK)
    result.assert_outcomes(passed=1)


def test_a_check_waiting_for_ever_fails_at_its_deadline_naming_the_call(pytester: pytest.Pytester):
    pytester.makepyfile(
        targets="""
        import asyncio

        from taskq_inmemory.conformance import make_broker


        def make():
            broker = make_broker()

            async def kick(message):
                await asyncio.Event().wait()

            broker.kick = kick
            return broker
        """
    )
    result = pytester.runpytest_subprocess(
        *("--pyargs", "taskq_conformance", "--taskq-broker", "targets:make"),
        *("--taskq-check-timeout", "1", "--taskq-model-budget", "1"),
        *("-k", "test_labels_round_trip", *QUIET_PLUGINS, "-p", "no:timeout"),
        timeout=60,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the check did not end within 2 s (--taskq-check-timeout, plus the model budget);"
            " it was waiting at test_labels_round_trip (suite_broker.py:*: await broker.kick(*)),"
            # the qualified name (make.<locals>.kick) from Python 3.11, the name before
            " in *kick (targets.py:*: await asyncio.Event().wait())*"
        ]
    )


@pytest.mark.parametrize("config_file", ["tox.ini", "pyproject.toml"])
def test_target_from_an_ini_key(pytester: pytest.Pytester, config_file: str):
    if config_file == "tox.ini":
        pytester.makeini(f"[pytest]\ntaskq_broker = {BROKER}\n")
    else:
        pytester.makepyprojecttoml(f'[tool.pytest.ini_options]\ntaskq_broker = "{BROKER}"\n')
    result = run_suite(pytester, *ONE_CHECK)
    result.assert_outcomes(passed=1)


def test_target_from_an_environment_variable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TASKQ_BROKER", BROKER)
    result = run_suite(pytester, *ONE_CHECK)
    result.assert_outcomes(passed=1)


def test_the_command_line_wins_over_ini_and_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    # were either of these used, the run would stop: neither can be imported
    pytester.makeini("[pytest]\ntaskq_broker = no_such_module:from_ini\n")
    monkeypatch.setenv("TASKQ_BROKER", "no_such_module:from_env")
    result = run_suite(pytester, "--taskq-broker", BROKER, *ONE_CHECK)
    result.assert_outcomes(passed=1)


def test_target_from_a_conftest_hook(pytester: pytest.Pytester):
    pytester.makeconftest(
        """
        from taskq_inmemory.conformance import make_broker

        def pytest_taskq_broker_factory(config):
            return make_broker
        """
    )
    result = run_suite(pytester, *ONE_CHECK, "--taskq-report", "report.json")
    result.assert_outcomes(passed=1)
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["targets"] == {"broker": "hook"}


# -- the table and the report --------------------------------------------------------------------


def test_the_capability_table_is_printed(pytester: pytest.Pytester):
    result = run_suite(
        pytester, "--taskq-broker", BROKER, "-k", "test_startup_and_shutdown_twice or test_acks"
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*= taskq conformance =*", "capability*passed*failed*skipped"])
    result.stdout.re_match_lines([r"broker: acks\s+0\s+0\s+1$", r"broker: mandatory\s+1\s+0\s+0$"])


def test_the_report_is_written_as_json(pytester: pytest.Pytester):
    result = run_suite(
        pytester,
        "--taskq-broker",
        BROKER,
        "--taskq-result-backend",
        BACKEND,
        "-k",
        "test_startup_and_shutdown_twice or test_set_get_and_is_ready or test_cross_process",
        "--taskq-report",
        "report.json",
    )
    assert result.ret == pytest.ExitCode.OK
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["targets"] == {"broker": BROKER, "result_backend": BACKEND}
    assert report["declared"] == {
        "broker": ["batch_send", "cancel", "delay", "inspect", "load_balancing", "priority"],
        "result_backend": ["notify", "progress", "ttl"],
    }
    assert report["capabilities"] == {
        "broker: mandatory": {"passed": 1, "failed": 0, "skipped": 0},
        "broker: cross_process": {"passed": 0, "failed": 0, "skipped": 1},
        "result_backend: mandatory": {"passed": 1, "failed": 0, "skipped": 0},
        "result_backend: cross_process": {"passed": 0, "failed": 0, "skipped": 1},
    }


def test_messages_left_in_the_queue_are_set_aside_and_reported(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    # an earlier run was stopped mid-check: its messages wait first in the queue
    monkeypatch.setenv("TASKQ_TEST_QUEUE_DIR", str(pytester.path / "queue"))
    result = run_suite(
        pytester,
        "--taskq-broker",
        "implementations:make_directory_broker_with_leftovers",
        "-k",
        "test_each_message_is_delivered_exactly_once or test_reject or test_acks",
        "--taskq-report",
        "report.json",
    )
    result.assert_outcomes(passed=3)
    result.stdout.re_match_lines(
        [
            r"7 message\(s\) in the queue were not sent by the check that received them: each "
            r"was taken off the queue \(acknowledged, where the broker has acks\) and left out "
            r"of the check$",
            r"  4 without the suite's tag \(not sent by this version of the suite\); the first "
            r"received by suite_broker\.py::test_each_message_is_delivered_exactly_once: b'7'$",
            r"  3 from earlier runs \(0123456789ab\); the first received by suite_broker\.py::"
            r"test_each_message_is_delivered_exactly_once: b'tqc:0123456789ab:3:acked'$",
        ]
    )
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["set_aside"] == {
        "without the suite's tag (not sent by this version of the suite)": 4,
        "from earlier runs": 3,
    }


def test_messages_a_consumer_in_another_process_sets_aside_are_reported(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    # the round of seed 5 starts with a consumer in another process: it takes the leftovers
    monkeypatch.setenv("TASKQ_TEST_QUEUE_DIR", str(pytester.path / "queue"))
    result = run_suite(
        pytester,
        "--taskq-broker",
        "implementations:make_directory_broker_with_leftovers",
        "-k",
        "test_random_rounds_against_the_model",
        "--taskq-model-seed",
        "5",
    )
    result.assert_outcomes(passed=1)
    result.stdout.re_match_lines([r"7 message\(s\) in the queue were not sent by the check"])


# -- capabilities and known failures -------------------------------------------------------------


def test_undeclared_capabilities_are_skipped_naming_the_capability(pytester: pytest.Pytester):
    result = run_suite(
        pytester,
        "--taskq-broker",
        BROKER,
        "--taskq-result-backend",
        BACKEND,
        "-k",
        "test_acks or test_reject or test_redelivery or test_cross_process"
        " or test_delay_label_is_refused or test_cancel_is_refused",
        "-rs",
    )
    assert result.ret == pytest.ExitCode.OK
    for reason in [
        "broker does not declare acks",
        "broker does not declare reject",
        "broker does not declare redelivery",
        "broker does not declare cross_process",
        "result_backend does not declare cross_process",
        "broker declares delay",  # the check that an undeclared delay is refused
        "broker declares cancel",  # the check that cancel without a store is refused
    ]:
        result.stdout.fnmatch_lines([f"SKIPPED *: {reason}"])
    assert result.parseoutcomes().get("passed", 0) == 0


def test_a_listed_failing_check_is_xfailed_and_the_run_passes(pytester: pytest.Pytester):
    pytester.path.joinpath("known-failures.txt").write_text(
        "# delay is not honoured yet\nsuite_broker.py::test_delay\n"
    )
    result = run_suite(
        pytester,
        "--taskq-broker",
        "implementations:make_undelaying_broker",
        "-k",
        "test_delay or test_startup_and_shutdown_twice",
        "--taskq-xfail-file",
        "known-failures.txt",
    )
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=1, xfailed=1)


def test_a_listed_passing_check_fails_the_run_as_a_strict_xpass(pytester: pytest.Pytester):
    pytester.path.joinpath("known-failures.txt").write_text(
        "suite_broker.py::test_startup_and_shutdown_twice\n"
    )
    result = run_suite(
        pytester, "--taskq-broker", BROKER, *ONE_CHECK, "--taskq-xfail-file", "known-failures.txt"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*XPASS(strict)*"])
    result.assert_outcomes(failed=1)


def test_a_missing_xfail_file_is_a_usage_error(pytester: pytest.Pytester):
    result = run_suite(pytester, "--taskq-broker", BROKER, "--taskq-xfail-file", "no-such-file.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --taskq-xfail-file: cannot read no-such-file.txt*"])


# -- the user's own pytest configuration ---------------------------------------------------------


def test_the_suite_is_collected_whatever_python_files_and_functions_say(
    pytester: pytest.Pytester,
):
    pytester.makeini(
        "[pytest]\npython_files = check_*.py\npython_functions = check_*\npython_classes = Check\n"
    )
    result = run_suite(
        pytester,
        "--taskq-broker",
        BROKER,
        "-k",
        "test_startup_and_shutdown_twice or test_bytes_round_trip_exactly",
    )
    result.assert_outcomes(passed=5)


@pytest.mark.parametrize("python_files", ["*.py", "suite_*.py"])
def test_each_check_runs_once_when_python_files_matches_the_suite(
    pytester: pytest.Pytester, python_files: str
):
    pytester.makeini(f"[pytest]\npython_files = {python_files}\n")
    result = run_suite(pytester, "--taskq-broker", BROKER, *ONE_CHECK)
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_async_checks_run_in_any_asyncio_mode(pytester: pytest.Pytester, mode: str):
    pytester.makeini(f"[pytest]\nasyncio_mode = {mode}\n")
    result = run_suite(
        pytester,
        "--taskq-broker",
        BROKER,
        "-k",
        "test_startup_and_shutdown_twice or test_labels_round_trip",
    )
    result.assert_outcomes(passed=2)


def test_cross_process_checks_import_the_target_as_this_run_does(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    # the target is importable through the user's `pythonpath` ini setting, as is common
    others = [p for p in os.environ["PYTHONPATH"].split(os.pathsep) if p and p != str(HERE)]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(others))
    monkeypatch.setenv("TASKQ_TEST_RESULTS_DIR", str(pytester.path / "results"))
    pytester.makeini(f"[pytest]\npythonpath = {HERE}\n")
    result = run_suite(
        pytester,
        "--taskq-result-backend",
        "implementations:make_shared_directory_backend",
        "-k",
        "test_cross_process",
    )
    result.assert_outcomes(passed=1)


def test_the_suite_is_found_through_a_symlinked_install(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    # e.g. a virtualenv whose lib64 is a link to lib, or a macOS /tmp (a link to /private/tmp)
    link = pytester.path / "linked-site-packages"
    try:
        link.symlink_to(Path(taskq_conformance.__file__).resolve().parent.parent)
    except OSError:
        pytest.skip("symbolic links cannot be made here")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(link), os.environ["PYTHONPATH"]]))
    result = run_suite(pytester, "--taskq-broker", BROKER, *ONE_CHECK)
    result.assert_outcomes(passed=1)
