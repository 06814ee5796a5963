"""`RedisResultBackend`: results in Redis for many hosts; waiters are woken by pub/sub."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, ClassVar, TypeVar

from taskq.abc.result_backend import DEFAULT_RESULT_TTL_S, AsyncResultBackend
from taskq.abc.serializer import TaskiqSerializer
from taskq.capabilities import Capability
from taskq.exceptions import ResultBackendError, ResultGetError, TaskiqError
from taskq.progress import TaskProgress
from taskq.result import TaskiqResult
from taskq.task_events import quoted
from taskq.toolkit import cancel_until_done, error_line
from taskq_result_backends._codec import (
    decode_progress,
    decode_result,
    encode_progress,
    encode_result,
    serializer_or_default,
)
from taskq_result_backends.errors import ResultKeyTypeError, ResultStoreUnavailableError
from taskq_result_backends.ttl import CheckedResultTTL

try:
    import redis.asyncio as aioredis

    from taskq_redis.connection import DEFAULT_URL, RedisConnection
    from taskq_redis.errors import RedisUnavailableError, translated
    from taskq_redis.reconnect import FIRST_RETRY_DELAY_S, Reconnector
    from taskq_redis.retrying import (
        DEFAULT_RECONNECT_MAX_DELAY_S,
        DEFAULT_RECONNECT_TIMEOUT_S,
        RetryingCalls,
    )
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess
    if (exc.name or "").partition(".")[0] not in ("redis", "taskq_redis"):
        raise
    raise ImportError(
        "RedisResultBackend needs taskq-redis, which is not installed: "
        "pip install 'taskq-result-backends[redis]'"
    ) from exc

_ReturnType = TypeVar("_ReturnType")

#: Seconds the pub/sub reader blocks on its socket before reading again (no query is sent).
READ_BLOCK_S = 1.0
#: What the pub/sub reader does, as errors and logs say it.
LISTEN = "listen for stored results"


class RedisResultStoreUnavailableError(RedisUnavailableError, ResultStoreUnavailableError):
    """The result backend's Redis did not answer.

    Both a `ResultStoreUnavailableError` (as before) and a
    `taskq_redis.RedisUnavailableError` (as every Redis outage).
    """

    __template__ = "the result store's Redis server does not answer"


class RedisResultBackend(CheckedResultTTL, AsyncResultBackend[_ReturnType]):
    """Stores results and progress reports in Redis, for workers and clients on many hosts.

    A result is the string key ``{prefix}:result:{task_id}``, a progress report
    ``{prefix}:progress:{task_id}``; with a TTL both are written with ``SET ... PX``.
    Storing a result also publishes its task id on the channel ``{prefix}:ready`` (in the
    same MULTI/EXEC as the SET), so `wait_ready` is woken at once instead of polling.

    The keys of the prefix are the backend's: a key of another Redis type at a result or
    progress key (a list written there by other code) is no result, so the task is not ready;
    reading it raises `ResultKeyTypeError` naming the key, and storing replaces it.

    Waiting uses one pub/sub connection per backend, opened by the first `wait_ready` and
    read by one task that wakes the waiters of each published id: thousands of waiters cost
    one connection. Each waiting process receives every ready notice of its prefix (a task
    id); processes that only store results (workers) never subscribe. A lost pub/sub
    connection is reopened on taskq-redis's reconnect schedule for up to
    ``reconnect_timeout_s``, and every waiter then checks its key again, so a notice published
    meanwhile is not missed.

    Every call rides out a Redis outage as the broker's calls do: one that fails on the
    connection is retried with capped exponential backoff (logged as one warning when the
    outage starts and one when Redis answers again, logger ``taskq.redis``) for
    ``reconnect_timeout_s``, then raises `RedisResultStoreUnavailableError`. A worker storing a
    result thus waits out a short outage instead of losing the result; once a call of an
    outage gave up, the next ones try once until Redis answers (a worker then leaves the
    message unsettled, for redelivery). ``wait_ready`` with a timeout of 0 does not retry.

    Args:
        url: The Redis server, ``redis://[[user]:[password]@]host[:port][/db]``, ``rediss://``
            for TLS or ``unix://``.
        prefix: Start of every key and of the channel; backends sharing results must share it.
        result_ttl: Seconds a result or progress report is kept: one day by default; None
            keeps it forever. The attribute may be changed at any time; it applies to what is
            stored afterwards.
        serializer: Encodes results (default: taskq's `JSONSerializer`). Writers and readers
            must use the same one.
        max_connections: At most this many connections (at least 2: waiting holds one);
            when all are busy, a call waits for one (up to the pool's ``timeout``, 20 s by
            default). None: redis-py's default for such a pool (50).
        reconnect_max_delay_s: Longest pause between reconnection attempts. Default 5.
        reconnect_timeout_s: Seconds a call (and the pub/sub reader) keeps retrying while
            Redis does not answer, before raising `RedisResultStoreUnavailableError`.
            Default 30; 0: no retry.
        **connection_kwargs: Passed to redis-py's `BlockingConnectionPool` (``timeout``,
            ``socket_timeout``, ``password``, ``ssl_cert_reqs``, ...). ``decode_responses``
            must stay false.

    Raises:
        ValueError: A bad URL scheme, ``result_ttl``, ``max_connections``, reconnect
            setting or ``decode_responses=True``.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.PROGRESS, Capability.TTL, Capability.NOTIFY, Capability.CROSS_PROCESS}
    )

    def __init__(
        self,
        url: str = DEFAULT_URL,
        prefix: str = "taskq",
        result_ttl: float | None = DEFAULT_RESULT_TTL_S,
        serializer: TaskiqSerializer | None = None,
        max_connections: int | None = None,
        *,
        reconnect_max_delay_s: float = DEFAULT_RECONNECT_MAX_DELAY_S,
        reconnect_timeout_s: float = DEFAULT_RECONNECT_TIMEOUT_S,
        **connection_kwargs: Any,
    ) -> None:
        self.connection = RedisConnection(
            url, "RedisResultBackend", max_connections, **connection_kwargs
        )
        self.url = url
        self.prefix = prefix
        self.result_ttl = result_ttl
        self.serializer = serializer_or_default(serializer)
        self.max_connections = max_connections
        self.connection_kwargs = connection_kwargs
        self.ready_channel = f"{prefix}:ready"
        self.calls = RetryingCalls(
            self.connection.server,
            reconnect_max_delay_s,
            reconnect_timeout_s,
            RedisResultStoreUnavailableError,
            ResultBackendError,
            self.connection,
        )
        self.reconnector: Reconnector = self.calls.reconnector
        self._listener: asyncio.Task[None] | None = None
        self._subscribed: asyncio.Future[None] | None = None
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}

    def result_key(self, task_id: str) -> str:
        """The key holding the result of ``task_id``."""
        return f"{self.prefix}:result:{task_id}"

    def progress_key(self, task_id: str) -> str:
        """The key holding the latest progress report of ``task_id``."""
        return f"{self.prefix}:progress:{task_id}"

    async def startup(self) -> None:
        """Connect and check that the server answers (retrying for ``reconnect_timeout_s``).

        Raises:
            RedisResultStoreUnavailableError: The server does not answer at ``url``.
        """
        self.reconnector.closed = False
        await self.calls("connect", lambda: self._client().ping())

    async def shutdown(self) -> None:
        """Stop waiting (pending waiters get `ResultBackendError`) and close the connections.

        Calls still retrying stop at their next failure; later calls open the connections
        again but do not retry until the next `startup`.
        """
        listener, self._listener = self._listener, None
        if listener is not None:
            await cancel_until_done(listener)  # redis-py may swallow one cancellation
        stopped = ResultBackendError("the result backend was shut down during the wait")
        if self._subscribed is not None and not self._subscribed.done():
            self._subscribed.set_exception(stopped)
        self._subscribed = None
        self._fail_waiters(stopped)
        self.reconnector.closed = True
        await self.connection.close()

    async def set_result(self, task_id: str, result: TaskiqResult[_ReturnType]) -> None:
        """Store ``result`` and wake who waits for it.

        It replaces what its key held: an earlier result, or a value of another Redis type.

        Raises:
            SerializationError: The result cannot be encoded by the serializer.
            RedisResultStoreUnavailableError: The server did not answer for
                ``reconnect_timeout_s``.
        """
        payload = encode_result(self.serializer, task_id, result)
        key, ttl_ms = self.result_key(task_id), self._ttl_ms()

        async def store() -> None:
            async with self._client().pipeline(transaction=True) as pipe:
                pipe.set(key, payload, px=ttl_ms)
                pipe.publish(self.ready_channel, task_id)
                await pipe.execute()

        await self.calls(f"store the result of task {task_id}", store)

    async def is_result_ready(self, task_id: str) -> bool:
        """Tell whether a result is stored (and not expired) for ``task_id``.

        A value of another Redis type at its key is no result: False (`get_result` says why).
        """
        return await self._is_ready(task_id)

    async def _is_ready(self, task_id: str, retry: bool = True) -> bool:
        key = self.result_key(task_id)
        action = f"check the result of task {task_id}"
        found = await self.calls(action, lambda: self._client().type(key), retry=retry)
        return _type_name(found) == "string"

    async def get_result(self, task_id: str, with_logs: bool = True) -> TaskiqResult[_ReturnType]:
        """Return the stored result of ``task_id`` (its log only when ``with_logs``).

        Raises:
            ResultGetError: No result is stored (or it expired), or it cannot be decoded.
            ResultKeyTypeError: Its key holds another Redis type (other code wrote there).
        """
        key = self.result_key(task_id)
        payload = await self._get(f"read the result of task {task_id}", key, "a result")
        if payload is None:
            raise ResultGetError(f"no result is stored for task {task_id} (or it expired)")
        return decode_result(self.serializer, task_id, _as_bytes(payload), with_logs)

    async def set_progress(self, task_id: str, progress: TaskProgress[Any]) -> None:
        """Store the latest progress report of ``task_id`` (kept for ``result_ttl`` too).

        Raises:
            SerializationError: The report's metadata cannot be encoded by the serializer.
        """
        payload = encode_progress(self.serializer, task_id, progress)
        key, ttl_ms = self.progress_key(task_id), self._ttl_ms()
        await self.calls(
            f"store the progress of task {task_id}",
            lambda: self._client().set(key, payload, px=ttl_ms),
        )

    async def get_progress(self, task_id: str) -> TaskProgress[Any] | None:
        """Return the latest progress report of ``task_id``, or None.

        Raises:
            ResultKeyTypeError: Its key holds another Redis type (other code wrote there).
        """
        key = self.progress_key(task_id)
        payload = await self._get(f"read the progress of task {task_id}", key, "a progress report")
        if payload is None:
            return None
        return decode_progress(self.serializer, task_id, _as_bytes(payload))

    async def wait_ready(self, task_id: str, timeout: float | None, check_interval: float) -> bool:
        """Wait until a result for ``task_id`` is stored; False when ``timeout`` s passed first.

        The wait is woken by the writer's notification; ``check_interval`` is not used.
        The channel is subscribed (and the subscription confirmed) before the key is checked,
        so a result stored in between is not missed; after a reconnection of the pub/sub
        connection every waiter checks its key again. With a ``timeout`` of 0 or less it only
        checks the key, once, without retrying.

        Raises:
            RedisResultStoreUnavailableError: The server stopped answering during the wait.
        """
        if timeout is not None and timeout <= 0:
            return await self._is_ready(task_id, retry=False)
        try:
            await asyncio.wait_for(self._wait(task_id), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def _get(self, action: str, key: str, kept: str) -> bytes | str | None:
        """GET ``key``, where the backend keeps ``kept`` as a string; another type raises.

        Raises:
            ResultKeyTypeError: ``key`` holds another type than a string.
        """
        try:
            payload: bytes | str | None = await self.calls(action, lambda: self._client().get(key))
        except ResultBackendError as exc:
            answer = exc.__cause__
            if not (isinstance(answer, aioredis.ResponseError) and "WRONGTYPE" in str(answer)):
                raise
            found = _type_name(
                await self.calls(
                    f"check the type of {quoted(key)}", lambda: self._client().type(key)
                )
            )
            if found in ("string", "none"):  # replaced or deleted since
                raise
            raise ResultKeyTypeError(
                f"cannot read {kept}: the key {quoted(key)} at {self.connection.server} holds "
                f"a {found}, not a string: RedisResultBackend keeps {kept} there (other code "
                "wrote that key; storing one replaces it); delete that key or "
                "give the backend a prefix of its own",
                key=key,
                found=found,
                needed="string",
            ) from answer
        return payload

    # -- waiting -------------------------------------------------------------------------------

    async def _wait(self, task_id: str) -> None:
        await self._listening()
        loop = asyncio.get_running_loop()
        while True:
            woken: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(task_id, set()).add(woken)
            try:
                if await self.is_result_ready(task_id):
                    return
                await woken
            finally:
                self._forget(task_id, woken)

    async def _listening(self) -> None:
        """Start the pub/sub reader unless it runs; return once the channel is subscribed."""
        if self._listener is None or self._listener.done() or self._subscribed is None:
            self._subscribed = asyncio.get_running_loop().create_future()
            self._subscribed.add_done_callback(_retrieve_exception)
            self._listener = asyncio.create_task(self._listen(self._subscribed))
        await asyncio.shield(self._subscribed)

    async def _listen(self, subscribed: asyncio.Future[None]) -> None:
        """Wake the waiters of each id published on the ready channel, reconnecting if lost.

        ``subscribed`` is resolved by the first subscription. A connection lost after it is
        opened again on the reconnect schedule (logged as every Redis outage is); when that
        failed for ``reconnect_timeout_s`` (or the first subscription fails), every waiter gets
        the error.
        """
        delay, lost_at = FIRST_RETRY_DELAY_S, None  # since the last subscription

        def on_subscribed() -> None:
            nonlocal delay, lost_at
            delay, lost_at = FIRST_RETRY_DELAY_S, None
            self.reconnector.restored()
            if not subscribed.done():
                subscribed.set_result(None)
            self._wake_all()  # anything published while unsubscribed is checked again

        try:
            while True:
                try:
                    await self._read_channel(on_subscribed)
                except RedisResultStoreUnavailableError as lost:
                    lost_at = lost_at or time.monotonic()
                    given_up = time.monotonic() - lost_at >= self.calls.timeout_s
                    if not subscribed.done() or given_up:
                        raise
                    cause = lost.__cause__ or lost
                    delay = await self.reconnector.pause(LISTEN, cause, delay)
        except Exception as exc:
            error = (
                exc
                if isinstance(exc, TaskiqError)
                else ResultBackendError(
                    f"the reader of {self.ready_channel} failed: {error_line(exc)}"
                )
            )
            if not subscribed.done():
                subscribed.set_exception(error)
            self._fail_waiters(error)

    async def _read_channel(self, on_subscribed: Callable[[], None]) -> None:
        """Subscribe on a connection of its own and dispatch its messages until it fails."""
        pubsub = self._client().pubsub()
        try:
            with self._errors(LISTEN):
                await pubsub.subscribe(self.ready_channel)
                while True:
                    message = await pubsub.get_message(timeout=READ_BLOCK_S)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        on_subscribed()
                    elif message["type"] == "message":
                        data = message["data"]
                        self._wake(data.decode() if isinstance(data, bytes) else str(data))
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis-py 8.2

    def _wake(self, task_id: str) -> None:
        for woken in self._waiters.get(task_id, ()):
            if not woken.done():
                woken.set_result(None)

    def _wake_all(self) -> None:
        for task_id in list(self._waiters):
            self._wake(task_id)

    def _fail_waiters(self, error: BaseException) -> None:
        for waiters in self._waiters.values():
            for woken in waiters:
                if not woken.done():
                    woken.set_exception(error)
                    woken.add_done_callback(_retrieve_exception)

    def _forget(self, task_id: str, woken: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(task_id)
        if waiters is not None:
            waiters.discard(woken)
            if not waiters:
                del self._waiters[task_id]

    # -- the connection ------------------------------------------------------------------------

    def _client(self) -> aioredis.Redis:
        return self.connection.client

    def _ttl_ms(self) -> int | None:
        return None if self.result_ttl is None else max(1, round(self.result_ttl * 1000))

    def _errors(self, action: str) -> AbstractContextManager[None]:
        """Turn redis-py's errors into taskq's, naming the server (for the pub/sub reader)."""
        return translated(
            action,
            self.connection.server,
            RedisResultStoreUnavailableError,
            ResultBackendError,
            self.connection,
        )


def _type_name(reply: bytes | str) -> str:
    """A TYPE reply as text: ``string``, ``list``, ``none``, ..."""
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _as_bytes(value: bytes | str) -> bytes:
    """A GET reply as bytes (it is bytes unless ``decode_responses`` was forced on)."""
    return value if isinstance(value, bytes) else value.encode()


def _retrieve_exception(future: asyncio.Future[None]) -> None:
    """Mark a future's exception as seen, for futures whose waiter may have gone."""
    if not future.cancelled():
        future.exception()
