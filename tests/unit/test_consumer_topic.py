"""TopicConsumer on the shared per-topic nursery (TopicWorkers), on a mock clock: consumers
pick up partitions added to the topic, and stop as producers do."""

from __future__ import annotations

from typing import Any, cast

import pytest
import trio
import trio.testing

from trio_brod import ClientConfig, ConsumerConfig, NotFound
from trio_brod.consumer import PartitionConsumer, TopicConsumer


class FakeMetadata:
    """Partition counts only: no subscription, so no worker asks for a leader."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.config = ClientConfig(metadata_max_age=10.0)

    async def partitions_count(self, topic: str, *, auto_create: bool) -> int:
        await trio.lowlevel.checkpoint()
        return self.count


def topic_consumer(metadata: FakeMetadata) -> TopicConsumer:
    # The pool is never reached: nobody subscribes.
    return TopicConsumer(cast(Any, object()), cast(Any, metadata), "orders", ConsumerConfig())


async def test_consumers_pick_up_new_partitions(autojump_clock: trio.testing.MockClock) -> None:
    metadata = FakeMetadata(2)
    consumer = topic_consumer(metadata)
    async with trio.open_nursery() as nursery:
        await nursery.start(consumer.run)
        assert sorted(consumer.partitions) == [0, 1]
        metadata.count = 3
        await trio.sleep(10.5)  # one metadata_max_age
        assert sorted(consumer.partitions) == [0, 1, 2]
        metadata.count = 5
        fourth = await consumer.consumer_for(4)  # asked for before run() looked again
        assert isinstance(fourth, PartitionConsumer)
        assert fourth.partition == 4
        with pytest.raises(ValueError, match="no partition 5"):
            await consumer.consumer_for(5)
        consumer.close()
    assert consumer.finished.is_set()


async def test_a_lookup_after_stop_raises_not_found(autojump_clock: trio.testing.MockClock) -> None:
    consumer = topic_consumer(FakeMetadata(1))
    async with trio.open_nursery() as nursery:
        await nursery.start(consumer.run)
        worker = await consumer.consumer_for(0)
        consumer.close()
    with pytest.raises(NotFound, match="consumers of orders were stopped"):
        await consumer.consumer_for(1)
    with pytest.raises(NotFound, match="was stopped"):
        async with worker.subscribe():
            pass  # pragma: no cover


async def test_closing_a_worker_ends_its_subscription() -> None:
    consumer = topic_consumer(FakeMetadata(1))
    async with trio.open_nursery() as nursery:
        await nursery.start(consumer.run)
        worker = await consumer.consumer_for(0)
        async with worker.subscribe(begin_offset="earliest") as subscription:
            worker.close()  # as TopicWorkers does without cancel_on_close
            with trio.fail_after(5), pytest.raises(StopAsyncIteration):
                await subscription.receive()
        consumer.close()
