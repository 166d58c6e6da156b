"""brod_client's remaining calls against real Kafka: where the broker decides (topic
auto-creation) or where a real producer and log are simplest (find_producer, fold)."""

from __future__ import annotations

import pytest

from trio_brod import FoldStop, NotFound, get_metadata, open_client
from trio_brod.protocol.errors import UnknownTopicOrPartitionError
from trio_brod.protocol.records import Record
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.integration


async def test_get_metadata_safe_never_creates_a_topic(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=2)
    missing = f"{topic}-missing"
    # The broker allows auto-creation, and so does the client: the safe call still asks
    # the broker not to create it.
    async with open_client(bootstrap_servers, allow_topic_auto_creation=True) as client:
        metadata = await client.get_metadata_safe([topic, missing])
        assert metadata.topics[topic].partition_count == 2
        assert isinstance(metadata.topics[missing].error, UnknownTopicOrPartitionError)
        again = await client.get_metadata_safe([missing])
        assert isinstance(again.topics[missing].error, UnknownTopicOrPartitionError)
        # The plain call does create it, so the safe one's answer was not luck.
        # (Auto-creation takes a moment: get_partitions_count waits for the leaders.)
        assert await client.get_partitions_count(f"{topic}-created") >= 1
        created = await client.get_metadata_safe([f"{topic}-created"])
        assert created.topics[f"{topic}-created"].error is None


async def test_get_metadata_with_no_client_to_keep(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=3)
    metadata = await get_metadata(bootstrap_servers, [topic, f"{topic}-missing"])
    assert metadata.topics[topic].partition_count == 3
    assert metadata.topics[f"{topic}-missing"].error is not None
    everything = await get_metadata(",".join(bootstrap_servers), client_id="script")
    assert topic in everything.topics


async def test_find_producer_never_starts_one(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=2)
    async with open_client(bootstrap_servers, auto_start_producers=True) as client:
        with pytest.raises(NotFound, match=f"no producer running for topic '{topic}'"):
            client.find_producer(topic, 0)
        with pytest.raises(NotFound):  # looking started nothing
            client.find_producer(topic, 0)
        await client.produce_sync(topic, b"v", partition=1)  # auto-started
        assert client.find_producer(topic, 1) is await client.get_producer(topic, 1)
        with pytest.raises(NotFound, match=rf"no producer running for {topic}\[2\]"):
            client.find_producer(topic, 2)


async def test_fold_over_a_real_partition(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic()

    def total(message: Record, acc: int) -> int:
        assert message.value is not None
        return acc + int(message.value)

    async with open_client(bootstrap_servers) as client:
        await client.start_producer(topic)
        for start in range(0, 30, 10):
            await (
                await client.produce_batch(
                    topic, [(None, b"%d" % i) for i in range(start, start + 10)]
                )
            )
        result = await client.fold(topic, 0, 0, total, 0, max_bytes=100)
        assert (result.acc, result.next_offset, result.reason) == (
            435,
            30,
            FoldStop.END_OF_PARTITION,
        )
        result = await client.fold(topic, 0, 5, total, 0, reach_offset=14)
        assert (result.acc, result.next_offset, result.reason) == (95, 15, FoldStop.TARGET_OFFSET)
        result = await client.fold(topic, 0, 28, total, 0, message_count=1)
        assert (result.acc, result.next_offset, result.reason) == (28, 29, FoldStop.MESSAGE_COUNT)
        result = await client.fold(topic, 0, 31, total, 0)
        assert (result.acc, result.next_offset, result.reason) == (0, 31, FoldStop.ERROR)
