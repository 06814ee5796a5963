"""The suite fails each deliberately broken implementation, on the check meant to catch it.

Every broken implementation in `implementations.py` has one defect. The suite is run against it
as a third party runs it (``pytest --pyargs taskq_conformance --taskq-broker
implementations:make_dropping_broker``) and must fail, on the check named here; the correct
implementations must pass. Where that check must be the only one to fail, the run collects the
whole suite of its kind; otherwise just that check (``-k "suite_broker and test_x"``): every
check of the whole suite costs CPU time.

The suite waits up to 30 s for a message that never comes (one dropped, one never redelivered),
so one run can take a minute. The runs are therefore started together, in the background, when
the first test of this module needs one, and each test waits for its own run's outcome.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
#: kind of target -> (its command-line option, its suite module)
KINDS = {
    "broker": ("--taskq-broker", "suite_broker.py"),
    "result_backend": ("--taskq-result-backend", "suite_result_backend.py"),
    "schedule_source": ("--taskq-schedule-source", "suite_schedule_source.py"),
    "event_store": ("--taskq-event-store", "suite_event_store.py"),
    "limiter": ("--taskq-limiter", "suite_limiter.py"),
    "unique_store": ("--taskq-unique-store", "suite_unique_store.py"),
    "cancellation_store": ("--taskq-cancellation-store", "suite_cancellation_store.py"),
}
#: Runs of the suite at once (they mostly wait on timeouts, not on the CPU).
PARALLEL_RUNS = 4
#: Seconds one run of a suite may take.
RUN_TIMEOUT = 300

# A test waits for its run, which may queue behind the others of the batch.
pytestmark = pytest.mark.timeout(3 * RUN_TIMEOUT)
#: Environment variables that would give a run a target besides the one under test.
TARGET_VARIABLES = (
    "TASKQ_BROKER",
    "TASKQ_RESULT_BACKEND",
    "TASKQ_SCHEDULE_SOURCE",
    "TASKQ_EVENT_STORE",
    "TASKQ_LIMITER",
    "TASKQ_UNIQUE_STORE",
    "TASKQ_CANCELLATION_STORE",
)
#: A failed check in pytest's short summary: ``FAILED <path>/suite_broker.py::test_x - why``.
FAILED_LINE = re.compile(r"FAILED \S*?(suite_\w+\.py::\S+)")


@dataclass(frozen=True)
class Case:
    """One run of the suite: the targets it is given and what its outcome must show."""

    name: str
    targets: tuple[str, ...]
    #: The suite check (``suite_module.py::test_name[id]``) that must fail; None: all must pass.
    catching: str | None = None
    #: Rows the capability table must print (regular expressions).
    rows: tuple[str, ...] = ()
    #: Whether ``catching`` must be the only check that fails (the check is needed).
    only: bool = False
    #: A ``-k`` expression selecting the checks to run ("": the whole suite).
    selection: str = ""

    def __str__(self) -> str:
        return self.name


def broken(
    kind: str,
    factory: str,
    check: str,
    *,
    only: bool = False,
    suite: str = "",
    whole_suite: bool = False,
) -> Case:
    """A run against ``implementations:<factory>`` that the suite ``check`` must fail.

    ``suite`` names the suite module when it is not the kind's main one; ``only``: no other
    check may fail. The run collects the whole suite when ``only`` or ``whole_suite`` asks
    for it, else just ``check`` (each suite run is a pytest process: CI time).
    """
    option, main_suite = KINDS[kind]
    targets: tuple[str, ...] = (option, f"implementations:{factory}")
    if suite.endswith("_model.py"):
        targets += MODEL_BUDGET
    name = factory.removeprefix("make_")
    catching = f"{suite or main_suite}::{check}"
    selection = ""
    if not (only or whole_suite):  # the check's module and name (not its parameters)
        selection = f"{(suite or main_suite).removesuffix('.py')} and {check.split('[')[0]}"
    return Case(name, targets, catching, only=only, selection=selection)


#: A model check's budget when it must find a defect (the default is 10 s): on this machine each
#: is found within 25 s; a CI machine under load may be several times slower.
MODEL_BUDGET = ("--taskq-model-budget", "90")
MODEL_CHECK = "test_random_rounds_against_the_model"
BROKER_MODEL = "suite_broker_model.py"
LEASES = "suite_broker_leases.py"


#: A factory making a fresh store per call: the failures must point at the factory contract.
FRESH_STORE_PER_CALL = broken(
    "broker",
    "make_fresh_directory_broker",
    "test_redelivery_after_the_consumer_is_gone",
    whole_suite=True,
)

# Slowest first: the batch then takes about as long as its slowest run.
BROKEN = [
    FRESH_STORE_PER_CALL,
    broken(
        "broker", "make_queued_only_cancelling_broker", "test_a_cancelled_running_task_is_stopped"
    ),
    # found by the model checks (the budget is the longest a search may take)
    broken("broker", "make_prefetch_losing_broker", MODEL_CHECK, suite=BROKER_MODEL, only=True),
    broken(
        "broker",
        "make_priority_before_listening_broker",
        MODEL_CHECK,
        suite=BROKER_MODEL,
        only=True,
    ),
    broken("broker", "make_rejected_returning_broker", MODEL_CHECK, suite=BROKER_MODEL),
    broken(
        "broker", "make_sender_only_takeover_broker", MODEL_CHECK, suite=BROKER_MODEL, only=True
    ),
    broken(
        "result_backend",
        "make_stale_backend",
        MODEL_CHECK,
        suite="suite_result_backend_model.py",
        only=True,
    ),
    broken(
        "result_backend",
        "make_stale_on_the_spot_backend",
        "test_result_now_gives_the_latest_result_or_none",
    ),
    broken(
        "result_backend",
        "make_one_progress_slot_backend",
        MODEL_CHECK,
        suite="suite_result_backend_model.py",
        only=True,
    ),
    broken(
        "schedule_source",
        "make_tombstoning_source",
        MODEL_CHECK,
        suite="suite_schedule_source_model.py",
        only=True,
    ),
    broken(
        "schedule_source",
        "make_claim_forgetting_source",
        MODEL_CHECK,
        suite="suite_schedule_source_model.py",
        only=True,
    ),
    # timing bounds and live-consumer safety
    broken("broker", "make_late_delay_broker", "test_delay", only=True),
    # (the model check's vanishing consumer catches it too)
    broken(
        "broker",
        "make_no_takeover_broker",
        "test_held_messages_come_back_when_their_consumer_vanishes",
        suite=LEASES,
    ),
    broken(
        "broker",
        "make_own_never_taken_over_broker",
        "test_held_messages_come_back_when_their_consumer_vanishes",
        suite=LEASES,
        only=True,
    ),
    broken(
        "broker",
        "make_lease_dropping_broker",
        "test_a_live_consumer_keeps_what_it_holds",
        suite=LEASES,
    ),
    broken(
        "result_backend",
        "make_overstaying_wait_backend",
        "test_wait_ready_returns_in_time",
        only=True,
    ),
    broken(
        "result_backend",
        "make_slow_notify_backend",
        "test_notify_wakes_a_waiter_without_polling",
        only=True,
    ),
    broken("broker", "make_dropping_broker", "test_each_message_is_delivered_exactly_once"),
    broken("broker", "make_non_redelivering_broker", "test_redelivery_after_the_consumer_is_gone"),
    broken("broker", "make_endless_listen_broker", "test_listen_ends_after_shutdown"),
    broken(
        "broker",
        "make_cancellation_swallowing_broker",
        "test_a_listen_cancelled_while_it_starts_ends",
    ),
    broken("broker", "make_ack_ignoring_broker", "test_acks"),
    broken("broker", "make_duplicating_broker", "test_each_message_is_delivered_exactly_once"),
    broken("broker", "make_batch_repeating_broker", "test_batch_send_delivers_each_message_once"),
    broken("broker", "make_mangling_broker", "test_bytes_round_trip_exactly[non-utf8]"),
    broken("broker", "make_label_losing_broker", "test_labels_round_trip"),
    broken("broker", "make_priority_ignoring_broker", "test_priority_under_a_backlog"),
    # a backlog missing a message fails after the delivery timeout, not the run's
    broken("broker", "make_priority_dropping_broker", "test_priority_under_a_backlog"),
    broken("broker", "make_undelaying_broker", "test_delay"),
    broken("broker", "make_early_delay_broker", "test_delay"),
    broken("broker", "make_zero_cutting_broker", "test_bytes_round_trip_exactly[zero-bytes]"),
    broken("broker", "make_one_slot_broker", "test_each_message_is_delivered_exactly_once"),
    broken("broker", "make_miscounting_broker", "test_inspect_counts_messages_by_state"),
    broken(
        "broker", "make_cancellation_forgetting_broker", "test_a_cancelled_queued_task_never_runs"
    ),
    broken(
        "broker",
        "make_undeclared_acks_broker",
        "test_messages_are_not_ackable_without_the_capability",
    ),
    broken("result_backend", "make_polling_backend", "test_notify_wakes_a_waiter_without_polling"),
    broken("result_backend", "make_ttl_ignoring_backend", "test_ttl"),
    broken("result_backend", "make_mixing_backend", "test_concurrent_writers_never_mix_results"),
    broken(
        "result_backend", "make_is_err_losing_backend", "test_error_results_keep_type_and_message"
    ),
    broken("result_backend", "make_progress_dropping_backend", "test_progress"),
    broken(
        "schedule_source",
        "make_args_losing_source",
        "test_added_schedules_come_back_intact_and_can_be_deleted",
    ),
    broken(
        "schedule_source",
        "make_undeleting_source",
        "test_added_schedules_come_back_intact_and_can_be_deleted",
    ),
    broken(
        "schedule_source",
        "make_claiming_everything_source",
        "test_each_fire_is_claimed_once_among_schedulers",
    ),
    broken(
        "schedule_source",
        "make_undeclared_dynamic_source",
        "test_adding_is_refused_without_the_capability",
    ),
    broken("event_store", "make_event_dropping_store", "test_a_tasks_events_come_back_in_order"),
    broken("event_store", "make_reordering_store", "test_a_tasks_events_come_back_in_order"),
    broken(
        "event_store",
        "make_message_losing_store",
        "test_sent_messages_and_retry_links_are_kept_byte_for_byte",
    ),
    broken(
        "event_store",
        "make_partly_refusing_store",
        "test_a_batch_with_a_time_that_is_not_a_number_is_refused_whole",
    ),
    broken(
        "event_store",
        "make_retention_ignoring_store",
        "test_retention_by_count_drops_the_oldest_tasks_whole",
    ),
    broken(
        "event_store",
        "make_long_id_keeping_store",
        "test_a_task_id_or_name_too_long_is_kept_shortened",
        only=True,
    ),
    broken(
        "event_store",
        "make_long_text_keeping_store",
        "test_texts_too_long_are_kept_bounded",
        only=True,
    ),
    broken(
        "event_store",
        "make_future_trusting_store",
        "test_a_worker_whose_heartbeat_is_dated_ahead_is_not_alive",
        only=True,
    ),
    broken("limiter", "make_refusal_counting_limiter", "test_a_refused_start_does_not_count"),
    broken(
        "limiter", "make_racing_limiter", "test_concurrent_decisions_never_hand_out_more_places"
    ),
    broken(
        "limiter", "make_never_releasing_limiter", "test_a_concurrency_place_is_held_until_released"
    ),
    broken(
        "unique_store", "make_racing_unique_store", "test_of_concurrent_claims_exactly_one_wins"
    ),
    broken(
        "unique_store", "make_disowning_unique_store", "test_a_holder_claiming_its_key_again_has_it"
    ),
    broken("unique_store", "make_freeing_unique_store", "test_only_the_holder_frees_its_key"),
    broken(
        "unique_store", "make_ttl_ignoring_unique_store", "test_a_key_frees_itself_after_its_ttl"
    ),
    broken(
        "unique_store", "make_key_cutting_unique_store", "test_long_keys_are_held_apart_and_once"
    ),
    broken(
        "unique_store",
        "make_long_key_digesting_unique_store",
        "test_a_key_like_a_digest_is_apart_from_a_long_key",
    ),
    broken(
        "cancellation_store",
        "make_forgetful_cancellation_store",
        "test_a_cancellation_is_recorded_with_its_reason",
    ),
    broken(
        "cancellation_store",
        "make_deaf_cancellation_store",
        "test_a_listener_hears_of_each_later_cancellation",
        only=True,
    ),
    broken(
        "cancellation_store",
        "make_never_expiring_cancellation_store",
        "test_a_cancellation_expires_after_its_ttl",
        only=True,
    ),
    broken(
        "cancellation_store",
        "make_unshared_cancellation_store",
        "test_instances_see_each_others_cancellations",
        only=True,
    ),
]

CORRECT = [
    Case(
        "memory_event_store",
        ("--taskq-event-store", "taskq.event_stores.conformance:make_memory_store"),
        rows=(r"event_store: mandatory\s+\d+\s+0\s+0$",),
    ),
    Case(
        "sqlite_event_store",
        ("--taskq-event-store", "taskq.event_stores.conformance:make_sqlite_store"),
        rows=(
            r"event_store: mandatory\s+\d+\s+0\s+0$",
            r"event_store: cross_process\s+1\s+0\s+0$",
        ),
    ),
    Case(
        "inmemory",
        (
            "--taskq-broker",
            "taskq_inmemory.conformance:make_broker",
            "--taskq-result-backend",
            "taskq_inmemory.conformance:make_result_backend",
        ),
        rows=(
            r"broker: mandatory\s+\d+\s+0\s+0$",
            r"broker: delay\s+1\s+0\s+0$",
            r"broker: inspect\s+1\s+0\s+0$",
            r"broker: batch_send\s+4\s+0\s+0$",
            r"result_backend: mandatory\s+\d+\s+0\s+0$",
            r"result_backend: progress\s+1\s+0\s+0$",
        ),
    ),
    Case(
        "limiter_and_unique_store",
        (
            "--taskq-limiter",
            "taskq.control.memory_limiter:MemoryLimiter",
            "--taskq-unique-store",
            "taskq.control.memory_unique:MemoryUniqueStore",
        ),
        rows=(
            r"limiter: mandatory\s+\d+\s+0\s+0$",
            r"unique_store: mandatory\s+\d+\s+0\s+0$",
        ),
    ),
    Case(
        "memory_cancellation_store",
        ("--taskq-cancellation-store", "taskq.memory_cancellation:InMemoryCancellationStore"),
        rows=(
            r"cancellation_store: mandatory\s+4\s+0\s+0$",
            r"cancellation_store: cross_process\s+0\s+0\s+1$",
        ),
    ),
    Case(
        "shared_directory_broker",
        ("--taskq-broker", "implementations:make_shared_directory_broker"),
        rows=(
            r"broker: redelivery\s+3\s+0\s+0$",
            r"broker: cross_process\s+1\s+0\s+0$",
        ),
    ),
    # a queue holding what an earlier run, stopped mid-check, left: set aside and reported
    Case(
        "directory_broker_with_leftovers",
        ("--taskq-broker", "implementations:make_directory_broker_with_leftovers"),
        rows=(
            r"broker: mandatory\s+\d+\s+0\s+0$",
            r"broker: redelivery\s+3\s+0\s+0$",
            r"\d+ message\(s\) in the queue were not sent by the check that received them",
            r"  \d+ without the suite's tag .*; the first received by suite_broker\.py::",
            r"  3 from earlier runs \(0123456789ab\); the first received by suite_broker\.py::",
        ),
    ),
    Case(
        "shared_directory_backend",
        ("--taskq-result-backend", "implementations:make_shared_directory_backend"),
        rows=(r"result_backend: cross_process\s+1\s+0\s+0$",),
    ),
    Case(
        "schedule_source",
        ("--taskq-schedule-source", "implementations:make_schedule_source"),
        rows=(
            r"schedule_source: mandatory\s+\d+\s+0\s+0$",
            r"schedule_source: dynamic\s+3\s+0\s+0$",
        ),
    ),
    Case(
        "persistent_schedule_source",
        ("--taskq-schedule-source", "implementations:make_persistent_source"),
        rows=(
            r"schedule_source: dynamic\s+3\s+0\s+0$",
            r"schedule_source: persistent\s+3\s+0\s+0$",
        ),
    ),
]


# -- running the suite ---------------------------------------------------------------------------


def run_suite(case: Case, scratch: Path, env: dict[str, str]) -> pytest.RunResult:
    """Run the suite in ``scratch`` (no pytest config there) as a third party would."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "taskq_conformance",
        *(["-k", case.selection] if case.selection else []),
        *case.targets,
        # no cache; no Hypothesis plugin, which the suite does not use and which imports
        # Hypothesis (0.7 s of CPU per run)
        *("-p", "no:cacheprovider", "-p", "no:hypothesispytest"),
        f"--basetemp={scratch / 'basetemp'}",
    ]
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=scratch,
        env={
            **env,
            "TASKQ_TEST_RESULTS_DIR": str(scratch / "results"),
            "TASKQ_TEST_QUEUE_DIR": str(scratch / "queue"),
        },
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    return pytest.RunResult(
        done.returncode,
        done.stdout.splitlines(),
        done.stderr.splitlines(),
        time.monotonic() - started,
    )


