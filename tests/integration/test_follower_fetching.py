"""Follower fetching (Kafka's KIP-392) on a three-broker cluster with racks and the
rack-aware replica selector: a consumer with ``client_rack`` reads from the replica in its
rack, not from the leader, and still gets every message once, in order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

from trio_brod import open_client
from trio_brod.testing import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

SELECTOR = "org.apache.kafka.common.replica.RackAwareReplicaSelector"


@pytest.fixture(scope="module")
def rack_cluster() -> Iterator[KafkaCluster]:
    with KafkaCluster(
        3,
        broker_config={"replica.selector.class": SELECTOR},
        node_config={node: {"broker.rack": f"rack-{node}"} for node in (1, 2, 3)},
    ) as cluster:
        yield cluster


async def test_a_consumer_fetches_from_the_replica_in_its_rack(rack_cluster: KafkaCluster) -> None:
    topic = "follower-fetching"
    rack_cluster.create_topic(topic, partitions=1, replication_factor=3)
    bootstrap = rack_cluster.bootstrap_servers
    async with open_client(bootstrap) as producer:
        await producer.start_producer(topic)
        for start in range(0, 100, 10):
            values = [(None, b"%d" % i) for i in range(start, start + 10)]
            await producer.produce_batch(topic, values, partition=0)
        leader = (await producer.get_leader(topic, 0)).node_id
    follower = next(node for node in (1, 2, 3) if node != leader)

    got: list[tuple[int, bytes | None]] = []
    async with open_client(bootstrap, client_rack=f"rack-{follower}") as client:
        await client.start_producer(topic)
        async with client.subscribe(topic, 0, begin_offset="earliest") as sub:
            with trio.fail_after(60):
                async for message_set in sub:
                    got += [(m.offset, m.value) for m in message_set]
                    sub.ack(message_set.high_offset)
                    if len(got) == 100:
                        await client.produce_sync(topic, b"100", partition=0)
                    if len(got) >= 101:
                        break
        fetchers = client._topic_consumers[topic]._fetchers.fetchers
        brokers = client.metadata.brokers
        with_data = {f.port: f.answers_with_data for f in fetchers}
    assert got == [(i, b"%d" % i) for i in range(101)]
    # The data came from the follower in the client's rack, not from the leader.
    assert with_data.get(brokers[follower].port, 0) > 0
    assert with_data.get(brokers[leader].port, 0) == 0
