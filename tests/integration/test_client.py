"""The client against real Kafka: metadata, leaders, coordinators, broker loss and recovery."""

from __future__ import annotations

import json
import subprocess

import pytest
import trio

from trio_brod import (
    BrokerConnectionError,
    ConnectionFailed,
    UnsupportedVersion,
    open_client,
)
from trio_brod.protocol import REQUESTS, MetadataRequest
from trio_brod.protocol.errors import UnknownTopicOrPartitionError
from trio_brod.testing import AsyncKafkaCluster, KafkaCluster
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.integration


def kcat_metadata(bootstrap: list[str], topic: str) -> dict[str, object]:
    """What kcat says about a topic (``kcat -L -J``)."""
    result = subprocess.run(
        ["kcat", "-b", ",".join(bootstrap), "-L", "-J", "-t", topic],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


@pytest.mark.compat
async def test_metadata_matches_kcat(make_topic: MakeTopic, bootstrap_servers: list[str]) -> None:
    topic = make_topic(partitions=4)
    async with open_client(bootstrap_servers) as client:
        metadata = await client.get_metadata([topic])
    theirs = kcat_metadata(bootstrap_servers, topic)

    brokers = theirs["brokers"]
    assert isinstance(brokers, list)
    assert {(b["id"], b["name"]) for b in brokers} == {
        (b.node_id, b.address) for b in metadata.brokers.values()
    }
    (kcat_topic,) = theirs["topics"]  # type: ignore[misc]
    ours = metadata.topics[topic]
    assert ours.error_code == 0
    assert len(ours.partitions) == len(kcat_topic["partitions"]) == 4
    for p in kcat_topic["partitions"]:
        mine = ours.partitions[p["partition"]]
        assert mine.leader == p["leader"]
        assert list(mine.replicas) == [r["id"] for r in p["replicas"]]
        assert sorted(mine.isr) == sorted(r["id"] for r in p["isrs"])


@pytest.mark.compat
async def test_partitions_count_and_auto_creation(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=3)
    async with open_client(bootstrap_servers) as client:
        assert await client.get_partitions_count(topic) == 3
        assert await client.get_partitions_count_safe(topic) == 3
        with pytest.raises(UnknownTopicOrPartitionError, match="no-such-topic"):
            await client.get_partitions_count_safe("no-such-topic-trio-brod")
        # The broker allows auto-creation; a plain lookup creates the topic (as brod does).
        created = f"{topic}-auto"
        assert await client.get_partitions_count(created) >= 1
    async with open_client(bootstrap_servers, allow_topic_auto_creation=False) as client:
        with pytest.raises(UnknownTopicOrPartitionError):
            await client.get_partitions_count(f"{topic}-never")


@pytest.mark.compat
async def test_api_versions_negotiated_with_a_real_broker(bootstrap_servers: list[str]) -> None:
    async with open_client(bootstrap_servers) as client:
        host, port = bootstrap_servers[0].rsplit(":", 1)
        connection = await client.get_connection(host, int(port))
    for api in REQUESTS.values():
        theirs = connection.api_versions.get(api.API_KEY)
        if theirs is None:
            with pytest.raises(UnsupportedVersion):
                connection.best_version(api)
            continue
        assert connection.best_version(api) == min(theirs[1], api.MAX_STABLE_VERSION)
    # Kafka 4 speaks the flexible ApiVersions (v3+), which carries our software name.
    assert connection.api_versions[18][1] >= 3


@pytest.mark.compat
async def test_group_coordinator(bootstrap_servers: list[str], kafka: KafkaCluster) -> None:
    async with open_client(bootstrap_servers) as client:
        coordinator = await client.get_group_coordinator("trio-brod-test-group")
        assert coordinator.node_id in kafka.broker_ids
        transactional = await client.get_transactional_coordinator("trio-brod-test-txn")
        assert transactional.node_id in kafka.broker_ids


@pytest.mark.cluster
async def test_leader_of_every_partition_on_three_brokers(
    make_topic: MakeTopic, kafka_cluster3: KafkaCluster
) -> None:
    topic = make_topic(partitions=9, replication_factor=3, cluster=kafka_cluster3)
    theirs = kcat_metadata(kafka_cluster3.bootstrap_servers, topic)
    leaders = {p["partition"]: p["leader"] for p in theirs["topics"][0]["partitions"]}  # type: ignore[index]
    brokers = {b["id"]: b["name"] for b in theirs["brokers"]}  # type: ignore[union-attr]
    async with open_client(kafka_cluster3.bootstrap_servers[:1]) as client:
        for partition in range(9):
            connection = await client.get_leader_connection(topic, partition)
            assert connection.address == brokers[leaders[partition]]
        # Leadership is spread: more than one broker leads some partition.
        assert len(set(leaders.values())) > 1


@pytest.mark.cluster
async def test_broker_loss_gives_clear_errors_and_recovers(
    make_topic: MakeTopic, kafka_cluster3: KafkaCluster
) -> None:
    cluster = AsyncKafkaCluster(kafka_cluster3)
    topic = make_topic(partitions=6, replication_factor=3, cluster=kafka_cluster3)
    async with open_client(kafka_cluster3.bootstrap_servers, reconnect_cool_down=2.0) as client:
        metadata = await client.get_metadata([topic])
        victim = metadata.topics[topic].partitions[0].leader
        address = metadata.brokers[victim]
        connection = await client.get_connection(address.host, address.port)

        await cluster.stop_broker(victim)

        # The open connection notices the broker is gone.
        async def ask_until_it_fails() -> None:
            for _ in range(50):
                await connection.request(MetadataRequest(topics=[]))
                await trio.sleep(0.1)

        with pytest.raises(BrokerConnectionError):
            await ask_until_it_fails()
        assert connection.closed
        # A new connection is refused, and during the cool-down the error comes back at once.
        with pytest.raises(ConnectionFailed):
            await client.get_connection(address.host, address.port)
        with trio.fail_after(0.5):
            with pytest.raises(ConnectionFailed, match="reconnect_cool_down"):
                await client.get_connection(address.host, address.port)
        # Leaders move to the brokers still up; lookups find them.
        with trio.fail_after(30):
            while True:
                leader = await client.get_leader_connection(topic, 0, refresh=True)
                if leader.address != address.address:
                    break
                await trio.sleep(0.5)
        assert not leader.closed

        await cluster.start_broker(victim)
        await trio.sleep(2.1)  # past the cool-down
        with trio.fail_after(30):
            while True:
                try:
                    back = await client.get_connection(address.host, address.port)
                except ConnectionFailed:
                    await trio.sleep(0.5)
                else:
                    break
        response = await back.request(MetadataRequest(topics=[]))
        assert victim in {b.node_id for b in response.brokers}


async def test_bootstrap_with_one_dead_server(
    bootstrap_servers: list[str], kafka: KafkaCluster
) -> None:
    # A closed port first: the client moves on to the live one.
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    dead = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    async with open_client([f"127.0.0.1:{dead}", *bootstrap_servers]) as client:
        metadata = await client.get_metadata()
    assert set(metadata.brokers) == set(kafka.broker_ids)
