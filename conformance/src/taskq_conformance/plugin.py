"""The pytest plugin: options, target loading, capability gating and the capability table."""

from __future__ import annotations

import inspect
import json
from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

# Nothing from taskq is imported here: pytest loads this plugin before coverage starts, and the
# implementations under test (taskq's own included) must be measured from their first line.
from taskq_conformance import hookspecs
from taskq_conformance.deadline import with_deadline
from taskq_conformance.settings import Settings, add_options, read_settings
from taskq_conformance.tags import TAGS
from taskq_conformance.targets import (
    HOW_TO,
    KINDS,
    Target,
    check_declared,
    first_instance,
    resolve_target,
)

PACKAGE_DIR = Path(__file__).resolve().parent
SUITES = {
    "suite_broker.py": "broker",
    "suite_result_backend.py": "result_backend",
    "suite_schedule_source.py": "schedule_source",
    "suite_event_store.py": "event_store",
    "suite_limiter.py": "limiter",
    "suite_unique_store.py": "unique_store",
    "suite_cancellation_store.py": "cancellation_store",
    "suite_broker_leases.py": "broker",
    "suite_broker_model.py": "broker",
    "suite_result_backend_model.py": "result_backend",
    "suite_schedule_source_model.py": "schedule_source",
}
_TARGETS = pytest.StashKey[dict[str, Target | None]]()
_CAPABILITIES = pytest.StashKey[dict[str, frozenset[str]]]()
_CATEGORIES = pytest.StashKey[dict[str, str]]()


# -- options and set-up ------------------------------------------------------------------------


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register the factory hooks."""
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``--taskq-*`` options and ini keys."""
    group = parser.getgroup("taskq", "taskq conformance suite")
    for kind, (option, ini, env, _) in KINDS.items():
        label = kind.replace("_", " ")
        help_text = f"module:attribute of a factory making fresh {label}s (env {env})"
        group.addoption(option, default=None, help=help_text)
        parser.addini(ini, f"module:attribute of a factory making fresh {label}s", default="")
    group.addoption("--taskq-report", default=None, help="write the capability table as JSON")
    group.addoption(
        "--taskq-xfail-file",
        default=None,
        help="file listing known failures by test id, one a line (strict xfail)",
    )
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers and the tally."""
    config.addinivalue_line(
        "markers", "taskq_requires(capability): run only if the target declares it"
    )
    config.addinivalue_line(
        "markers", "taskq_lacks(capability): run only if the target does not declare it"
    )
    config.stash[_CATEGORIES] = {}
    config.pluginmanager.register(CapabilityTally(config), "taskq-conformance-tally")


class SuiteModule(pytest.Module):
    """A suite module: collected whatever the user's ``python_files``/``python_functions`` say."""

    def funcnamefilter(self, name: str) -> bool:
        """Collect functions named ``test_*``."""
        return name.startswith("test_")

    def collect(self) -> Any:
        """Give the module's async tests their deadline and mark them for pytest-asyncio."""
        asyncio_mark = pytest.mark.asyncio(loop_scope="function")
        settings = read_settings(self.config)
        seconds = settings.check_timeout + settings.budget
        for name, value in vars(self.obj).items():
            if not self.funcnamefilter(name) or not inspect.iscoroutinefunction(value):
                continue
            if not hasattr(value, "__wrapped__"):
                value = with_deadline(value, seconds)
            if not any(m.name == "asyncio" for m in getattr(value, "pytestmark", [])):
                value = asyncio_mark(value)
            setattr(self.obj, name, value)
        return super().collect()


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    """Collect each suite module once, as a `SuiteModule`, whatever else would collect it.

    The python plugin collects it too when the user's ``python_files`` matches it or it is
    named on the command line (``--pyargs taskq_conformance.suite_broker``): that collector
    is replaced, or each check would run twice.
    """
    collected = yield
    if _suite_kind(file_path) is None:
        return collected
    others = [node for node in collected if not isinstance(node, pytest.Module)]
    return [*others, SuiteModule.from_parent(parent, path=file_path)]


