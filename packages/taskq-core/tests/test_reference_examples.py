"""Every code example of the reference documentation runs against taskq.

The reference documents the public API taskq implements name for name. Each example below is
the document's code with only its imports changed (``taskiq`` -> ``taskq``) and the Python
indentation restored where the document lost it. Helpers that an example uses without
defining them (a database connection, a cache client, ``asyncpg``, ``prometheus_client``...)
are small in-memory stand-ins defined in this module and put into the namespace the example
runs in. Each test runs its example in a fresh namespace under a unique module name, then
drives it: starts the broker, sends tasks, checks what the example promises, shuts down.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import time
import types
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from taskq import (
    AckableMessage,
    AsyncBroker,
    BrokerMessage,
    Context,
    InMemoryBroker,
    Receiver,
    TaskiqEvents,
    TaskiqMessage,
    TaskiqResult,
    TaskiqResultTimeoutError,
    TaskiqState,
)
from taskq.testing import free_port
from taskq_inmemory import InmemoryResultBackend

WAIT = 10.0  # seconds: generous bound on every wait, so a bug fails instead of hanging


# ======================================================================================
# The examples, as written in the reference
# ======================================================================================

# -- overview.md ----------------------------------------------------------------------

# "Core Imports"
OVERVIEW_CORE_IMPORT = """\
import taskq
"""

# "Core Imports": common imports for basic usage
OVERVIEW_COMMON_IMPORTS = """\
from taskq import InMemoryBroker, TaskiqResult, Context
"""

# "Basic Usage"
OVERVIEW_BASIC_USAGE = """\
import asyncio
from taskq import InMemoryBroker
# Create a broker
broker = InMemoryBroker()
# Define a task
@broker.task
async def add_numbers(a: int, b: int) -> int:
    return a + b
# Alternative: sync task
@broker.task
def multiply_numbers(a: int, b: int) -> int:
    return a * b
async def main():
    # Startup broker
    await broker.startup()
    # Send tasks for execution
    result1 = await add_numbers.kiq(5, 3)
    result2 = await multiply_numbers.kiq(4, 7)
    # Get results
    value1 = await result1.wait_result() # 8
    value2 = await result2.wait_result() # 28
    print(f"Addition result: {value1}")
    print(f"Multiplication result: {value2}")
    # Shutdown broker
    await broker.shutdown()
if __name__ == "__main__":
    asyncio.run(main())
"""

# -- brokers-api.txt ------------------------------------------------------------------

# Usage example: "Simple in-memory broker"
BROKERS_SIMPLE_INMEMORY = """\
from taskq import InMemoryBroker
# Simple in-memory broker
broker = InMemoryBroker()
@broker.task
async def my_task(x: int) -> int:
    return x * 2
"""

# Usage example: "Configured broker with middleware and result backend"
BROKERS_CONFIGURED_ZEROMQ = """\
from taskq import ZeroMQBroker
from taskq.middlewares import SimpleRetryMiddleware
# Configured broker with middleware and result backend
broker = (ZeroMQBroker("tcp://localhost:5555")
    .with_middlewares(SimpleRetryMiddleware(max_retries=3))
    .with_result_backend(my_result_backend))
@broker.task
async def process_data(data: str) -> dict:
    # Task implementation
    return {"processed": data}
"""

# Usage example: event handlers (continues the examples above: `broker`, `TaskiqEvents`)
BROKERS_EVENT_HANDLERS = """\
@broker.on_event(TaskiqEvents.WORKER_STARTUP)
async def on_startup(state):
    print("Worker starting up")
    # Initialize connections, etc.
@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
async def on_shutdown(state):
    print("Worker shutting down")
    # Cleanup resources
