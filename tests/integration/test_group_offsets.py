"""Group coordinator and committed offsets against real Kafka: simple commits, refused
stale members, and the coordinator's broker stopped in the three-broker cluster.

What trio-brod commits is read back by librdkafka too (confluent-kafka's ``committed``), so
a bug that writes and reads back the same wrong thing cannot pass.
"""

from __future__ import annotations

import uuid

import pytest
import trio
from confluent_kafka import Consumer, TopicPartition

from trio_brod import open_client
from trio_brod.groups._coordinator import GroupCoordinator
from trio_brod.groups.offsets import commit_offsets, fetch_committed
from trio_brod.protocol.errors import UnknownMemberIdError
from trio_brod.testing import AsyncKafkaCluster, KafkaCluster
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def librdkafka_committed(
    bootstrap: list[str], group_id: str, partitions: list[tuple[str, int]]
) -> dict[tuple[str, int], tuple[int, str | None]]:
    consumer = Consumer({"bootstrap.servers": ",".join(bootstrap), "group.id": group_id})
    try:
        found = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=20)
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): (tp.offset, tp.metadata) for tp in found}


async def test_a_simple_commit_is_fetched_back_and_read_by_librdkafka(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=3)
    group_id = unique("simple-commit")
    asked = [(topic, 0), (topic, 1), (topic, 2)]
    async with open_client(bootstrap_servers) as client:
        coordinator = GroupCoordinator(client.pool, client.metadata, group_id)
        assert await fetch_committed(coordinator, group_id, asked) == dict.fromkeys(asked)
        await commit_offsets(coordinator, group_id, {(topic, 0): 5, (topic, 2): (9, "by test")})
        assert await fetch_committed(coordinator, group_id, asked) == {
            (topic, 0): 5,
            (topic, 1): None,
            (topic, 2): 9,
        }
        # A retention time (OffsetCommit v4) is taken too.
        await commit_offsets(coordinator, group_id, {(topic, 1): 3}, retention=3600.0)
        assert (await fetch_committed(coordinator, group_id, [(topic, 1)]))[topic, 1] == 3
    committed = await trio.to_thread.run_sync(
        librdkafka_committed, bootstrap_servers, group_id, asked
    )
    assert committed[topic, 0][0] == 5
    assert committed[topic, 1][0] == 3
    assert committed[topic, 2] == (9, "by test")


async def test_a_commit_from_an_unknown_member_is_refused(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic()
    group_id = unique("unknown-member")
    async with open_client(bootstrap_servers) as client:
        coordinator = GroupCoordinator(client.pool, client.metadata, group_id)
        await commit_offsets(coordinator, group_id, {(topic, 0): 1})  # the group now exists
        with pytest.raises(UnknownMemberIdError) as caught:
            await commit_offsets(
                coordinator, group_id, {(topic, 0): 2}, generation_id=1, member_id="ghost"
            )
        assert caught.value.context == {"group_id": group_id, "topic": topic, "partition": 0}
        assert await fetch_committed(coordinator, group_id, [(topic, 0)]) == {(topic, 0): 1}


@pytest.mark.cluster
async def test_commits_follow_the_coordinator_when_its_broker_stops(
    make_topic: MakeTopic, kafka_cluster3: KafkaCluster
) -> None:
    topic = make_topic(partitions=2, replication_factor=3, cluster=kafka_cluster3)
    cluster = AsyncKafkaCluster(kafka_cluster3)
    group_id = unique("failover")
    async with open_client(kafka_cluster3.bootstrap_servers) as client:
        coordinator = GroupCoordinator(client.pool, client.metadata, group_id)
        await commit_offsets(coordinator, group_id, {(topic, 0): 10})
        victim = coordinator.broker
        assert victim is not None
        await cluster.stop_broker(victim.node_id)
        try:
            with trio.fail_after(30):
                # Still pointed at the stopped broker: the commit finds the new coordinator.
                await commit_offsets(coordinator, group_id, {(topic, 0): 11, (topic, 1): 4})
                moved = coordinator.broker
                assert moved is not None
                assert moved.node_id != victim.node_id
                assert await fetch_committed(coordinator, group_id, [(topic, 0), (topic, 1)]) == {
                    (topic, 0): 11,
                    (topic, 1): 4,
                }
        finally:
            await cluster.start_broker(victim.node_id)
