"""TopicWorkers: the per-topic nursery shared by producers and consumers, on a mock clock."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from trio_brod import ClientConfig, NotFound, ProducerClosed, ProducerConfig
from trio_brod._topic_workers import TopicWorkers
from trio_brod.producer import PartitionProducer, TopicProducer
from trio_brod.protocol.errors import LeaderNotAvailableError


class FakeMetadata:
    def __init__(self, count: int) -> None:
        self.count = count
        self.config = ClientConfig(metadata_max_age=10.0)
        self.asked: list[bool] = []
        #: Raised by the next lookups (one each), before the count is given.
        self.errors: list[BaseException] = []
        #: How long a lookup takes.
        self.delay = 0.0

    async def partitions_count(self, topic: str, *, auto_create: bool) -> int:
        await trio.lowlevel.checkpoint()
        self.asked.append(auto_create)
        if self.delay:
            await trio.sleep(self.delay)
        if self.errors:
            raise self.errors.pop(0)
        return self.count


class FakeWorker:
    def __init__(self, partition: int, nursery: trio.Nursery, *, drains: bool) -> None:
        self.partition = partition
        self.nursery = nursery
        self.drains = drains
        self.closed = trio.Event()
        self.started = False
        self.ended = False
        self.cancelled = False

    async def run(self) -> None:
        self.started = True
        try:
            await self.closed.wait()
            if self.drains:
                await trio.sleep(1.0)  # delivering what it holds
            self.ended = True
        except trio.Cancelled:
            self.cancelled = True
            raise

    def close(self) -> None:
        self.closed.set()


def workers(metadata: FakeMetadata, **options: Any) -> TopicWorkers[FakeWorker]:
    drains = not options.get("cancel_on_close", False)
    return TopicWorkers(
        metadata,  # type: ignore[arg-type]
        "orders",
        "producer",
        lambda p, n: FakeWorker(p, n, drains=drains),
        auto_create=True,
        **options,
    )


async def test_a_worker_per_partition_and_new_partitions_are_picked_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metadata = FakeMetadata(2)
    topic = workers(metadata)
    async with trio.open_nursery() as nursery:
        await nursery.start(topic.run)
        assert sorted(topic.partitions) == [0, 1]
        assert metadata.asked == [True]
        metadata.count = 4
        await trio.sleep(10.5)  # one metadata_max_age: run() looked, never creating
        assert sorted(topic.partitions) == [0, 1, 2, 3]
        assert metadata.asked[1:] == [False]
        assert topic.partition_count == 4
        topic.close()
    assert topic.finished.is_set()
    assert all(w.ended and not w.cancelled for w in topic.partitions.values())


async def test_a_failed_look_at_the_partitions_is_tried_again_next_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metadata = FakeMetadata(1)
    topic = workers(metadata)
    async with trio.open_nursery() as nursery:
        await nursery.start(topic.run)
        metadata.count = 2
        metadata.errors.append(LeaderNotAvailableError())
        await trio.sleep(10.5)  # the first look failed: nothing new, nothing raised
        assert sorted(topic.partitions) == [0]
        assert len(metadata.asked) == 2
        await trio.sleep(10.0)  # the next look, one metadata_max_age later
        assert sorted(topic.partitions) == [0, 1]
        assert len(metadata.asked) == 3
        await trio.sleep(25.0)  # and so on, every metadata_max_age, while open
        assert len(metadata.asked) == 5
        topic.close()
    assert topic.finished.is_set()
    assert all(w.ended for w in topic.partitions.values())


async def test_closing_while_looking_at_the_partitions_does_not_wait_for_the_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metadata = FakeMetadata(1)
    topic = workers(metadata, cancel_on_close=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(topic.run)
        metadata.delay = 100.0
        metadata.count = 3
        await trio.sleep(15.0)  # run() asks at 10 s; the answer would come at 110 s
        assert len(metadata.asked) == 2
        started = trio.current_time()
        topic.close()
    assert trio.current_time() == started
    assert sorted(topic.partitions) == [0]  # the answer never came
    assert all(w.cancelled for w in topic.partitions.values())
    assert len(metadata.asked) == 2  # and nobody looks again


async def test_workers_may_start_their_own_tasks_and_are_all_closed_when_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # As a consumer does: its task starts with its first subscriber. Cancelled from outside
    # (the client closing), every worker is closed all the same, so that one whose task
    # never started knows not to start it into a nursery that is gone.
    topic = workers(FakeMetadata(2), cancel_on_close=True, start_tasks=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(topic.run)
        first, second = topic.partitions[0], topic.partitions[1]
        assert not first.started
        assert not second.started
        first.nursery.start_soon(first.run)
        await trio.sleep(1)
        assert first.started
        assert not second.started
        assert not first.closed.is_set()
        assert not second.closed.is_set()
        nursery.cancel_scope.cancel()
    assert topic.finished.is_set()
    assert first.closed.is_set()
    assert second.closed.is_set()
    assert first.cancelled
    assert not second.started
    with pytest.raises(NotFound, match="the producers of orders were stopped"):
        await topic.worker(2)


async def test_asking_for_a_new_partition_starts_it_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metadata = FakeMetadata(1)
    topic = workers(metadata)
    async with trio.open_nursery() as nursery:
        await nursery.start(topic.run)
        with pytest.raises(ValueError, match="orders has 1 partitions, no partition 1"):
            await topic.worker(1)
        with pytest.raises(TypeError, match="partition must be an int"):
            await topic.worker(True)
        metadata.count = 2
        worker = await topic.worker(1)
        assert worker.partition == 1
        assert await topic.worker(1) is worker
        topic.close()
        with pytest.raises(NotFound, match="the producers of orders were stopped"):
            await topic.worker(5)


async def test_closing_waits_for_draining_workers_or_cancels_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    draining = workers(FakeMetadata(3))
    cancelled = workers(FakeMetadata(3), cancel_on_close=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(draining.run)
        await nursery.start(cancelled.run)
        started = trio.current_time()
        draining.close()
        cancelled.close()
        await cancelled.finished.wait()
        assert trio.current_time() == started
        await draining.finished.wait()
        assert trio.current_time() - started == pytest.approx(1.0)
    assert all(w.ended for w in draining.partitions.values())
    assert all(w.cancelled for w in cancelled.partitions.values())


async def test_the_topic_producer_is_topic_workers_with_its_lookup_and_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Producers and consumers share the nursery, so a partition asked for on stopped
    # producers raises the same NotFound as on stopped consumers; a closed partition
    # producer still refuses messages with ProducerClosed.
    metadata = FakeMetadata(1)
    producer = TopicProducer(
        metadata,  # type: ignore[arg-type]
        "orders",
        ProducerConfig(),
        None,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(producer.run)
        first = await producer.worker(0)
        assert isinstance(first, PartitionProducer)
        metadata.count = 2
        assert (await producer.worker(1)).partition == 1
        assert producer.partition_count == 2  # what the partitioner spreads over
        metadata.count = 3
        producer.close()
        with pytest.raises(NotFound, match="the producers of orders were stopped"):
            await producer.worker(2)
        with pytest.raises(ProducerClosed):
            await first.produce(b"late")
    assert producer.finished.is_set()
    assert all(p.finished.is_set() for p in producer.partitions.values())