"""

# -- events-state.md ------------------------------------------------------------------

# "Basic Event Handlers"
EVENTS_BASIC_HANDLERS = '''\
from taskq import InMemoryBroker, TaskiqEvents

broker = InMemoryBroker()

@broker.on_event(TaskiqEvents.WORKER_STARTUP)
async def on_worker_startup(state):
    """Initialize worker resources."""
    print("Worker starting up...")

    # Initialize database connections
    state.set_value("db_connection", await create_db_connection())

    # Initialize cache
    state.set_value("cache", await create_cache_client())

    # Log startup
    print("Worker initialized successfully")

@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
async def on_worker_shutdown(state):
    """Cleanup worker resources."""
    print("Worker shutting down...")

    # Close database connections
    db_conn = state.get_value("db_connection")
    if db_conn:
        await db_conn.close()

    # Close cache connections
    cache = state.get_value("cache")
    if cache:
        await cache.close()

    print("Worker shutdown complete")

@broker.task
async def database_task(query: str) -> dict:
    """Task that uses shared database connection."""
    # Access shared resources from state
    db_conn = broker.state.get_value("db_connection")
    cache = broker.state.get_value("cache")

    # Check cache first
    cached_result = await cache.get(query)
    if cached_result:
        return cached_result

    # Execute database query
    result = await db_conn.execute(query)

    # Cache result
    await cache.set(query, result, ttl=300)

    return result
'''

# "Multiple Event Handlers" (continues "Basic Event Handlers": `broker`, `TaskiqEvents`)
EVENTS_MULTIPLE_HANDLERS = '''\
# Register handler for multiple events
@broker.on_event(
    TaskiqEvents.CLIENT_STARTUP,
    TaskiqEvents.WORKER_STARTUP,
)
async def initialize_logging(state):
    """Initialize logging for both client and worker modes."""
    import logging

    # Configure logging
    logging.basicConfig(
        level=logging.INFO,
        format='%(asctime)s - %(name)s - %(levelname)s - %(message)s'
    )

    logger = logging.getLogger('taskiq')
    state.set_value("logger", logger)

    logger.info("Logging initialized")

@broker.on_event(TaskiqEvents.WORKER_STARTUP)
async def setup_metrics(state):
    """Initialize metrics collection."""
    from prometheus_client import Counter, Histogram

    # Create metrics
    task_counter = Counter('taskiq_tasks_total', 'Total tasks executed')
    task_duration = Histogram('taskiq_task_duration_seconds', 'Task duration')

    state.set_value("task_counter", task_counter)
    state.set_value("task_duration", task_duration)

    logger = state.get_value("logger")
    logger.info("Metrics initialized")
'''

# "Programmatic Event Handler Registration" (continues the examples above: `broker`,
# `TaskiqEvents`, `InMemoryBroker`, `setup_metrics`)
EVENTS_PROGRAMMATIC_REGISTRATION = '''\
async def database_startup_handler(state):
    """Startup handler for database initialization."""
    import asyncpg

    # Create connection pool
    pool = await asyncpg.create_pool(
        "postgresql://user:password@localhost/mydb",
        min_size=5,
        max_size=20,
    )
    state.set_value("db_pool", pool)

async def database_shutdown_handler(state):
    """Shutdown handler for database cleanup."""
    pool = state.get_value("db_pool")
    if pool:
        await pool.close()

# Register handlers programmatically
broker.add_event_handler(
    TaskiqEvents.WORKER_STARTUP,
    database_startup_handler
)
broker.add_event_handler(
    TaskiqEvents.WORKER_SHUTDOWN,
    database_shutdown_handler
)

# Or using builder pattern
broker = (InMemoryBroker()
    .with_event_handlers(
        TaskiqEvents.WORKER_STARTUP,
        database_startup_handler,
        setup_metrics,
    )
    .with_event_handlers(
        TaskiqEvents.WORKER_SHUTDOWN,
        database_shutdown_handler,
    ))
'''

# "State Management Examples" (continues the examples above: `broker`, `TaskiqEvents`)
EVENTS_STATE_MANAGEMENT = '''\
@broker.on_event(TaskiqEvents.WORKER_STARTUP)
async def initialize_shared_data(state):
    """Initialize shared configuration and resources."""
    # Load configuration
    config = await load_configuration()
    state.set_value("config", config)

    # Initialize shared cache
    cache_data = {}
    state.set_value("shared_cache", cache_data)

    # Track worker statistics
    stats = {
        "tasks_executed": 0,
        "start_time": time.time(),
        "errors": 0,
    }
    state.set_value("worker_stats", stats)

@broker.task
async def cached_computation(input_data: str) -> dict:
    """Task that uses shared cache."""
    # Access shared cache
    cache = broker.state.get_value("shared_cache", {})

    # Check cache
    if input_data in cache:
        return cache[input_data]

    # Perform computation
    result = await expensive_computation(input_data)

    # Update cache
    cache[input_data] = result
    broker.state.set_value("shared_cache", cache)

    # Update statistics
    stats = broker.state.get_value("worker_stats", {})
    stats["tasks_executed"] = stats.get("tasks_executed", 0) + 1
    broker.state.set_value("worker_stats", stats)

    return result

@broker.task
async def get_worker_statistics() -> dict:
    """Task to retrieve worker statistics."""
    stats = broker.state.get_value("worker_stats", {})
    config = broker.state.get_value("config", {})

    return {
        "statistics": stats,
        "configuration": config,
        "state_keys": broker.state.keys(),
    }
'''

# "Error Handling in Event Handlers" (continues the examples above: `broker`,
# `TaskiqEvents`, `logging`)
EVENTS_ERROR_HANDLING = '''\
@broker.on_event(TaskiqEvents.WORKER_STARTUP)
async def robust_startup_handler(state):
    """Startup handler with error handling."""
    logger = logging.getLogger('taskiq.startup')

    try:
        # Initialize critical resources
        db_pool = await create_database_pool()
        state.set_value("db_pool", db_pool)
        logger.info("Database pool initialized")

    except Exception as e:
        logger.error(f"Failed to initialize database: {e}")
        # Set fallback or raise to prevent worker start
        raise

    try:
        # Initialize optional resources
        cache = await create_cache_client()
        state.set_value("cache", cache)
        logger.info("Cache initialized")

    except Exception as e:
        logger.warning(f"Cache initialization failed: {e}")
        # Continue without cache
        state.set_value("cache", None)

@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
async def safe_shutdown_handler(state):
    """Shutdown handler with safe resource cleanup."""
    logger = logging.getLogger('taskiq.shutdown')

    # Safe cleanup of database pool
    try:
        db_pool = state.get_value("db_pool")
        if db_pool:
            await db_pool.close()
            logger.info("Database pool closed")
    except Exception as e:
        logger.error(f"Error closing database pool: {e}")

    # Safe cleanup of cache
    try:
        cache = state.get_value("cache")
        if cache:
            await cache.close()
            logger.info("Cache closed")
    except Exception as e:
        logger.error(f"Error closing cache: {e}")
'''

# -- writing-a-broker.txt -------------------------------------------------------------

# "Here is a template for new brokers"
WRITING_BROKER_TEMPLATE = """\
from typing import AsyncGenerator, Union
from taskq import AckableMessage, AsyncBroker, BrokerMessage
class MyBroker(AsyncBroker):
    def __init__(self) -> None:
        # Please call this super method to set default values to
        # many different fields.
        super().__init__()
    async def startup(self) -> None:
        # Here you can do some startup magic.
        # Like opening a connection.
        return await super().startup()
    async def shutdown(self) -> None:
        # Here you can perform shutdown operations.
        # Like closing connections.
        return await super().shutdown()
    async def kick(self, message: BrokerMessage) -> None:
        # Send a message.message.
        pass
    async def listen(self) -> AsyncGenerator[Union[bytes, AckableMessage], None]:
        while True:
            # Get new message.
            new_message: bytes = ... # type: ignore
            # Yield it!
            yield new_message
