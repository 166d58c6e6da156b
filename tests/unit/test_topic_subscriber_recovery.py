"""The topic subscriber's brod behaviours against the fake Kafka: a failed consumer is
re-subscribed (only the handler's errors end the block), the init/terminate hooks, and
committed offsets that name a position instead of an offset."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.unit.conftest import FAKE_TOPIC as TOPIC
from tests.unit.conftest import fetch_at
from trio_brod import Client, ConsumerConfig, Timestamp, open_topic_subscriber
from trio_brod.consumer.subscriber import CommittedOffset, TopicSubscriber
from trio_brod.protocol import FetchRequest
from trio_brod.protocol.errors import TopicAuthorizationFailedError
from trio_brod.protocol.records import Record
from trio_brod.testing.fake import FakeKafka

EARLIEST = ConsumerConfig(begin_offset="earliest", max_wait_time=0.2)
#: A non-retriable error: the partition consumer gives up and fails its subscriber.
DENIED = TopicAuthorizationFailedError


def fill(fake: FakeKafka, count: int) -> None:
    """Append ``count`` records in one batch; each one's timestamp is 1_000_000 + offset."""
    start = fake.log(TOPIC, 0).high_watermark
    values = [b"m%d" % offset for offset in range(start, start + count)]
    fake.append(TOPIC, 0, values, timestamp=1_000_000 + start)


class Handled:
    """The offsets a handler saw, and a way to wait for them."""

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self._changed = trio.Event()

    async def handle(self, partition: int, message: Record) -> None:
        self.offsets.append(message.offset)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, count: int) -> None:
        with trio.fail_after(10):
            while len(self.offsets) < count:
                await self._changed.wait()


async def test_a_failed_consumer_is_resubscribed_where_it_left_off(
    fake_client: Client, fake_kafka: FakeKafka
) -> None:
    handled = Handled()
    fake_kafka.fail(FetchRequest, DENIED, topic=TOPIC)  # the very first fetch fails
    fill(fake_kafka, 5)
    async with open_topic_subscriber(
        fake_client, TOPIC, handled.handle, consumer_config=EARLIEST, resubscribe_delay=0.01
    ) as sub:
        await handled.wait_for(5)
        assert sub.resubscriptions() == {0: 1}
        # Fail again once 0-19 are handled and acknowledged: the next subscription must go
        # on at 20, not at the first subscription's "earliest".
        polling = fake_kafka.control(FetchRequest, fetch_at(15))
        fill(fake_kafka, 10)
        await handled.wait_for(15)
        with trio.fail_after(10):
            await polling.wait_seen()  # waiting for data: its answer has no error
        fake_kafka.fail(FetchRequest, DENIED, topic=TOPIC)  # the fetch at 20 fails
        fill(fake_kafka, 5)
        await handled.wait_for(20)
        fill(fake_kafka, 5)  # for the new subscription, after the fetch at 20 failed
        await handled.wait_for(25)
        assert sub.resubscriptions() == {0: 2}
    assert handled.offsets == list(range(25))


async def test_only_a_handler_error_ends_the_block(
    fake_client: Client, fake_kafka: FakeKafka
) -> None:
    fill(fake_kafka, 5)
    ended: list[tuple[int, Any, BaseException | None]] = []

    async def handle(partition: int, message: Record) -> None:
        if message.offset == 2:
            raise ZeroDivisionError("offset 2")

    async def terminate(partition: int, state: Any, error: BaseException | None) -> None:
        await trio.lowlevel.checkpoint()  # may await: it runs shielded
        ended.append((partition, state, error))

    with trio.fail_after(10), pytest.raises(ZeroDivisionError, match="offset 2"):
        async with open_topic_subscriber(
            fake_client, TOPIC, handle, consumer_config=EARLIEST, terminate=terminate
        ) as sub:
            await trio.sleep_forever()
    assert sub.resubscriptions() == {}
    assert len(ended) == 1
    partition, state, error = ended[0]
    assert (partition, state) == (0, None)
    assert isinstance(error, ZeroDivisionError)


async def test_init_state_and_terminate(fake_client: Client, fake_kafka: FakeKafka) -> None:
    fill(fake_kafka, 3)
    subscribers: list[TopicSubscriber] = []
    ended: list[tuple[int, Any, BaseException | None]] = []
    done = trio.Event()

    async def init(partition: int) -> list[int]:
        await trio.lowlevel.checkpoint()
        return []

    async def handle(partition: int, message: Record) -> None:
        subscribers[0].state(partition).append(message.offset)
        if message.offset == 2:
            done.set()

    async def terminate(partition: int, state: Any, error: BaseException | None) -> None:
        ended.append((partition, list(state), error))

    async with open_topic_subscriber(
        fake_client, TOPIC, handle, consumer_config=EARLIEST, init=init, terminate=terminate
    ) as subscriber:
        subscribers.append(subscriber)
        with trio.fail_after(10):
            await done.wait()
        assert subscriber.state(0) == [0, 1, 2]
        with pytest.raises(KeyError):
            subscriber.state(1)
    assert ended == [(0, [0, 1, 2], None)]


@pytest.mark.parametrize(
    ("committed", "first"),
    [(3, 4), (1, 2), ("earliest", 2), ("latest", 10), (Timestamp(1_000_006), 6)],
)
async def test_committed_offsets_may_name_a_position(
    fake_client: Client, fake_kafka: FakeKafka, committed: CommittedOffset, first: int
) -> None:
    fill(fake_kafka, 2)
    fill(fake_kafka, 8)
    fake_kafka.log(TOPIC, 0).delete_records(2)  # the first batch was deleted
    got = trio.Event()
    firsts: list[int] = []

    async def handle(partition: int, message: Record) -> None:
        firsts.append(message.offset)
        got.set()

    config = ConsumerConfig(begin_offset="earliest", max_wait_time=0.2)
    async with open_topic_subscriber(
        fake_client, TOPIC, handle, committed_offsets={0: committed}, consumer_config=config
    ):
        if first == 10:
            await trio.sleep(0.1)
            fill(fake_kafka, 1)  # "latest": only what comes after the subscription
        with trio.fail_after(10):
            await got.wait()
    assert firsts[0] == first


@pytest.mark.parametrize("committed", [-2, "first", 1.5, True])
async def test_bad_committed_offsets_are_refused(
    fake_client: Client, fake_kafka: FakeKafka, committed: Any
) -> None:
    async def handle(partition: int, message: Record) -> None:
        pass

    with pytest.raises(ValueError, match="committed offset of partition 0"):
        async with open_topic_subscriber(
            fake_client, TOPIC, handle, committed_offsets={0: committed}
        ):
            pass


async def test_a_partition_the_topic_lacks_is_refused_at_once(
    fake_client: Client, fake_kafka: FakeKafka
) -> None:
    async def handle(partition: int, message: Record) -> None:
        pass

    with pytest.raises(ValueError, match=r"has 1 partitions, not \[3\]"):
        async with open_topic_subscriber(fake_client, TOPIC, handle, partitions=[0, 3]):
            pass