# -- gating --------------------------------------------------------------------------------------


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Skip what the targets do not declare, drop suites without a target, mark async tests."""
    ours = [item for item in items if _kind_of(item) is not None]
    if not ours:
        return
    targets = {kind: resolve_target(config, kind) for kind in KINDS}
    if all(target is None for target in targets.values()):
        raise pytest.UsageError(HOW_TO)
    config.stash[_TARGETS] = targets
    config.stash[_CAPABILITIES] = {
        kind: _declared(target) for kind, target in targets.items() if target is not None
    }
    known_failures = _read_xfail_file(config)
    dropped = [item for item in ours if targets[_kind_of(item) or ""] is None]
    for item in ours:
        if item not in dropped:
            _prepare(item, config, known_failures)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


def _kind_of(item: pytest.Item) -> str | None:
    return _suite_kind(getattr(item, "path", None))


def _suite_kind(path: Path | str | None) -> str | None:
    """The kind a suite module tests; None when ``path`` is not one (symbolic links resolved)."""
    if path is None or Path(path).name not in SUITES:
        return None
    if Path(path).parent.resolve() != PACKAGE_DIR:
        return None
    return SUITES[Path(path).name]


def _declared(target: Target) -> frozenset[str]:
    instance = first_instance(target)
    declared = frozenset(_capability_name(c) for c in getattr(instance, "capabilities", ()))
    check_declared(target, declared)
    return declared


def _capability_name(capability: Any) -> str:
    """``"delay"`` for ``Capability.DELAY`` (or for ``"delay"``)."""
    return str(getattr(capability, "value", capability))


def _prepare(item: pytest.Item, config: pytest.Config, known_failures: set[str]) -> None:
    kind = _kind_of(item) or ""
    declared = config.stash[_CAPABILITIES][kind]
    category = f"{kind}: mandatory"
    for marker in item.iter_markers("taskq_requires"):
        capability = _capability_name(marker.args[0])
        category = f"{kind}: {capability}"
        if capability not in declared:
            item.add_marker(pytest.mark.skip(reason=f"{kind} does not declare {capability}"))
    for marker in item.iter_markers("taskq_lacks"):
        capability = _capability_name(marker.args[0])
        category = f"{kind}: {capability} (undeclared)"
        if capability in declared:
            item.add_marker(pytest.mark.skip(reason=f"{kind} declares {capability}"))
    if _test_id(item) in known_failures or item.nodeid in known_failures:
        item.add_marker(pytest.mark.xfail(reason="listed in --taskq-xfail-file", strict=True))
    config.stash[_CATEGORIES][item.nodeid] = category


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Give a suite check its own tag for the messages it sends (see `taskq_conformance.tags`)."""
    if _kind_of(item) is not None:
        TAGS.begin(_test_id(item))


def _test_id(item: pytest.Item) -> str:
    return f"{Path(str(item.path)).name}::{item.name}"


def _read_xfail_file(config: pytest.Config) -> set[str]:
    path = config.getoption("--taskq-xfail-file")
    if not path:
        return set()
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise pytest.UsageError(f"--taskq-xfail-file: cannot read {path}: {exc}") from None
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


# -- the table -----------------------------------------------------------------------------------