"""

# "Acknowledgement" (a method of a broker such as the template's MyBroker). The reference
# has no comma after `ack=message.ack`, which makes the example a SyntaxError under every
# Python version; the comma is the one change made to it besides indentation.
WRITING_BROKER_ACKABLE_LISTEN = """\
async def listen(self) -> AsyncGenerator[AckableMessage, None]:
    for message in self.my_channel:
        yield AckableMessage(
            data=message.bytes,
            # Ack is a function that takes no parameters.
            # So you either set here method of a message,
            # or you can make a closure.
            ack=message.ack,
            # Can be set to None if broker doesn't support it.
            reject=message.reject
        )
"""


# ======================================================================================
# Running examples
# ======================================================================================

_example_numbers = itertools.count()


class ExampleRunner:
    """Runs examples in fresh namespaces and shuts down every broker they leave behind."""

    def __init__(self) -> None:
        self.namespaces: list[dict[str, Any]] = []
        self.brokers: list[AsyncBroker] = []

    def run(
        self,
        source: str,
        title: str,
        namespace: dict[str, Any] | None = None,
        **stand_ins: Any,
    ) -> dict[str, Any]:
        """Execute ``source`` in ``namespace`` (default: a new one), with ``stand_ins`` in it."""
        if namespace is None:
            slug = "".join(ch if ch.isalnum() else "_" for ch in title.lower())
            namespace = {"__name__": f"reference_example_{slug}_{next(_example_numbers)}"}
            self.namespaces.append(namespace)
        namespace.update(stand_ins)
        exec(compile(source, f"<reference example: {title}>", "exec"), namespace)
        return namespace

    def track(self, broker: AsyncBroker) -> AsyncBroker:
        """Shut ``broker`` down at the end of the test too."""
        self.brokers.append(broker)
        return broker

    async def close(self) -> None:
        brokers = list(self.brokers)
        for namespace in self.namespaces:
            brokers.extend(value for value in namespace.values() if isinstance(value, AsyncBroker))
        for broker in dict.fromkeys(brokers):  # each once, in order
            try:
                await broker.shutdown()
            except Exception:  # the test itself asserts on shutdown where it matters
                logging.getLogger(__name__).exception("shutting down %r failed", broker)


@pytest.fixture
async def examples() -> AsyncIterator[ExampleRunner]:
    runner = ExampleRunner()
    try:
        yield runner
    finally:
        await runner.close()


@pytest.fixture(autouse=True)
def _keep_root_logging() -> Iterator[None]:
    """``logging.basicConfig`` in an example must not configure logging for later tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def result_of(task: Any) -> Any:
    """Wait for a sent task and return its value, failing the test if the task failed."""
    result = await task.wait_result(timeout=WAIT)
    assert isinstance(result, TaskiqResult)
    assert not result.is_err, result.error
    return result.return_value


# ======================================================================================
# Stand-ins for what the examples use without defining
# ======================================================================================


class FakeDbConnection:
    """An async database connection that answers every query with one row."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.closed = False

    async def execute(self, query: str) -> dict[str, Any]:
        assert not self.closed, "query on a closed connection"
        self.queries.append(query)
        return {"query": query, "rows": [[len(self.queries)]]}

    async def close(self) -> None:
        self.closed = True


class FakeCacheClient:
    """An async key/value cache client remembering the ttl of each key."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.ttls: dict[str, int | None] = {}
        self.closed = False

    async def get(self, key: str) -> Any:
        assert not self.closed, "get on a closed cache"
        return self.data.get(key)

    async def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        assert not self.closed, "set on a closed cache"
        self.data[key] = value
        self.ttls[key] = ttl

    async def close(self) -> None:
        self.closed = True


