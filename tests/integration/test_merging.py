"""Merged requests against a real broker.

200 partitions' workers share connections, which merge their one-partition Produce and
Fetch requests (trio_brod._net.merge): every message must still arrive exactly once, in order
within its partition, and the requests must really have been merged.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests.task_tree import count_tasks
from trio_brod import Client, ConsumerConfig, ProducerConfig, open_client
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.integration

PARTITIONS = 200
PER_PARTITION = 50


def value(partition: int, sequence: int) -> bytes:
    return b"%d:%d" % (partition, sequence)


async def produce_round_robin(client: Client, topic: str, config: ProducerConfig) -> int:
    """``PER_PARTITION`` messages to every partition, in turns; each lands at the offset of
    its sequence number (the topic is new), so the receipts show the order kept. Returns
    how many requests the leader's connection wrote for all but the first round.

    The first round is awaited before the others are sent: a broker may still refuse a
    new topic's partitions for a moment (NOT_LEADER_OR_FOLLOWER), and their producers
    retry, each in its own time.
    """
    await client.start_producer(topic, config)
    first = [await client.produce(topic, value(p, 0), partition=p) for p in range(PARTITIONS)]
    with trio.fail_after(60):
        assert [await receipt for receipt in first] == [0] * PARTITIONS
    connection = await client.get_leader_connection(topic, 0)  # the only broker's
    written = connection.requests_written
    receipts = []
    for sequence in range(1, PER_PARTITION):
        for partition in range(PARTITIONS):
            receipt = await client.produce(topic, value(partition, sequence), partition=partition)
            receipts.append((partition, sequence, receipt))
    with trio.fail_after(60):
        for partition, sequence, receipt in receipts:
            assert await receipt == sequence, (partition, sequence)
    return connection.requests_written - written


async def consume_all(client: Client, topic: str) -> dict[int, list[bytes | None]]:
    """Every partition's values, from the earliest offset to ``PER_PARTITION``."""
    values: dict[int, list[bytes | None]] = {}

    async def one(partition: int) -> None:
        got: list[bytes | None] = []
        async with client.subscribe(topic, partition, begin_offset="earliest") as sub:
            async for message_set in sub:
                got += [message.value for message in message_set]
                sub.ack(message_set.high_offset)
                if message_set.high_offset >= PER_PARTITION - 1:
                    break
        values[partition] = got

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for partition in range(PARTITIONS):
                nursery.start_soon(one, partition)
    return values


def expected() -> dict[int, list[bytes | None]]:
    return {p: [value(p, s) for s in range(PER_PARTITION)] for p in range(PARTITIONS)}


@pytest.mark.parametrize("acks", [-1, 1])
async def test_200_partitions_produced_through_merged_requests(
    make_topic: MakeTopic, bootstrap_servers: list[str], acks: int
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    config = ProducerConfig(required_acks=acks, partition_onwire_limit=3)  # type: ignore[arg-type]
    async with open_client(bootstrap_servers) as client:
        written = await produce_round_robin(client, topic, config)
        # Every partition needs a batch of its own, yet far fewer requests were written:
        # the batches ready together went out together.
        assert written < PARTITIONS / 4
        connection = await client.get_leader_connection(topic, 0)  # the only broker's
        assert connection.parts_merged >= PARTITIONS
        assert await consume_all(client, topic) == expected()


@pytest.mark.parametrize("fetch_connection", ["broker", "shared", "partition"])
async def test_200_partitions_consumed_exactly(
    make_topic: MakeTopic, bootstrap_servers: list[str], fetch_connection: str
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    async with open_client(bootstrap_servers) as client:
        await produce_round_robin(client, topic, ProducerConfig(required_acks=1))
        await client.start_consumer(
            topic,
            ConsumerConfig(fetch_connection=fetch_connection, prefetch_count=7),  # type: ignore[arg-type]
        )
        assert await consume_all(client, topic) == expected()
        leader = await client.get_leader(topic, 0)
        if fetch_connection == "broker":
            [fetcher] = client._fetchers.fetchers  # one broker: one fetcher for all 200
            assert (fetcher.host, fetcher.port) == (leader.host, leader.port)
            assert fetcher.answers_with_data >= PARTITIONS
        elif fetch_connection == "shared":
            connection = await client.get_leader_connection(topic, 0)
            assert connection.parts_merged >= PARTITIONS


async def test_fetchers_live_with_the_client_not_with_subscriptions(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=4)
    async with open_client(bootstrap_servers) as client:
        await client.start_producer(topic)
        await client.produce_sync(topic, b"x", partition=0)
        await client.start_consumer(topic)

        async def subscribe_each() -> None:
            for partition in range(4):
                async with client.subscribe(topic, partition, begin_offset="earliest") as sub:
                    if partition == 0:
                        with trio.fail_after(10):
                            assert [m.value for m in await sub.receive()] == [b"x"]
                    else:
                        with trio.move_on_after(0.2):
                            await sub.receive()  # a long poll in flight when it leaves

        await subscribe_each()
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        tasks = count_tasks()
        # However many subscriptions come and go, the fetcher and its connections stay...
        await subscribe_each()
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        assert count_tasks() == tasks
        # ... and the topic's workers end with the consumer (the fetcher is the client's).
        await client.stop_consumer(topic)
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        assert count_tasks() == tasks - (4 + 1)  # the workers and the nursery (its task)
        assert len(client._fetchers.fetchers) == 1