class CapabilityTally:
    """Counts outcomes per capability and prints them as a table at the end of the run."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.counts: defaultdict[str, dict[str, int]] = defaultdict(
            lambda: {"passed": 0, "failed": 0, "skipped": 0}
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Count the outcome of a suite test under its capability."""
        category = self.config.stash[_CATEGORIES].get(report.nodeid)
        if category is None:
            return
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.counts[category][report.outcome] += 1

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Print the table; write it as JSON with ``--taskq-report``."""
        if not self.counts:
            return
        rows = sorted(self.counts.items())
        width = max(len("capability"), *(len(name) for name, _ in rows))
        terminalreporter.write_sep("=", "taskq conformance")
        terminalreporter.write_line(f"{'capability':<{width}}  passed  failed  skipped")
        for name, n in rows:
            terminalreporter.write_line(
                f"{name:<{width}}  {n['passed']:>6}  {n['failed']:>6}  {n['skipped']:>7}"
            )
        for line in TAGS.report():
            terminalreporter.write_line(line)
        path = self.config.getoption("--taskq-report")
        if path:
            Path(path).write_text(json.dumps(self.as_json(rows), indent=2) + "\n")

    def as_json(self, rows: list[tuple[str, dict[str, int]]]) -> dict[str, Any]:
        """The table, the targets, their declared capabilities and what was set aside."""
        targets = self.config.stash.get(_TARGETS, {})
        declared = self.config.stash.get(_CAPABILITIES, {})
        return {
            "targets": {k: (t.spec or "hook") for k, t in targets.items() if t is not None},
            "declared": {k: sorted(caps) for k, caps in declared.items()},
            "capabilities": dict(rows),
            "set_aside": TAGS.as_json(),
        }


# -- fixtures ------------------------------------------------------------------------------------


def _target(request: pytest.FixtureRequest, kind: str) -> Target:
    target = request.config.stash.get(_TARGETS, {}).get(kind)
    if target is None:
        pytest.skip(f"no {kind} target given")
    return target


@pytest.fixture(scope="session")
def taskq_broker_target(request: pytest.FixtureRequest) -> Target:
    """The broker factory under test."""
    return _target(request, "broker")


@pytest.fixture(scope="session")
def taskq_result_backend_target(request: pytest.FixtureRequest) -> Target:
    """The result backend factory under test."""
    return _target(request, "result_backend")


@pytest.fixture(scope="session")
def taskq_schedule_source_target(request: pytest.FixtureRequest) -> Target:
    """The schedule source factory under test."""
    return _target(request, "schedule_source")


@pytest.fixture(scope="session")
def taskq_event_store_target(request: pytest.FixtureRequest) -> Target:
    """The event store factory under test."""
    return _target(request, "event_store")


@pytest.fixture
def taskq_new_broker(
    taskq_broker_target: Target,
) -> Callable[..., AbstractAsyncContextManager[Any]]:
    """Make fresh, started brokers (worker side) to use in ``async with`` blocks."""
    from taskq_conformance.instances import started_broker  # late: see the module's imports

    return lambda worker=True: started_broker(taskq_broker_target, worker)


@pytest.fixture
def taskq_new_result_backend(
    taskq_result_backend_target: Target,
) -> Callable[[], AbstractAsyncContextManager[Any]]:
    """Make fresh, started result backends to use in ``async with`` blocks."""
    from taskq_conformance.instances import started  # late: see the module's imports

    return lambda: started(taskq_result_backend_target)


@pytest.fixture
def taskq_new_schedule_source(
    taskq_schedule_source_target: Target,
) -> Callable[[], AbstractAsyncContextManager[Any]]:
    """Make fresh, started schedule sources to use in ``async with`` blocks."""
    from taskq_conformance.instances import started  # late: see the module's imports

    return lambda: started(taskq_schedule_source_target)


@pytest.fixture
def taskq_new_event_store(
    taskq_event_store_target: Target,
) -> Callable[[], AbstractAsyncContextManager[Any]]:
    """Make fresh, started event stores to use in ``async with`` blocks."""
    from taskq_conformance.instances import started  # late: see the module's imports

    return lambda: started(taskq_event_store_target)


@pytest.fixture(scope="session")
def taskq_limiter_target(request: pytest.FixtureRequest) -> Target:
    """The limiter factory under test."""
    return _target(request, "limiter")


@pytest.fixture(scope="session")
def taskq_unique_store_target(request: pytest.FixtureRequest) -> Target:
    """The unique key store factory under test."""
    return _target(request, "unique_store")


@pytest.fixture
def taskq_new_limiter(
    taskq_limiter_target: Target,
) -> Callable[[], AbstractAsyncContextManager[Any]]:
    """Make fresh, started limiters to use in ``async with`` blocks."""
    from taskq_conformance.instances import started  # late: see the module's imports

    return lambda: started(taskq_limiter_target)


@pytest.fixture(scope="session")
def taskq_cancellation_store_target(request: pytest.FixtureRequest) -> Target:
    """The cancellation store factory under test."""
    return _target(request, "cancellation_store")


@pytest.fixture
def taskq_new_cancellation_store(
    taskq_cancellation_store_target: Target,
) -> Callable[[], AbstractAsyncContextManager[Any]]:
    """Make fresh, started cancellation stores to use in ``async with`` blocks."""
    from taskq_conformance.instances import started  # late: see the module's imports

    return lambda: started(taskq_cancellation_store_target)


@pytest.fixture
def taskq_new_unique_store(
    taskq_unique_store_target: Target,
) -> Callable[[], AbstractAsyncContextManager[Any]]:
    """Make fresh, started unique key stores to use in ``async with`` blocks."""
    from taskq_conformance.instances import started  # late: see the module's imports

    return lambda: started(taskq_unique_store_target)


@pytest.fixture(scope="session")
def taskq_settings(request: pytest.FixtureRequest) -> Settings:
    """The timing tolerance and the model checks' budget and seed of this run."""
    return read_settings(request.config)