class FakePool:
    """A database connection pool; ``close_error`` makes closing it fail."""

    def __init__(
        self, dsn: str, min_size: int, max_size: int, close_error: Exception | None = None
    ) -> None:
        self.dsn, self.min_size, self.max_size = dsn, min_size, max_size
        self.close_error = close_error
        self.closed = False

    async def close(self) -> None:
        if self.close_error is not None:
            raise self.close_error
        self.closed = True


class FakeMetric:
    """A prometheus metric: name, documentation and what was recorded."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name, self.documentation = name, documentation
        self.recorded: list[float] = []

    def inc(self, amount: float = 1) -> None:
        self.recorded.append(amount)

    def observe(self, amount: float) -> None:
        self.recorded.append(amount)


class FakeCounter(FakeMetric):
    pass


class FakeHistogram(FakeMetric):
    pass


@dataclass
class StandIns:
    """The helper functions the examples call, recording what they created."""

    db_connections: list[FakeDbConnection] = field(default_factory=list)
    cache_clients: list[FakeCacheClient] = field(default_factory=list)
    pools: list[FakePool] = field(default_factory=list)
    computations: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=lambda: {"region": "eu", "batch_size": 10})
    failures: dict[str, Exception] = field(default_factory=dict)

    async def create_db_connection(self) -> FakeDbConnection:
        connection = FakeDbConnection()
        self.db_connections.append(connection)
        return connection

    async def create_cache_client(self) -> FakeCacheClient:
        if "cache" in self.failures:
            raise self.failures["cache"]
        client = FakeCacheClient()
        self.cache_clients.append(client)
        return client

    async def create_database_pool(self) -> FakePool:
        if "database" in self.failures:
            raise self.failures["database"]
        pool = FakePool("postgresql://localhost/app", 1, 10, self.failures.get("pool_close"))
        self.pools.append(pool)
        return pool

    async def create_pool(self, dsn: str, *, min_size: int = 10, max_size: int = 10) -> FakePool:
        """``asyncpg.create_pool``."""
        pool = FakePool(dsn, min_size, max_size)
        self.pools.append(pool)
        return pool

    async def load_configuration(self) -> dict[str, Any]:
        return dict(self.config)

    async def expensive_computation(self, input_data: str) -> dict[str, Any]:
        self.computations.append(input_data)
        await asyncio.sleep(0)
        return {"input": input_data, "length": len(input_data), "upper": input_data.upper()}

    def asyncpg_module(self) -> types.ModuleType:
        module = types.ModuleType("asyncpg")
        module.create_pool = self.create_pool  # type: ignore[attr-defined]
        return module


def prometheus_client_module() -> types.ModuleType:
    module = types.ModuleType("prometheus_client")
    module.Counter = FakeCounter  # type: ignore[attr-defined]
    module.Histogram = FakeHistogram  # type: ignore[attr-defined]
    return module


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> StandIns:
    """The helpers, with ``asyncpg`` and ``prometheus_client`` importable as fakes."""
    helpers = StandIns()
    monkeypatch.setitem(sys.modules, "asyncpg", helpers.asyncpg_module())
    monkeypatch.setitem(sys.modules, "prometheus_client", prometheus_client_module())
    return helpers


def messages_of(caplog: pytest.LogCaptureFixture, logger_name: str) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == logger_name]


# ======================================================================================
# overview.md
# ======================================================================================


def test_overview_core_imports(examples: ExampleRunner) -> None:
    namespace = examples.run(OVERVIEW_CORE_IMPORT, "overview core imports")
    assert isinstance(namespace["taskq"], types.ModuleType)
    assert namespace["taskq"].InMemoryBroker is InMemoryBroker

    namespace = examples.run(OVERVIEW_COMMON_IMPORTS, "overview common imports")
    assert issubclass(namespace["InMemoryBroker"], AsyncBroker)
    assert namespace["TaskiqResult"] is TaskiqResult
    assert namespace["Context"] is Context


async def test_overview_basic_usage_tasks_return_their_results(examples: ExampleRunner) -> None:
    namespace = examples.run(OVERVIEW_BASIC_USAGE, "overview basic usage")
    broker = namespace["broker"]
    assert isinstance(broker, InMemoryBroker)

    await broker.startup()
    result1 = await namespace["add_numbers"].kiq(5, 3)
    result2 = await namespace["multiply_numbers"].kiq(4, 7)
    assert await result_of(result1) == 8
    assert await result_of(result2) == 28
    await broker.shutdown()


async def test_overview_basic_usage_main(
    examples: ExampleRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = examples.run(OVERVIEW_BASIC_USAGE, "overview basic usage main")
    await asyncio.wait_for(namespace["main"](), WAIT)

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    # `value1` is the TaskiqResult (the comments "# 8" and "# 28" are its return values).
    assert lines[0].startswith("Addition result: ")
    assert "return_value=8" in lines[0]
    assert lines[1].startswith("Multiplication result: ")
    assert "return_value=28" in lines[1]


def test_overview_basic_usage_as_a_script(capsys: pytest.CaptureFixture[str]) -> None:
    # Run as `python example.py`: `__name__ == "__main__"` makes it call asyncio.run(main()).
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(OVERVIEW_BASIC_USAGE, "<reference example: basic usage>", "exec"), namespace)

    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["Addition result", "Multiplication result"]
    assert "return_value=8" in lines[0]
    assert "return_value=28" in lines[1]


# ======================================================================================
# brokers-api.txt
# ======================================================================================


async def test_brokers_api_simple_in_memory_broker(examples: ExampleRunner) -> None:
    namespace = examples.run(BROKERS_SIMPLE_INMEMORY, "brokers simple in-memory broker")
    broker, my_task = namespace["broker"], namespace["my_task"]
    assert broker.find_task(my_task.task_name) is my_task

    await broker.startup()
    assert await result_of(await my_task.kiq(21)) == 42
    assert await result_of(await my_task.kiq(x=-4)) == -8
    await broker.shutdown()


async def test_brokers_api_configured_zeromq_broker(examples: ExampleRunner) -> None:
    pytest.importorskip("taskq_zmq")
    pytest.importorskip("taskq_middlewares")
    from taskq import SimpleRetryMiddleware, ZeroMQBroker

    backend = InmemoryResultBackend()
    # The example's address, on a free port: parallel test runs must not collide on 5555.
    address = f"tcp://localhost:{free_port()}"
    source = BROKERS_CONFIGURED_ZEROMQ.replace("tcp://localhost:5555", address)
    namespace = examples.run(source, "brokers configured zeromq", my_result_backend=backend)
    broker, process_data = namespace["broker"], namespace["process_data"]
    assert isinstance(broker, ZeroMQBroker)
    assert broker.result_backend is backend
    assert [type(m) for m in broker.middlewares] == [SimpleRetryMiddleware]

    # A worker on the other end of the socket, sharing the (in-process) result backend.
    worker = ZeroMQBroker(address, zmq_sub_host=address).with_result_backend(backend)
    worker = examples.track(worker)
    worker.is_worker_process = True
    worker.register_task(process_data.original_func, process_data.task_name)
    await broker.startup()
    await worker.startup()
    receiver = Receiver(worker)
    finished = asyncio.Event()
    consumer = asyncio.create_task(receiver.listen(finished))
    try:
        # Sockets connect asynchronously: resend until the worker is connected.
        deadline = time.monotonic() + WAIT
        while True:
            task = await process_data.kiq("payload")
            try:
                result = await task.wait_result(timeout=0.25)
                break
            except TaskiqResultTimeoutError:
                if time.monotonic() > deadline:
                    raise
        assert not result.is_err, result.error
        assert result.return_value == {"processed": "payload"}
    finally:
        finished.set()
        await asyncio.wait_for(consumer, WAIT)
        receiver.close()
    await worker.shutdown()
    await broker.shutdown()


async def test_brokers_api_event_handlers(
    examples: ExampleRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = examples.run(BROKERS_SIMPLE_INMEMORY, "brokers event handlers")
    examples.run(
        BROKERS_EVENT_HANDLERS, "brokers event handlers", namespace, TaskiqEvents=TaskiqEvents
    )
    broker = namespace["broker"]

    await broker.startup()  # InMemoryBroker is its own worker: WORKER_STARTUP runs
    assert capsys.readouterr().out == "Worker starting up\n"
    assert await result_of(await namespace["my_task"].kiq(5)) == 10
    await broker.shutdown()
    assert capsys.readouterr().out == "Worker shutting down\n"


# ======================================================================================
# events-state.md
# ======================================================================================


async def test_events_basic_event_handlers(
    examples: ExampleRunner, stand_ins: StandIns, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = examples.run(
        EVENTS_BASIC_HANDLERS,
        "events basic event handlers",
        create_db_connection=stand_ins.create_db_connection,
        create_cache_client=stand_ins.create_cache_client,
    )
    broker, database_task = namespace["broker"], namespace["database_task"]

    await broker.startup()
    assert capsys.readouterr().out == "Worker starting up...\nWorker initialized successfully\n"
    [db] = stand_ins.db_connections
    [cache] = stand_ins.cache_clients
    assert broker.state.get_value("db_connection") is db
    assert broker.state.get_value("cache") is cache

    # The first run queries the database and caches the answer for 300 seconds...
    first = await result_of(await database_task.kiq("SELECT count(*) FROM users"))
    assert first == {"query": "SELECT count(*) FROM users", "rows": [[1]]}
    assert cache.data == {"SELECT count(*) FROM users": first}
    assert cache.ttls == {"SELECT count(*) FROM users": 300}
    # ...the second is answered from the cache.
    second = await result_of(await database_task.kiq("SELECT count(*) FROM users"))
    assert second == first
    assert db.queries == ["SELECT count(*) FROM users"]
    assert await result_of(await database_task.kiq(query="SELECT 2")) == {
        "query": "SELECT 2",
        "rows": [[2]],
    }

    await broker.shutdown()
    assert capsys.readouterr().out == "Worker shutting down...\nWorker shutdown complete\n"
    assert db.closed
    assert cache.closed


async def test_events_multiple_event_handlers(
    examples: ExampleRunner, stand_ins: StandIns, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    broker = InMemoryBroker()
    namespace = examples.run(
        EVENTS_MULTIPLE_HANDLERS,
        "events multiple event handlers",
        broker=broker,
        TaskiqEvents=TaskiqEvents,
    )
    initialize_logging = namespace["initialize_logging"]
    assert broker.event_handlers[TaskiqEvents.CLIENT_STARTUP] == [initialize_logging]
    assert broker.event_handlers[TaskiqEvents.WORKER_STARTUP] == [
        initialize_logging,
        namespace["setup_metrics"],
    ]

    await broker.startup()
    # InMemoryBroker runs the CLIENT_STARTUP and then the WORKER_STARTUP handlers.
    assert messages_of(caplog, "taskiq") == [
        (logging.INFO, "Logging initialized"),
        (logging.INFO, "Logging initialized"),
        (logging.INFO, "Metrics initialized"),
    ]
    assert broker.state.get_value("logger") is logging.getLogger("taskiq")
    counter = broker.state.get_value("task_counter")
    duration = broker.state.get_value("task_duration")
    assert isinstance(counter, FakeCounter)
    assert (counter.name, counter.documentation) == ("taskiq_tasks_total", "Total tasks executed")
    assert isinstance(duration, FakeHistogram)
    assert duration.name == "taskiq_task_duration_seconds"

    # Tasks see what the handlers stored.
    @broker.task
    async def count_task() -> list[str]:
        broker.state.get_value("task_counter").inc()
        return sorted(broker.state.keys())

    assert await result_of(await count_task.kiq()) == ["logger", "task_counter", "task_duration"]
    assert counter.recorded == [1]
    await broker.shutdown()


async def test_events_programmatic_event_handler_registration(
    examples: ExampleRunner, stand_ins: StandIns, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    first_broker = InMemoryBroker()
    namespace = examples.run(
        EVENTS_MULTIPLE_HANDLERS,
        "events programmatic registration",
        broker=first_broker,
        TaskiqEvents=TaskiqEvents,
        InMemoryBroker=InMemoryBroker,
    )
    examples.run(EVENTS_PROGRAMMATIC_REGISTRATION, "events programmatic registration", namespace)
    startup_handler = namespace["database_startup_handler"]
    shutdown_handler = namespace["database_shutdown_handler"]

    # add_event_handler registered the handlers on the first broker, after the earlier ones.
    assert first_broker.event_handlers[TaskiqEvents.WORKER_STARTUP][-1] is startup_handler
    assert first_broker.event_handlers[TaskiqEvents.WORKER_SHUTDOWN] == [shutdown_handler]
    await first_broker.startup()
    [pool] = stand_ins.pools
    assert first_broker.state.get_value("db_pool") is pool
    assert (pool.dsn, pool.min_size, pool.max_size) == (
        "postgresql://user:password@localhost/mydb",
        5,
        20,
    )
    await first_broker.shutdown()
    assert pool.closed

    # The builder pattern made a new broker with the handlers in the order given.
    builder_broker = namespace["broker"]
    assert isinstance(builder_broker, InMemoryBroker)
    assert builder_broker is not first_broker
    assert builder_broker.event_handlers[TaskiqEvents.WORKER_STARTUP] == [
        startup_handler,
        namespace["setup_metrics"],
    ]
    assert builder_broker.event_handlers[TaskiqEvents.WORKER_SHUTDOWN] == [shutdown_handler]
    # setup_metrics logs through the "logger" state value, which initialize_logging sets on
    # the first broker only: give the new broker that handler too before starting it.
    builder_broker.add_event_handler(TaskiqEvents.CLIENT_STARTUP, namespace["initialize_logging"])
    await builder_broker.startup()
    [_, builder_pool] = stand_ins.pools
    assert builder_broker.state.get_value("db_pool") is builder_pool
    assert isinstance(builder_broker.state.get_value("task_counter"), FakeCounter)
    await builder_broker.shutdown()
    assert builder_pool.closed


async def test_events_state_management(examples: ExampleRunner, stand_ins: StandIns) -> None:
    namespace = examples.run(
        EVENTS_STATE_MANAGEMENT,
        "events state management",
        broker=InMemoryBroker(),
        TaskiqEvents=TaskiqEvents,
        load_configuration=stand_ins.load_configuration,
        expensive_computation=stand_ins.expensive_computation,
        time=time,
    )
    broker = namespace["broker"]
    cached_computation = namespace["cached_computation"]
    get_worker_statistics = namespace["get_worker_statistics"]

    before = time.time()
    await broker.startup()
    assert broker.state.get_value("config") == stand_ins.config
    assert broker.state.get_value("shared_cache") == {}
    stats = broker.state.get_value("worker_stats")
    assert stats["tasks_executed"] == 0
    assert stats["errors"] == 0
    assert before - 1 <= stats["start_time"] <= time.time()

    hello = {"input": "hello", "length": 5, "upper": "HELLO"}
    assert await result_of(await cached_computation.kiq("hello")) == hello
    assert await result_of(await cached_computation.kiq("hello")) == hello  # from the cache
    assert await result_of(await cached_computation.kiq(input_data="abc")) == {
        "input": "abc",
        "length": 3,
        "upper": "ABC",
    }
    assert stand_ins.computations == ["hello", "abc"]
    assert set(broker.state.get_value("shared_cache")) == {"hello", "abc"}

    statistics = await result_of(await get_worker_statistics.kiq())
    assert set(statistics) == {"statistics", "configuration", "state_keys"}
    assert statistics["statistics"]["tasks_executed"] == 2  # cache hits are not counted
    assert statistics["statistics"]["errors"] == 0
    assert statistics["statistics"]["start_time"] == stats["start_time"]
    assert statistics["configuration"] == stand_ins.config
    assert sorted(statistics["state_keys"]) == ["config", "shared_cache", "worker_stats"]
    await broker.shutdown()


def run_error_handling_example(examples: ExampleRunner, stand_ins: StandIns) -> AsyncBroker:
    namespace = examples.run(
        EVENTS_ERROR_HANDLING,
        "events error handling",
        broker=InMemoryBroker(),
        TaskiqEvents=TaskiqEvents,
        logging=logging,
        create_database_pool=stand_ins.create_database_pool,
        create_cache_client=stand_ins.create_cache_client,
    )
    broker: AsyncBroker = namespace["broker"]

    @broker.task("probe")
    async def probe() -> dict[str, bool]:
        state = broker.state
        return {
            "db_pool": state.get_value("db_pool") is not None,
            "cache": state.get_value("cache") is not None,
        }

    return broker


async def test_events_error_handling_all_resources_available(
    examples: ExampleRunner, stand_ins: StandIns, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    broker = run_error_handling_example(examples, stand_ins)

    await broker.startup()
    [pool] = stand_ins.pools
    [cache] = stand_ins.cache_clients
    assert broker.state.get_value("db_pool") is pool
    assert broker.state.get_value("cache") is cache
    assert messages_of(caplog, "taskiq.startup") == [
        (logging.INFO, "Database pool initialized"),
        (logging.INFO, "Cache initialized"),
    ]
    probe = broker.find_task("probe")
    assert await result_of(await probe.kiq()) == {"db_pool": True, "cache": True}

    await broker.shutdown()
    assert pool.closed
    assert cache.closed
    assert messages_of(caplog, "taskiq.shutdown") == [
        (logging.INFO, "Database pool closed"),
        (logging.INFO, "Cache closed"),
    ]


async def test_events_error_handling_optional_cache_failure_is_tolerated(
    examples: ExampleRunner, stand_ins: StandIns, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stand_ins.failures["cache"] = TimeoutError("cache unreachable")
    broker = run_error_handling_example(examples, stand_ins)

    await broker.startup()  # "Continue without cache"
    assert broker.state.get_value("cache", "missing") is None
    assert messages_of(caplog, "taskiq.startup") == [
        (logging.INFO, "Database pool initialized"),
        (logging.WARNING, "Cache initialization failed: cache unreachable"),
    ]
    # The worker runs tasks without a cache.
    probe = broker.find_task("probe")
    assert await result_of(await probe.kiq()) == {"db_pool": True, "cache": False}

    await broker.shutdown()
    [pool] = stand_ins.pools
    assert pool.closed
    assert messages_of(caplog, "taskiq.shutdown") == [(logging.INFO, "Database pool closed")]


async def test_events_error_handling_critical_database_failure_prevents_start(
    examples: ExampleRunner, stand_ins: StandIns, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    failure = ConnectionRefusedError("database is down")
    stand_ins.failures["database"] = failure
    broker = run_error_handling_example(examples, stand_ins)

    # "raise to prevent worker start": the error propagates out of startup.
    with pytest.raises(ConnectionRefusedError) as raised:
        await broker.startup()
    assert raised.value is failure
    assert messages_of(caplog, "taskiq.startup") == [
        (logging.ERROR, "Failed to initialize database: database is down"),
    ]
    assert "db_pool" not in broker.state
    assert stand_ins.cache_clients == []  # optional resources were not even tried

    await broker.shutdown()  # nothing to clean up, and the shutdown handler copes with that
    assert messages_of(caplog, "taskiq.shutdown") == []


async def test_events_error_handling_shutdown_survives_a_failing_close(
    examples: ExampleRunner, stand_ins: StandIns, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stand_ins.failures["pool_close"] = OSError("connection reset")
    broker = run_error_handling_example(examples, stand_ins)
    await broker.startup()
    [cache] = stand_ins.cache_clients

    await broker.shutdown()  # does not raise
    assert cache.closed  # the cache is still closed after the pool failed to
    assert messages_of(caplog, "taskiq.shutdown") == [
        (logging.ERROR, "Error closing database pool: connection reset"),
        (logging.INFO, "Cache closed"),
    ]


# ======================================================================================
# writing-a-broker.txt
# ======================================================================================


@dataclass
class ChannelMessage:
    """A message of a broker's channel, with its own ack and reject methods."""

    bytes: bytes
    settled: list[str] = field(default_factory=list)

    async def ack(self) -> None:
        self.settled.append("ack")

    async def reject(self) -> None:
        self.settled.append("reject")


