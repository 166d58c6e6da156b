"""Consuming through a leader move on the three-broker cluster: no gap, no repeat."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import trio

from tests.consumer_peers import Sent, produce, random_messages
from trio_brod import MessageSet, open_client
from trio_brod.testing import AsyncKafkaCluster, KafkaCluster
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


async def in_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    return await trio.to_thread.run_sync(functools.partial(function, *args, **kwargs))


@pytest.mark.parametrize(
    ("graceful", "share_leader_conn"),
    [
        pytest.param(True, False, id="controlled-shutdown-private-connection"),
        pytest.param(False, True, id="killed-leader-shared-connection"),
    ],
)
async def test_stopping_the_leader_while_consuming(
    make_topic: MakeTopic, kafka_cluster3: KafkaCluster, graceful: bool, share_leader_conn: bool
) -> None:
    topic = make_topic(replication_factor=3, cluster=kafka_cluster3)
    bootstrap = kafka_cluster3.bootstrap_servers
    cluster = AsyncKafkaCluster(kafka_cluster3)
    sent: list[Sent] = await in_thread(
        produce, bootstrap, topic, 0, random_messages(10_000, seed=31), compression_type="lz4"
    )
    total = 12_000  # 10,000 now, 2,000 after the leader stopped
    stopping = False
    stopped = trio.Event()
    delivered_when_stopped = -1
    sets: list[MessageSet] = []
    async with open_client(bootstrap) as client:
        leader = (await client.get_leader(topic, 0)).node_id

        async def stop_leader_then_produce_more() -> None:
            nonlocal delivered_when_stopped
            await cluster.stop_broker(leader, graceful=graceful)
            delivered_when_stopped = sets[-1].high_offset
            stopped.set()
            # More messages, written to (and read from) the new leader.
            sent.extend(
                await in_thread(produce, bootstrap, topic, 0, random_messages(2_000, seed=32))
            )

        # Small fetches, so that many fetches happen before, during and after the move.
        async with (
            client.subscribe(
                topic,
                0,
                begin_offset="earliest",
                max_bytes=32 * 1024,
                prefetch_count=100,
                share_leader_conn=share_leader_conn,
                max_wait_time=1.0,
            ) as sub,
            trio.open_nursery() as nursery,
        ):
            with trio.fail_after(60):
                async for message_set in sub:
                    sets.append(message_set)
                    sub.ack(message_set.high_offset)
                    if not stopping and message_set.high_offset > 3000:
                        stopping = True
                        nursery.start_soon(stop_leader_then_produce_more)
                    if stopping and not stopped.is_set():
                        # Slowly, so that the old leader's data is not all read before it stops.
                        await trio.sleep(0.05)
                    if message_set.high_offset >= total - 1:
                        break
        new_leader = (await client.get_leader(topic, 0)).node_id
    assert new_leader != leader
    assert delivered_when_stopped < 10_000  # the leader stopped in the middle of its data
    records = [record for message_set in sets for record in message_set]
    assert [r.offset for r in records] == list(range(total))  # no gap, no repeat
    mismatched = [(r, s) for r, s in zip(records, sent, strict=True) if not s.matches(r)]
    assert not mismatched, mismatched[:3]


async def test_killing_a_leader_of_many_partitions_mid_stream(
    make_topic: MakeTopic, kafka_cluster3: KafkaCluster
) -> None:
    # 120 partitions fetched by one fetcher per broker; a broker leading about a third of
    # them is killed while every partition is in the middle of its data. Each partition
    # goes on from its exact position on its new leader: no gap, no repeat.
    partitions, per_round, batch = 120, 30, 10
    topic = make_topic(partitions=partitions, replication_factor=3, cluster=kafka_cluster3)
    bootstrap = kafka_cluster3.bootstrap_servers
    cluster = AsyncKafkaCluster(kafka_cluster3)
    got: dict[int, list[tuple[int, bytes | None]]] = {p: [] for p in range(partitions)}
    halfway: dict[int, trio.Event] = {p: trio.Event() for p in range(partitions)}
    stopped = trio.Event()

    async with open_client(bootstrap) as client:
        await client.start_producer(topic)

        async def produce_round(round_: int) -> None:
            async def one(partition: int) -> None:
                for start in range(0, per_round, batch):
                    first = round_ * per_round + start
                    values = [(None, b"%d:%d" % (partition, first + i)) for i in range(batch)]
                    await client.produce_batch(topic, values, partition=partition)

            async with trio.open_nursery() as nursery:
                for partition in range(partitions):
                    nursery.start_soon(one, partition)

        async def consume(partition: int) -> None:
            async with client.subscribe(
                topic, partition, begin_offset="earliest", prefetch_count=5, max_bytes=200
            ) as sub:
                async for message_set in sub:
                    got[partition] += [(m.offset, m.value) for m in message_set]
                    if len(got[partition]) >= per_round // 3 and not stopped.is_set():
                        halfway[partition].set()
                        await stopped.wait()  # mid-stream when the leader dies
                    sub.ack(message_set.high_offset)
                    if len(got[partition]) >= 2 * per_round:
                        return

        await produce_round(0)
        leader = (await client.get_leader(topic, 0)).node_id
        with trio.fail_after(180):
            async with trio.open_nursery() as nursery:
                for partition in range(partitions):
                    nursery.start_soon(consume, partition)
                for event in halfway.values():
                    await event.wait()
                await cluster.stop_broker(leader, graceful=False)
                stopped.set()
                await produce_round(1)
        moved = [
            p for p in range(partitions) if (await client.get_leader(topic, p)).node_id != leader
        ]
    assert len(moved) == partitions  # the dead broker leads nothing now
    for partition in range(partitions):
        expected = [(i, b"%d:%d" % (partition, i)) for i in range(2 * per_round)]
        assert got[partition] == expected, partition
