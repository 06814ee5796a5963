"""kiq_many: many calls of one task sent in chunks through `kick_many`, as kiq sends each."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from taskq import (
    BatchSendError,
    BrokerMessage,
    SendTaskError,
    SerializationError,
    TaskCall,
    TaskiqMessage,
    TaskiqMiddleware,
    UnsupportedCapabilityError,
    async_shared_broker,
)
from taskq.event_stores import InMemoryEventStore
from taskq.kicker import DEFAULT_CHUNK_SIZE
from taskq_inmemory import InMemoryBroker

from .conftest import RecordingBroker


class CountingBroker(RecordingBroker):
    """Records the size of each batch; the ``fail_at``-th message kicked raises."""

    def __init__(self, fail_at: int = 0) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.kicked = 0
        self.fail_at = fail_at

    async def kick_many(self, messages: Sequence[BrokerMessage]) -> None:
        self.batches.append(len(messages))
        await super().kick_many(messages)  # the default: one kick each

    async def kick(self, message: BrokerMessage) -> None:
        self.kicked += 1
        if self.kicked == self.fail_at:
            raise ConnectionError("peer gone")
        await super().kick(message)

    def sent_messages(self) -> list[TaskiqMessage]:
        messages = []
        while not self.queue.empty():
            data = self.queue.get_nowait()
            assert data is not None
            messages.append(self.formatter.loads(data))
        return messages


class SeesEveryMessage(TaskiqMiddleware):
    """Records the task ids ``pre_send`` and ``post_send`` see."""

    def __init__(self) -> None:
        super().__init__()
        self.before: list[str] = []
        self.after: list[str] = []

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        self.before.append(message.task_id)
        message.labels["seen"] = True
        return message

    async def post_send(self, message: TaskiqMessage) -> None:
        self.after.append(message.task_id)


@pytest.fixture
def broker() -> CountingBroker:
    return CountingBroker()


async def test_each_call_is_one_message_and_the_handles_follow_the_calls(broker):
    seen = SeesEveryMessage()
    broker.with_middlewares(seen)

    @broker.task
    async def add(a: int, b: int) -> int:
        return a + b

    handles = await add.kiq_many(add.call(n, b=n) for n in range(5))
    messages = broker.sent_messages()
    assert [m.task_id for m in messages] == [h.task_id for h in handles]
    assert len({h.task_id for h in handles}) == 5
    assert [(m.args, m.kwargs) for m in messages] == [([n], {"b": n}) for n in range(5)]
    assert all(m.task_name == add.task_name and m.labels["seen"] for m in messages)
    assert seen.before == seen.after == [h.task_id for h in handles]
    assert broker.batches == [5]


async def test_the_kickers_labels_go_to_every_message(broker):
    @broker.task(team="core")
    async def work(n: int) -> None: ...

    await (
        work.kicker()
        .with_labels(team="billing", urgent=True)
        .kiq_many([work.call(1), work.call(2)])
    )
    assert [m.labels for m in broker.sent_messages()] == [{"team": "billing", "urgent": True}] * 2


async def test_calls_reach_the_broker_in_chunks(broker):
    @broker.task
    async def work(n: int) -> None: ...

    handles = await work.kiq_many((work.call(n) for n in range(10)), chunk_size=3)
    assert broker.batches == [3, 3, 3, 1]
    assert [m.task_id for m in broker.sent_messages()] == [h.task_id for h in handles]
    assert DEFAULT_CHUNK_SIZE == 1000


async def test_no_calls_send_nothing(broker):
    @broker.task
    async def work(n: int) -> None: ...

    assert await work.kiq_many([]) == []
    assert await work.kicker().kiq_many(iter(())) == []
    assert broker.batches == []


async def test_a_batch_failing_part_way_names_the_sent_tasks():
    broker = CountingBroker(fail_at=5)  # chunk 1 goes, chunk 2 fails at its second message
    seen = SeesEveryMessage()
    broker.with_middlewares(seen)

    @broker.task
    async def work(n: int) -> None: ...

    with pytest.raises(BatchSendError) as caught:
        await work.kiq_many((work.call(n) for n in range(10)), chunk_size=3)
    error = caught.value
    assert isinstance(error, SendTaskError)
    assert isinstance(error.__cause__, ConnectionError)
    assert "peer gone" in str(error)
    sent = [m.task_id for m in broker.sent_messages()]
    assert list(error.sent_ids) == sent == seen.before[:4]
    assert list(error.unsent_ids) == seen.before[4:6]
    assert seen.after == sent  # post_send only for the sent ones
    assert len(seen.before) == 6  # the calls after the failing chunk were not even built
    assert broker.batches == [3, 3]


async def test_a_broker_error_without_detail_counts_the_whole_chunk_as_unsent():
    class FailsSecondBatch(CountingBroker):
        async def kick_many(self, messages: Sequence[BrokerMessage]) -> None:
            if self.batches:
                raise OSError("connection reset")
            await super().kick_many(messages)

    broker = FailsSecondBatch()

    @broker.task
    async def work(n: int) -> None: ...

    with pytest.raises(BatchSendError) as caught:
        await work.kiq_many([work.call(n) for n in range(4)], chunk_size=2)
    assert list(caught.value.sent_ids) == [m.task_id for m in broker.sent_messages()]
    assert len(caught.value.sent_ids) == len(caught.value.unsent_ids) == 2
    assert isinstance(caught.value.__cause__, OSError)


class SlowBroker(CountingBroker):
    """Each `kick_many` takes a few turns of the loop; records how many ran at once."""

    def __init__(self, fail_batch: int = 0) -> None:
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail_batch = fail_batch

    async def kick_many(self, messages: Sequence[BrokerMessage]) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            if len(self.batches) + 1 == self.fail_batch:
                self.batches.append(len(messages))
                raise OSError("connection reset")
            await super().kick_many(messages)
        finally:
            self.in_flight -= 1


async def test_chunks_reach_the_broker_one_at_a_time_and_in_order_while_the_next_is_built():
    broker = SlowBroker()
    built: list[int] = []

    @broker.task
    async def work(n: int) -> None: ...

    def calls() -> Any:
        for n in range(10):
            built.append(n)
            yield work.call(n)

    handles = await work.kiq_many(calls(), chunk_size=3)
    sent = broker.sent_messages()
    assert [m.args for m in sent] == [[n] for n in range(10)]
    assert [m.task_id for m in sent] == [h.task_id for h in handles]
    assert broker.batches == [3, 3, 3, 1]
    assert broker.most_in_flight == 1
    assert built == list(range(10))


async def test_a_chunk_failing_while_the_next_was_built_sends_nothing_after_it():
    broker = SlowBroker(fail_batch=2)

    @broker.task
    async def work(n: int) -> None: ...

    with pytest.raises(BatchSendError) as caught:
        await work.kiq_many((work.call(n) for n in range(9)), chunk_size=3)
    sent = broker.sent_messages()
    assert [m.args for m in sent] == [[0], [1], [2]]
    assert list(caught.value.sent_ids) == [m.task_id for m in sent]
    assert len(caught.value.unsent_ids) == 3  # the failing chunk; the one built after it unsent
    assert isinstance(caught.value.__cause__, OSError)
    assert broker.batches == [3, 3]


async def test_a_cancelled_kiq_many_cancels_the_chunk_in_flight():
    started = asyncio.Event()
    cancelled = asyncio.Event()

    class Hangs(CountingBroker):
        async def kick_many(self, messages: Sequence[BrokerMessage]) -> None:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

    broker = Hangs()

    @broker.task
    async def work(n: int) -> None: ...

    sending = asyncio.ensure_future(work.kiq_many((work.call(n) for n in range(5)), chunk_size=2))
    await started.wait()
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert cancelled.is_set()


async def test_an_error_before_anything_is_sent_is_the_one_kiq_raises(broker):
    @broker.task
    async def work(n: Any) -> None: ...

    with pytest.raises(UnsupportedCapabilityError):
        await work.kicker().with_labels(delay=5).kiq_many([work.call(1)])
    with pytest.raises(SerializationError):
        await work.kiq_many([work.call(1), work.call(object())])
    assert broker.batches == []


async def test_an_error_building_a_later_chunk_names_the_sent_tasks(broker):
    @broker.task
    async def work(n: Any) -> None: ...

    calls = [work.call(1), work.call(2), work.call(3), work.call(object())]
    with pytest.raises(BatchSendError) as caught:
        await work.kiq_many(calls, chunk_size=2)
    assert list(caught.value.sent_ids) == [m.task_id for m in broker.sent_messages()]
    assert len(caught.value.sent_ids) == 2
    assert len(caught.value.unsent_ids) == 1  # the third call's message, built, not sent
    assert isinstance(caught.value.__cause__, SerializationError)


async def test_one_task_id_cannot_name_many_tasks_but_each_call_can_have_its_own(broker):
    @broker.task
    async def work(n: int) -> None: ...

    with pytest.raises(ValueError, match="with_task_id"):
        await work.kicker().with_task_id("one").kiq_many([work.call(1), work.call(2)])
    handles = await work.kiq_many([work.call(1).with_task_id("first"), work.call(2)])
    assert handles[0].task_id == "first"
    assert [m.task_id for m in broker.sent_messages()] == ["first", handles[1].task_id]


async def test_bad_arguments_are_refused(broker):
    @broker.task
    async def work(n: int) -> None: ...

    with pytest.raises(ValueError, match="chunk_size"):
        await work.kiq_many([work.call(1)], chunk_size=0)
    with pytest.raises(TypeError, match=r"task\.call"):
        await work.kiq_many([(1,)])  # type: ignore[list-item]
    assert broker.batches == []


def test_a_call_is_immutable_and_compares_by_value():
    call: TaskCall[Any] = TaskCall((1,), {"b": 2})
    assert call == TaskCall((1,), {"b": 2})
    assert call.with_task_id("x") == TaskCall((1,), {"b": 2}, "x")
    with pytest.raises(AttributeError):
        call.args = ()  # type: ignore[misc]


async def test_sent_events_are_recorded_for_each_message():
    store = InMemoryEventStore()
    broker = InMemoryBroker().with_event_store(store)

    @broker.task
    async def add(a: int, b: int) -> int:
        return a + b

    async with broker:
        handles = await add.kiq_many(add.call(n, n) for n in range(3))
        await broker.wait_all()
    for handle in handles:
        events = await store.task_events(handle.task_id)
        assert [e.kind.value for e in events][:1] == ["sent"]


async def test_shared_tasks_are_sent_through_the_default_broker(broker):
    @async_shared_broker.task(task_name="tests:kiq_many:shared")
    async def shared(n: int) -> None: ...

    async_shared_broker.default_broker(broker)
    try:
        handles = await shared.kiq_many([shared.call(1), shared.call(2)])
        raw = broker.formatter.dumps(TaskiqMessage("raw", shared.task_name))
        await async_shared_broker.kick_many([raw])  # forwarded as one batch
    finally:
        async_shared_broker._default_broker = None
    assert [m.task_id for m in broker.sent_messages()] == [h.task_id for h in handles] + ["raw"]
    assert broker.batches == [2, 1]


async def test_unique_calls_claim_their_keys_and_held_ones_get_the_holders_handle():
    sent: list[int] = []

    class Counting(InMemoryBroker):
        async def kick_many(self, messages: Sequence[BrokerMessage]) -> None:
            sent.append(len(messages))
            await super().kick_many(messages)

    broker = Counting(max_stored_results=-1)
    gate = asyncio.Event()

    @broker.task
    async def sync_account(account: int) -> int:
        await gate.wait()  # held keys stay held until the gate opens
        return account

    async with broker:
        earlier = await sync_account.kicker().with_unique().kiq(2)
        calls = [sync_account.call(n) for n in (1, 1, 2, 3)]
        handles = await sync_account.kicker().with_unique().kiq_many(calls)
        gate.set()
        results = [(await h.wait_result(timeout=10)).return_value for h in handles]
    ids = [h.task_id for h in handles]
    assert ids[1] == ids[0]
    assert ids[2] == earlier.task_id
    assert len({ids[0], ids[2], ids[3]}) == 3
    assert results == [1, 1, 2, 3]
    assert sent == [2]  # only the calls that claimed their key were sent


async def test_unique_keys_of_unsent_messages_are_freed():
    class Refuses(InMemoryBroker):
        async def kick_many(self, messages: Sequence[BrokerMessage]) -> None:
            raise ConnectionError("down")

    broker = Refuses()

    @broker.task
    async def job(n: int) -> None: ...

    async with broker:
        with pytest.raises(BatchSendError) as caught:
            await job.kicker().with_unique(key="k").kiq_many([job.call(1)])
        assert caught.value.sent_ids == ()
        assert await broker.unique_store.claim("k", "next", 60) is None