async def test_writing_a_broker_template_as_written(examples: ExampleRunner) -> None:
    namespace = examples.run(WRITING_BROKER_TEMPLATE, "writing a broker template")
    my_broker_class = namespace["MyBroker"]
    assert issubclass(my_broker_class, AsyncBroker)

    broker = examples.track(my_broker_class())  # kick and listen are all it must implement
    assert isinstance(broker.state, TaskiqState)
    events: list[str] = []
    broker.add_event_handler(TaskiqEvents.CLIENT_STARTUP, lambda state: events.append("start"))
    broker.add_event_handler(TaskiqEvents.CLIENT_SHUTDOWN, lambda state: events.append("stop"))

    await broker.startup()  # the template's startup calls the base class's
    assert events == ["start"]

    @broker.task
    async def noop() -> None: ...

    # kick is `pass`: sending works and goes nowhere.
    task = await noop.kiq()
    assert isinstance(task.task_id, str)
    assert task.task_id

    # listen yields whatever it got: `...` is the template's placeholder.
    messages = broker.listen()
    assert await anext(messages) is Ellipsis
    await messages.aclose()

    await broker.shutdown()
    assert events == ["start", "stop"]


def queue_broker_class(my_broker_class: type[AsyncBroker]) -> type[AsyncBroker]:
    """The template made concrete: kick and listen through an asyncio.Queue."""

    class QueueBroker(my_broker_class):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
            self.kicked: list[BrokerMessage] = []

        async def kick(self, message: BrokerMessage) -> None:
            self.kicked.append(message)
            await self.queue.put(message.message)

        async def listen(self) -> Any:
            while (data := await self.queue.get()) is not None:
                yield data

        def stop(self) -> None:
            self.queue.put_nowait(None)

    return QueueBroker