@pytest.fixture(scope="module")
def suite_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[Case, Future[pytest.RunResult]]]:
    """Start the runs of every selected case of this module at once; each test awaits its own."""
    cases = _selected_cases(request)
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in TARGET_VARIABLES and name != "PYTEST_ADDOPTS"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    with ThreadPoolExecutor(max_workers=PARALLEL_RUNS) as pool:
        runs = {
            case: pool.submit(run_suite, case, tmp_path_factory.mktemp(case.name), env)
            for case in cases
        }
        yield runs
        for run in runs.values():
            run.cancel()


def _selected_cases(request: pytest.FixtureRequest) -> list[Case]:
    cases: list[Case] = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if getattr(item, "module", None) is request.module and callspec is not None:
            case = callspec.params.get("case")
            if isinstance(case, Case) and case not in cases:
                cases.append(case)
    return cases


def failed_checks(result: pytest.RunResult) -> set[str]:
    """The suite checks a run reports as FAILED, as ``suite_module.py::test_name[id]``."""
    return {m.group(1) for line in result.outlines if (m := FAILED_LINE.match(line))}


def tail(result: pytest.RunResult, lines: int = 80) -> str:
    """The end of a run's output, to show when an assertion about it fails."""
    return "\n".join(
        ["--- stdout", *result.outlines[-lines:], "--- stderr", *result.errlines[-20:]]
    )


