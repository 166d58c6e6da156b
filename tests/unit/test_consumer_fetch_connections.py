"""How a topic's partition consumers share their fetches, against the fake Kafka.

A fetcher per broker merges the partitions' fetches into one request; with
``share_leader_conn`` they merge on the client's own connection to the leader; with
``fetch_connection="partition"`` each partition has a connection of its own. The fake
answers Fetch as Kafka does (each partition up to its ``partition_max_bytes``, the whole up
to ``max_bytes``, long polls until data or ``max_wait_ms``), and a ``Pass`` control records
every Fetch request the consumers send.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from trio_brod import Client, ConfigError, ConsumerConfig, open_client
from trio_brod._config import FetchConnection
from trio_brod.protocol import FetchRequest
from trio_brod.testing import fake_kafka
from trio_brod.testing.fake import Control, FakeKafka, Pass

TOPIC = "merged"
PARTITIONS = 6


@asynccontextmanager
async def fetch_log(partitions: int) -> AsyncIterator[tuple[FakeKafka, Control]]:
    """A fake Kafka with the topic, and a control that records every Fetch request."""
    async with fake_kafka() as fake:
        fake.create_topic(TOPIC, partitions=partitions)
        yield fake, fake.control(FetchRequest, Pass(), times=None)


def append(fake: FakeKafka, partition: int, batches: int = 1) -> None:
    """Batches of five records each, valued ``b"<partition>:<offset>"``."""
    for _ in range(batches):
        base = fake.log(TOPIC, partition).high_watermark
        fake.append(TOPIC, partition, [b"%d:%d" % (partition, base + i) for i in range(5)])


def fetches(seen: Control) -> list[Any]:
    """The bodies of the Fetch requests a control saw."""
    return [request.body for request in seen.seen]


def fetched(seen: Control, partition: int) -> list[tuple[Any, Any]]:
    """The fetches that asked for a partition: (request body, its FetchPartition)."""
    return [
        (body, p)
        for body in fetches(seen)
        for t in body.topics
        for p in t.partitions
        if p.partition == partition
    ]


async def consume(client: Client, partition: int, until: int, **options: Any) -> list[bytes]:
    values: list[bytes] = []
    async with client.subscribe(TOPIC, partition, begin_offset="earliest", **options) as sub:
        async for message_set in sub:
            values += [m.value for m in message_set if m.value is not None]
            sub.ack(message_set.high_offset)
            if message_set.high_offset >= until - 1:
                break
    return values


async def consume_all(
    client: Client, partitions: int, until: int, **options: Any
) -> dict[int, list[bytes]]:
    """``consume`` partitions 0 .. ``partitions - 1`` at once; values by partition."""
    results: dict[int, list[bytes]] = {}

    async def one(partition: int) -> None:
        results[partition] = await consume(client, partition, until, **options)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for partition in range(partitions):
                nursery.start_soon(one, partition)
    return results


async def test_idle_partitions_long_polls_do_not_hold_up_a_busy_one(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with fetch_log(PARTITIONS) as (fake, seen):
        append(fake, 0, batches=10)
        async with open_client(fake.bootstrap_servers) as client:
            await client.start_consumer(TOPIC, ConsumerConfig(max_wait_time=60))
            async with trio.open_nursery() as nursery:
                for partition in range(1, PARTITIONS):  # caught up: they wait a minute each
                    nursery.start_soon(consume, client, partition, 1)
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                # One fetch at a time (max_bytes=1: a batch each), with a window of five.
                with trio.fail_after(30):  # far less than the idle partitions' long polls
                    values = await consume(client, 0, 50, max_bytes=1, prefetch_count=5)
                nursery.cancel_scope.cancel()
    assert values == [b"0:%d" % i for i in range(50)]
    assert [body for body in fetches(seen) if body.max_wait_ms == 60_000]  # the idle ones'
    # Once its window filled, partition 0 left the long poll: each freed window was fetched
    # for at once, beside it, by a request that does not wait.
    later = [body for body, wanted in fetched(seen, 0) if wanted.fetch_offset > 0]
    assert later
    assert all(body.max_wait_ms == 0 for body in later)


async def test_shared_leader_connection_merges_fetches(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with fetch_log(PARTITIONS) as (fake, seen):
        for partition in range(PARTITIONS):
            append(fake, partition, batches=2)
        async with open_client(fake.bootstrap_servers) as client:
            await client.start_consumer(TOPIC, ConsumerConfig(share_leader_conn=True))
            await consume_all(client, PARTITIONS, 10)
        assert fake.connections(1) == 1
    assert max(len(body.topics[0].partitions) for body in fetches(seen)) > 1


async def test_private_connections_stay_available(loopback_clock: trio.testing.MockClock) -> None:
    async with fetch_log(3) as (fake, seen):
        for partition in range(3):
            append(fake, partition, batches=2)
        async with open_client(fake.bootstrap_servers) as client:
            await client.start_consumer(TOPIC, ConsumerConfig(fetch_connection="partition"))
            await consume_all(client, 3, 10)
            assert fake.connections(1) == 4  # the client's, and one per partition
    assert all(len(body.topics[0].partitions) == 1 for body in fetches(seen))
    assert {body.max_wait_ms for body in fetches(seen)} == {10_000}


@pytest.mark.parametrize("fetch_connection", ["shared", "broker"])
async def test_a_batch_cut_by_the_requests_limit_does_not_grow_max_bytes(
    loopback_clock: trio.testing.MockClock, fetch_connection: FetchConnection
) -> None:
    async with fetch_log(PARTITIONS) as (fake, seen):
        for partition in range(PARTITIONS):
            append(fake, partition, batches=6)
        # A merged fetch asks for at most half the frame limit, 1 KiB: with three partitions
        # or more of 480 bytes each, the third is cut short within its first batch. That is
        # no reason to ask for more bytes next time.
        async with open_client(fake.bootstrap_servers, max_frame_size=2048) as client:
            await client.start_consumer(TOPIC, ConsumerConfig(fetch_connection=fetch_connection))
            results = await consume_all(client, PARTITIONS, 30, max_bytes=480)
    assert results == {p: [b"%d:%d" % (p, i) for i in range(30)] for p in range(PARTITIONS)}
    assert 1024 in {body.max_bytes for body in fetches(seen)}
    wanted = {
        p.partition_max_bytes for body in fetches(seen) for t in body.topics for p in t.partitions
    }
    assert wanted == {480}


def test_consumer_config_connection_modes() -> None:
    assert ConsumerConfig().connection_mode == "broker"
    assert ConsumerConfig(share_leader_conn=True).connection_mode == "shared"
    assert ConsumerConfig(fetch_connection="partition").connection_mode == "partition"
    # Shared connections: short long polls, no sleeping after an empty answer.
    shared = ConsumerConfig(share_leader_conn=True)
    assert (shared.effective_max_wait_time, shared.effective_sleep_timeout) == (0.5, 0)
    # A fetcher per broker (the default): the Java consumer's long poll, no sleeping.
    default = ConsumerConfig()
    assert (default.effective_max_wait_time, default.effective_sleep_timeout) == (0.5, 0)
    # A connection of each worker's own: brod's defaults.
    private = ConsumerConfig(fetch_connection="partition")
    assert (private.effective_max_wait_time, private.effective_sleep_timeout) == (10.0, 1.0)
    given_ = ConsumerConfig(max_wait_time=2, sleep_timeout=0.5)
    assert (given_.effective_max_wait_time, given_.effective_sleep_timeout) == (2, 0.5)
    with pytest.raises(ConfigError, match="fetch_connection='topic'"):
        ConsumerConfig(fetch_connection="topic")  # type: ignore[arg-type]  # replaced by "broker"
    with pytest.raises(ConfigError, match="share_leader_conn=True contradicts"):
        ConsumerConfig(share_leader_conn=True, fetch_connection="partition")
    with pytest.raises(ConfigError, match="max_wait_time"):
        ConsumerConfig(max_wait_time=-1)