async def test_writing_a_broker_template_subclassed_runs_tasks(examples: ExampleRunner) -> None:
    namespace = examples.run(WRITING_BROKER_TEMPLATE, "writing a broker queue broker")
    broker: Any = examples.track(
        queue_broker_class(namespace["MyBroker"])().with_result_backend(InmemoryResultBackend())
    )

    @broker.task("double", queue="default")
    async def double(x: int) -> int:
        return x * 2

    @broker.task
    def shout(text: str) -> str:
        return text.upper() + "!"

    await broker.startup()
    receiver = Receiver(broker)
    consumer = asyncio.create_task(receiver.listen())
    try:
        doubled = await double.kiq(21)
        shouted = await shout.kiq(text="hi")
        assert await result_of(doubled) == 42
        assert await result_of(shouted) == "HI!"
    finally:
        broker.stop()
        await asyncio.wait_for(consumer, WAIT)
        receiver.close()
    await broker.shutdown()

    # kick got BrokerMessages carrying the encoded message as bytes.
    first, second = broker.kicked
    assert isinstance(first, BrokerMessage)
    assert (first.task_id, first.task_name, first.labels) == (
        doubled.task_id,
        "double",
        {"queue": "default"},
    )
    assert isinstance(first.message, bytes)
    decoded = broker.formatter.loads(first.message)
    assert (decoded.task_name, decoded.args, decoded.kwargs) == ("double", [21], {})
    assert second.task_name == shout.task_name


