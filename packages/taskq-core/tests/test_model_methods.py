"""The pydantic methods of taskq's data classes give what taskiq's models give.

The expected values below were taken from taskiq 0.13.0; where taskiq is installed, the
same values are also compared with it directly.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest

from taskq import (
    RemoteTaskError,
    ScheduledTask,
    SecurityError,
    TaskiqMessage,
    TaskiqResult,
    TaskProgress,
    TaskState,
)

NOON = datetime(2025, 1, 6, 12, tzinfo=timezone.utc)


class Unjsonable:
    def __repr__(self) -> str:
        return "<Unjsonable>"


def failing_with_cause() -> BaseException:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("outer", 3, Unjsonable()) from inner
    except ValueError as error:
        return error


def failing_while_handling() -> BaseException:
    try:
        try:
            raise OSError(2, "missing")
        except OSError:
            raise RuntimeError("while handling")  # noqa: B904 - the context is the point
    except RuntimeError as error:
        return error


RESULT_KWARGS: dict[str, dict[str, Any]] = {
    "value": {
        "is_err": False,
        "return_value": {"rows": [1, (2, 3)], "at": NOON},
        "execution_time": 0.25,
        "labels": {"priority": 2, "when": NOON, "nested": {"a": [1, 2]}},
    },
    "error": {
        "is_err": True,
        "return_value": None,
        "execution_time": 1.5,
        "labels": {},
        "error": failing_with_cause(),
        "log": "a log",
    },
    "context": {
        "is_err": True,
        "return_value": None,
        "execution_time": 0.0,
        "error": failing_while_handling(),
    },
}
MESSAGE_KWARGS: dict[str, Any] = {
    "task_id": "id-1",
    "task_name": "jobs:add",
    "labels": {"delay": 5, "when": NOON},
    "args": [1, [2, 3]],
    "kwargs": {"b": {"c": None}},
}
SCHEDULE_KWARGS: dict[str, dict[str, Any]] = {
    "cron": {"cron": "*/5 * * * *", "cron_offset": "Europe/Paris"},
    "time": {"time": NOON, "task_id": "fixed"},
    "interval": {"interval": timedelta(seconds=90)},
    "offset": {"cron": "0 9 * * *", "cron_offset": timedelta(hours=2)},
}
PROGRESS_KWARGS: dict[str, dict[str, Any]] = {
    "enum": {"state": TaskState.STARTED, "meta": {"done": 3, "of": [10]}},
    "string": {"state": "CUSTOM", "meta": None},
}


def schedule(case: str) -> dict[str, Any]:
    base = {"task_name": "jobs:report", "labels": {"l": 1}, "args": [1], "kwargs": {}}
    return {**base, "schedule_id": f"id-{case}", **SCHEDULE_KWARGS[case]}


def test_a_failed_result_dumps_its_error_as_taskiq_does() -> None:
    result = TaskiqResult(**RESULT_KWARGS["error"])
    dumped = result.model_dump()
    assert list(dumped) == ["is_err", "log", "return_value", "execution_time", "labels", "error"]
    assert dumped["error"] == {
        "exc_type": "ValueError",
        "exc_message": ("outer", 3, "<Unjsonable>"),
        "exc_module": "builtins",
        "exc_cause": {
            "exc_type": "KeyError",
            "exc_message": ("inner",),
            "exc_module": "builtins",
            "exc_cause": None,
            "exc_context": None,
            "exc_suppress_context": False,
        },
        "exc_context": None,  # "raise ... from" suppresses the context
        "exc_suppress_context": True,
    }
    assert json.loads(result.model_dump_json())["error"]["exc_message"] == [
        "outer",
        3,
        "<Unjsonable>",
    ]


def test_a_result_round_trips_through_dump_and_validate() -> None:
    for kwargs in RESULT_KWARGS.values():
        result = TaskiqResult(**kwargs)
        again = TaskiqResult.model_validate(result.model_dump())
        from_json = TaskiqResult.model_validate_json(result.model_dump_json())
        assert isinstance(again, TaskiqResult)
        assert again.return_value == result.return_value
        assert again.labels == result.labels
        assert from_json.model_dump(mode="json") == result.model_dump(mode="json")
    error = TaskiqResult.model_validate_json(
        TaskiqResult(**RESULT_KWARGS["error"]).model_dump_json()
    ).error
    assert isinstance(error, ValueError)
    assert error.args == ("outer", 3, "<Unjsonable>")
    assert isinstance(error.__cause__, KeyError)
    assert error.__suppress_context__ is True


def test_result_json_text_is_taskiqs() -> None:
    result = TaskiqResult(**RESULT_KWARGS["value"])
    assert result.model_dump_json() == (
        '{"is_err":false,"log":null,"return_value":{"rows":[1,[2,3]],'
        '"at":"2025-01-06T12:00:00Z"},"execution_time":0.25,"labels":{"priority":2,'
        '"when":"2025-01-06T12:00:00Z","nested":{"a":[1,2]}},"error":null}'
    )
    assert result.model_dump(exclude={"labels", "log"}, mode="json") == {
        "is_err": False,
        "return_value": {"rows": [1, [2, 3]], "at": "2025-01-06T12:00:00Z"},
        "execution_time": 0.25,
        "error": None,
    }


def test_validating_an_error_from_elsewhere() -> None:
    unknown = {"exc_type": "Gone", "exc_message": ["x"], "exc_module": "not_imported_mod"}
    error = TaskiqResult.model_validate(
        {"is_err": True, "return_value": None, "execution_time": 0, "error": unknown}
    ).error
    assert isinstance(error, RemoteTaskError)
    assert "not_imported_mod.Gone" in str(error)
    not_an_exception = {"exc_type": "system", "exc_message": ["ls"], "exc_module": "os"}
    with pytest.raises(SecurityError):
        TaskiqResult.model_validate(
            {"is_err": True, "return_value": None, "execution_time": 0, "error": not_an_exception}
        )
    with pytest.raises(pydantic.ValidationError):
        TaskiqResult.model_validate({"is_err": True})


def test_message_schedule_and_progress_dump_as_taskiq_does() -> None:
    message = TaskiqMessage(**MESSAGE_KWARGS)
    assert message.model_dump_json() == (
        '{"task_id":"id-1","task_name":"jobs:add","labels":{"delay":5,'
        '"when":"2025-01-06T12:00:00Z"},"args":[1,[2,3]],"kwargs":{"b":{"c":null}}}'
    )
    assert TaskiqMessage.model_validate({**message.model_dump(), "labels_types": None}) == message
    assert ScheduledTask(**schedule("interval")).model_dump(mode="json") == {
        "task_name": "jobs:report",
        "labels": {"l": 1},
        "args": [1],
        "kwargs": {},
        "task_id": None,
        "schedule_id": "id-interval",
        "cron": None,
        "cron_offset": None,
        "time": None,
        "interval": "PT1M30S",
    }
    progress = TaskProgress(**PROGRESS_KWARGS["enum"])
    assert progress.model_dump() == {"state": TaskState.STARTED, "meta": {"done": 3, "of": [10]}}
    assert progress.model_dump_json() == '{"state":"STARTED","meta":{"done":3,"of":[10]}}'


@pytest.mark.parametrize("case", sorted(SCHEDULE_KWARGS))
def test_a_schedule_round_trips(case: str) -> None:
    scheduled = ScheduledTask(**schedule(case))
    again = ScheduledTask.model_validate_json(scheduled.model_dump_json())
    assert again.model_dump(mode="json") == scheduled.model_dump(mode="json")
    assert ScheduledTask.model_validate(scheduled.model_dump()) == scheduled


def test_a_bad_schedule_is_a_validation_error() -> None:
    base = {"task_name": "t", "labels": {}, "args": [], "kwargs": {}}
    with pytest.raises(pydantic.ValidationError, match="exactly one of cron, time or interval"):
        ScheduledTask.model_validate(base)
    with pytest.raises(pydantic.ValidationError):
        ScheduledTask.model_validate({"task_name": "t", "cron": "* * * * *"})  # no labels...


def test_progress_validates_its_state() -> None:
    with pytest.raises(pydantic.ValidationError, match="TaskProgress"):
        TaskProgress(state=5)  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError):
        TaskProgress.model_validate({"state": ["STARTED"], "meta": None})
    with pytest.raises(pydantic.ValidationError):
        TaskProgress.model_validate({"state": "STARTED"})  # meta is required, as in taskiq
    assert TaskProgress.model_validate({"state": "RETRY", "meta": 1}).state == TaskState.RETRY
    assert TaskProgress.model_validate({"state": "mine", "meta": 1}).state == "mine"


def test_model_copy_updates_without_validating_and_copies_deep_on_request() -> None:
    result = TaskiqResult(**RESULT_KWARGS["value"])
    shallow = result.model_copy(update={"is_err": True, "execution_time": "not checked"})
    assert (shallow.is_err, shallow.execution_time) == (True, "not checked")
    assert shallow.labels is result.labels
    assert result.is_err is False
    deep = result.model_copy(deep=True)
    assert deep == result
    assert deep.labels is not result.labels
    copied = ScheduledTask(**schedule("cron")).model_copy(update={"labels": {"x": 1}})
    assert copied.labels == {"x": 1}
    assert copied.cron == "*/5 * * * *"
    with pytest.raises(TypeError, match="no field 'nope'"):
        result.model_copy(update={"nope": 1})


def test_model_validate_returns_an_instance_as_it_is() -> None:
    message = TaskiqMessage(**MESSAGE_KWARGS)
    assert TaskiqMessage.model_validate(message) is message


# -- the same values against taskiq itself, where it is installed ---------------------------


@pytest.fixture
def taskiq() -> Any:
    return pytest.importorskip("taskiq")


def same_dumps(ours: Any, theirs: Any, drop: tuple[str, ...] = ()) -> None:
    def without(data: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in data.items() if k not in drop}

    assert ours.model_dump() == without(theirs.model_dump())
    assert ours.model_dump(mode="json") == without(theirs.model_dump(mode="json"))
    assert json.loads(ours.model_dump_json()) == without(json.loads(theirs.model_dump_json()))
    if not drop:
        assert ours.model_dump_json() == theirs.model_dump_json()


@pytest.mark.parametrize("case", sorted(RESULT_KWARGS))
def test_results_match_taskiq(taskiq: Any, case: str) -> None:
    ours = TaskiqResult(**RESULT_KWARGS[case])
    theirs = taskiq.TaskiqResult(**RESULT_KWARGS[case])
    same_dumps(ours, theirs)
    for data in (theirs.model_dump(), theirs.model_dump(mode="json")):
        mine, its = TaskiqResult.model_validate(data), taskiq.TaskiqResult.model_validate(data)
        assert mine.model_dump() == its.model_dump()
        assert repr(mine.error) == repr(its.error)
    mine = TaskiqResult.model_validate_json(theirs.model_dump_json())
    assert (
        mine.model_dump()
        == taskiq.TaskiqResult.model_validate_json(ours.model_dump_json()).model_dump()
    )
    update = {"is_err": True, "labels": {"x": 1}}
    same_dumps(ours.model_copy(update=update), theirs.model_copy(update=update))


def test_messages_match_taskiq(taskiq: Any) -> None:
    ours = TaskiqMessage(**MESSAGE_KWARGS)
    theirs = taskiq.TaskiqMessage(**MESSAGE_KWARGS)
    same_dumps(ours, theirs, drop=("labels_types",))
    assert TaskiqMessage.model_validate_json(theirs.model_dump_json()) == TaskiqMessage(
        **json.loads(ours.model_dump_json())
    )


@pytest.mark.parametrize("case", sorted(SCHEDULE_KWARGS))
def test_schedules_match_taskiq(taskiq: Any, case: str) -> None:
    ours = ScheduledTask(**schedule(case))
    theirs = taskiq.ScheduledTask(**schedule(case))
    same_dumps(ours, theirs)
    mine = ScheduledTask.model_validate_json(theirs.model_dump_json())
    its = taskiq.ScheduledTask.model_validate_json(ours.model_dump_json())
    assert mine.model_dump() == its.model_dump()


@pytest.mark.parametrize("case", sorted(PROGRESS_KWARGS))
def test_progress_matches_taskiq(taskiq: Any, case: str) -> None:
    from taskiq.depends.progress_tracker import TaskProgress as TheirProgress

    same_dumps(TaskProgress(**PROGRESS_KWARGS[case]), TheirProgress(**PROGRESS_KWARGS[case]))
    for bad in ({"state": 5, "meta": None}, {"state": "STARTED"}, {"state": None, "meta": 1}):
        with pytest.raises(pydantic.ValidationError):
            TheirProgress.model_validate(bad)
        with pytest.raises(pydantic.ValidationError):
            TaskProgress.model_validate(bad)
    for good in ({"state": "STARTED", "meta": 1}, {"state": b"RETRY", "meta": [1]}):
        mine, its = TaskProgress.model_validate(good), TheirProgress.model_validate(good)
        assert (mine.state, mine.meta) == (its.state, its.meta)