# -- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", BROKEN, ids=str)
def test_the_suite_fails_a_broken_implementation(
    case: Case, suite_runs: dict[Case, Future[pytest.RunResult]]
) -> None:
    result = suite_runs[case].result()
    failed = failed_checks(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, (
        f"the suite did not fail {case.targets[1]}\n{tail(result)}"
    )
    assert case.catching in failed, (
        f"the suite did not catch the defect of {case.targets[1]} in {case.catching}; "
        f"it failed {sorted(failed)}\n{tail(result)}"
    )
    if case.only:
        assert failed == {case.catching}, (
            f"{case.catching} is not the only check catching {case.targets[1]}: the suite "
            f"failed {sorted(failed)}\n{tail(result)}"
        )


@pytest.mark.parametrize("case", [FRESH_STORE_PER_CALL], ids=str)
def test_a_factory_making_a_fresh_store_per_call_is_blamed(
    case: Case, suite_runs: dict[Case, Future[pytest.RunResult]]
) -> None:
    result = suite_runs[case].result()
    failed = failed_checks(result)
    # sound but for its factory: only the checks that need a second instance fail
    assert failed == {
        "suite_broker.py::test_acks",
        "suite_broker.py::test_redelivery_after_the_consumer_is_gone",
        "suite_broker.py::test_cross_process",
        "suite_broker_leases.py::test_held_messages_come_back_when_their_consumer_vanishes",
        "suite_broker_model.py::test_random_rounds_against_the_model",
    }, tail(result)
    output = "\n".join(result.outlines)
    for check in (
        "did not come back in",
        "not redelivered in",
        "sent by a broker another process made with the factory",
        "did not receive the 5 messages sent here",
        "each consumer is a broker the factory made",
    ):
        assert re.search(f"{check}.*does the factory make a fresh one on each call", output), (
            f"the failure ({check}...) does not point at the factory contract\n{tail(result)}"
        )


@pytest.mark.parametrize("case", CORRECT, ids=str)
def test_the_suite_passes_a_correct_implementation(
    case: Case, suite_runs: dict[Case, Future[pytest.RunResult]]
) -> None:
    result = suite_runs[case].result()
    assert result.ret == pytest.ExitCode.OK, tail(result)
    result.stdout.fnmatch_lines(["*= taskq conformance =*"])
    for row in case.rows:
        result.stdout.re_match_lines([row])


def test_every_implementation_is_run_and_names_its_defect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    implementations = importlib.import_module("implementations")
    factories = {name for name in vars(implementations) if name.startswith("make_")}
    run = {
        target.removeprefix("implementations:")
        for case in [*BROKEN, *CORRECT]
        for target in case.targets
        if target.startswith("implementations:")
    }
    assert factories == run, "every factory in implementations.py has a case here"
    for name, value in vars(implementations).items():
        if inspect.isclass(value) and value.__module__ == implementations.__name__:
            doc = inspect.getdoc(value) or ""
            assert doc.startswith(("Defect: ", "A correct ")), f"{name} does not name its defect"