async def test_writing_a_broker_acknowledgement(examples: ExampleRunner) -> None:
    namespace = examples.run(WRITING_BROKER_TEMPLATE, "writing a broker acknowledgement")
    examples.run(WRITING_BROKER_ACKABLE_LISTEN, "writing a broker acknowledgement", namespace)
    my_broker_class, ackable_listen = namespace["MyBroker"], namespace["listen"]

    class ChannelBroker(my_broker_class):  # type: ignore[misc, valid-type]
        listen = ackable_listen

        def __init__(self, channel: list[ChannelMessage]) -> None:
            super().__init__()
            self.my_channel = channel

    def encode(task_id: str, name: str, *args: Any) -> bytes:
        return broker.formatter.dumps(TaskiqMessage(task_id, name, {}, list(args), {})).message

    channel: list[ChannelMessage] = []
    broker: Any = examples.track(
        ChannelBroker(channel).with_result_backend(InmemoryResultBackend())
    )

    @broker.task("double")
    async def double(x: int) -> int:
        return x * 2

    channel.extend([ChannelMessage(encode("id-1", "double", 21)), ChannelMessage(b"\xffnot json")])

    # listen yields AckableMessages built from the channel's messages.
    messages = broker.listen()
    first = await anext(messages)
    await messages.aclose()
    assert isinstance(first, AckableMessage)
    assert first.data == channel[0].bytes
    assert first.ack == channel[0].ack
    assert first.reject == channel[0].reject

    # A receiver acks what it ran and rejects what it cannot read.
    await broker.startup()
    receiver = Receiver(broker)
    await asyncio.wait_for(receiver.listen(), WAIT)  # ends with the channel
    receiver.close()
    assert channel[0].settled == ["ack"]
    assert channel[1].settled == ["reject"]
    result = await broker.result_backend.get_result("id-1")
    assert (result.is_err, result.return_value) == (False, 42)
    await broker.shutdown()


def test_writing_a_broker_ackable_message_fields() -> None:
    async def ack() -> None: ...

    message = AckableMessage(data=b"payload", ack=ack, reject=None)
    assert (message.data, message.ack, message.reject) == (b"payload", ack, None)
    assert AckableMessage(data="text", ack=ack).reject is None
