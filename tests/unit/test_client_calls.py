"""brod_client's remaining calls against the fake Kafka: fold, find_consumer, consume_ack.

What only a real broker decides (topic auto-creation, producers) is in
tests/integration/test_client_calls.py.
"""

from __future__ import annotations

import pytest
import trio

from tests.unit.conftest import FAKE_TOPIC as TOPIC
from trio_brod import Client, FoldStop, NotFound
from trio_brod.protocol import FetchRequest
from trio_brod.protocol.errors import OffsetOutOfRangeError, TopicAuthorizationFailedError
from trio_brod.protocol.records import Record
from trio_brod.testing.fake import FakeKafka, Pass


def fill(fake: FakeKafka, batches: int = 3, per_batch: int = 4) -> None:
    for _ in range(batches):
        start = fake.log(TOPIC, 0).high_watermark
        fake.append(TOPIC, 0, [b"m%d" % offset for offset in range(start, start + per_batch)])


def collect(message: Record, acc: list[int]) -> list[int]:
    return [*acc, message.offset]


# ------------------------------------------------------------------ fold


async def test_fold_to_the_end_of_the_partition(fake_client: Client, fake_kafka: FakeKafka) -> None:
    fill(fake_kafka)
    fetches = fake_kafka.control(FetchRequest, Pass(), times=None)
    # max_bytes=1: one batch per fetch, so the fold must go on fetching until the end.
    result = await fake_client.fold(TOPIC, 0, 2, collect, [], max_bytes=1)
    assert result.acc == list(range(2, 12))
    assert (result.next_offset, result.reason, result.error) == (
        12,
        FoldStop.END_OF_PARTITION,
        None,
    )
    assert len(fetches.seen) == 3


async def test_fold_of_an_empty_partition_returns_at_once(
    fake_client: Client, fake_kafka: FakeKafka
) -> None:
    # max_wait_time is 0 by default: no long poll at the end.
    with trio.fail_after(2):
        result = await fake_client.fold(TOPIC, 0, 0, collect, [])
    assert (result.acc, result.next_offset, result.reason) == ([], 0, FoldStop.END_OF_PARTITION)


async def test_fold_stops_at_the_message_count(fake_client: Client, fake_kafka: FakeKafka) -> None:
    fill(fake_kafka)
    result = await fake_client.fold(TOPIC, 0, 1, collect, [], message_count=5)
    assert result.acc == [1, 2, 3, 4, 5]
    assert (result.next_offset, result.reason) == (6, FoldStop.MESSAGE_COUNT)


async def test_fold_stops_at_the_target_offset(fake_client: Client, fake_kafka: FakeKafka) -> None:
    fill(fake_kafka)
    fetches = fake_kafka.control(FetchRequest, Pass(), times=None)
    result = await fake_client.fold(TOPIC, 0, 0, collect, [], reach_offset=6, message_count=100)
    assert result.acc == list(range(7))
    assert (result.next_offset, result.reason) == (7, FoldStop.TARGET_OFFSET)
    # Already past the target: nothing to fetch.
    before = len(fetches.seen)
    result = await fake_client.fold(TOPIC, 0, 8, collect, [], reach_offset=6)
    assert (result.acc, result.next_offset, result.reason) == ([], 8, FoldStop.TARGET_OFFSET)
    assert len(fetches.seen) == before


async def test_fold_returns_the_fetch_error_with_what_it_folded(
    fake_client: Client, fake_kafka: FakeKafka
) -> None:
    fill(fake_kafka)

    async def collect_then_break(message: Record, acc: list[int]) -> list[int]:
        await trio.lowlevel.checkpoint()  # an async fun is awaited
        if message.offset == 0:
            fake_kafka.fail(FetchRequest, TopicAuthorizationFailedError, topic=TOPIC)  # next fetch
        return [*acc, message.offset]

    result = await fake_client.fold(TOPIC, 0, 0, collect_then_break, [], max_bytes=1)
    assert result.acc == [0, 1, 2, 3]
    assert (result.next_offset, result.reason) == (4, FoldStop.ERROR)
    assert isinstance(result.error, TopicAuthorizationFailedError)

    result = await fake_client.fold(TOPIC, 0, 100, collect, [])
    assert (result.acc, result.next_offset, result.reason) == ([], 100, FoldStop.ERROR)
    assert isinstance(result.error, OffsetOutOfRangeError)


async def test_an_error_of_the_fold_function_propagates(
    fake_client: Client, fake_kafka: FakeKafka
) -> None:
    fill(fake_kafka, 1)

    def broken(message: Record, acc: int) -> int:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await fake_client.fold(TOPIC, 0, 0, broken, 0)


@pytest.mark.parametrize(
    ("offset", "options"),
    [(-1, {}), (0, {"message_count": 0}), (0, {"reach_offset": -3}), (True, {})],
)
async def test_fold_rejects_bad_limits(
    fake_client: Client, offset: int, options: dict[str, int]
) -> None:
    with pytest.raises(ValueError, match="must be an int"):
        await fake_client.fold(TOPIC, 0, offset, collect, [], **options)


# ------------------------------------------------------------------ find_consumer, consume_ack


async def test_find_consumer_never_starts_one(fake_client: Client, fake_kafka: FakeKafka) -> None:
    with pytest.raises(NotFound, match=f"no consumer running for topic '{TOPIC}'"):
        fake_client.find_consumer(TOPIC, 0)
    with pytest.raises(NotFound):  # still nothing started
        await fake_client.get_consumer(TOPIC, 0)
    await fake_client.start_consumer(TOPIC)
    assert fake_client.find_consumer(TOPIC, 0) is await fake_client.get_consumer(TOPIC, 0)
    with pytest.raises(NotFound, match=rf"no consumer running for {TOPIC}\[3\]"):
        fake_client.find_consumer(TOPIC, 3)


async def test_consume_ack_acknowledges_for_the_current_subscriber(
    fake_client: Client, fake_kafka: FakeKafka
) -> None:
    with pytest.raises(NotFound, match="no consumer running"):
        fake_client.consume_ack(TOPIC, 0, 0)
    await fake_client.start_consumer(TOPIC)
    with pytest.raises(NotFound, match=r"has no subscriber"):
        fake_client.consume_ack(TOPIC, 0, 0)
    fill(fake_kafka, 1)
    async with fake_client.subscribe(TOPIC, 0, begin_offset=0) as subscription:
        with trio.fail_after(10):
            message_set = await subscription.receive()
        assert subscription.unacked_count == 4
        with pytest.raises(ValueError, match="cannot acknowledge offset 99"):
            fake_client.consume_ack(TOPIC, 0, 99)  # not delivered
        fake_client.consume_ack(TOPIC, 0, message_set.high_offset)
        assert subscription.unacked_count == 0
    with pytest.raises(NotFound, match=r"has no subscriber"):
        fake_client.consume_ack(TOPIC, 0, 3)
