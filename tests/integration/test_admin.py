"""trio_brod.admin against real Kafka: topics, partitions, configs, records, groups, offsets.

Where it is cheap, what admin did is checked with a tool that is not trio-brod (kcat,
Kafka's own ConfigCommand and ConsumerGroupCommand), so a bug that writes and reads back
the same wrong thing cannot pass.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
import trio

from tests.java_members import java_consumer
from trio_brod import BrokerMetadata, Client, open_client
from trio_brod.admin import (
    AlterConfigOp,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    alter_configs,
    commit_offsets,
    create_partitions,
    create_topics,
    delete_groups,
    delete_records,
    delete_topics,
    describe_cluster,
    describe_configs,
    describe_groups,
    fetch_committed_offsets,
    list_groups,
)
from trio_brod.protocol import (
    DeleteTopicsRequest,
    MetadataRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
)
from trio_brod.protocol.errors import (
    GroupIdNotFoundError,
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    KafkaError,
    NonEmptyGroupError,
    OffsetOutOfRangeError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from trio_brod.testing import AsyncKafkaCluster, KafkaCluster, KafkaTool
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def kcat_topics(bootstrap: list[str]) -> dict[str, int]:
    """Every topic kcat sees, with its partition count."""
    result = subprocess.run(
        ["kcat", "-b", ",".join(bootstrap), "-L", "-J"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return {t["topic"]: len(t["partitions"]) for t in json.loads(result.stdout)["topics"]}


async def metadata_on_every_broker(client: Client, topic: str) -> list[dict[int, int]]:
    """Each broker's own answer: partition -> leader, asked of that broker directly."""
    answers = []
    for broker in (await client.get_metadata([])).brokers.values():
        connection = await client.get_connection(broker.host, broker.port)
        response = await connection.request(
            MetadataRequest(
                topics=[MetadataRequest.MetadataRequestTopic(name=topic)],
                allow_auto_topic_creation=False,
            )
        )
        (answer,) = response.topics
        assert answer.error_code == 0, (broker.node_id, answer.error_code)
        answers.append({p.partition_index: p.leader_id for p in answer.partitions})
    return answers


# ------------------------------------------------------------------------------- topics


async def test_create_and_delete_topics(bootstrap_servers: list[str]) -> None:
    three, default = unique("admin-three"), unique("admin-default")
    async with open_client(bootstrap_servers, allow_topic_auto_creation=False) as client:
        await create_topics(
            client,
            [
                NewTopic(three, num_partitions=3, configs={"retention.ms": "3600000"}),
                NewTopic(default),  # the broker's num.partitions and replication factor
            ],
        )
        # create_topics waited for leaders: every partition is usable at once.
        (leaders,) = await metadata_on_every_broker(client, three)
        assert sorted(leaders) == [0, 1, 2]
        assert all(leader >= 0 for leader in leaders.values())
        seen = kcat_topics(bootstrap_servers)
        assert seen[three] == 3
        assert seen[default] >= 1
        configs = await describe_configs(client, [ConfigResource.topic(three)])
        retention = configs[ConfigResource.topic(three)]["retention.ms"]
        assert (retention.value, retention.source) == ("3600000", "DYNAMIC_TOPIC_CONFIG")

        # An existing topic: its own error, naming it.
        with pytest.raises(TopicAlreadyExistsError) as caught:
            await create_topics(client, [NewTopic(three, 1)])
        assert caught.value.context == {"topic": three}
        assert three in str(caught.value)

        # One bad topic among good ones: the good ones are created, the bad one raised.
        fresh = unique("admin-fresh")
        with pytest.raises(TopicAlreadyExistsError, match=three):
            await create_topics(client, [NewTopic(three, 1), NewTopic(fresh, 2)])
        assert await client.get_partitions_count_safe(fresh) == 2

        # Several bad ones: a group of their errors.
        with pytest.RaisesGroup(TopicAlreadyExistsError, TopicAlreadyExistsError) as group:
            await create_topics(client, [NewTopic(three, 1), NewTopic(fresh, 1)])
        assert "2 of 2 failed" in str(group.value)

        await delete_topics(client, [three, default, fresh])
        # delete_topics waited until no broker knows them.
        for name in (three, default, fresh):
            with pytest.raises(UnknownTopicOrPartitionError):
                await client.get_partitions_count_safe(name)
        assert not {three, default, fresh} & set(kcat_topics(bootstrap_servers))
        with pytest.raises(UnknownTopicOrPartitionError) as missing:
            await delete_topics(client, [three])
        assert missing.value.context == {"topic": three}


async def test_create_topics_validate_only_and_refusals(bootstrap_servers: list[str]) -> None:
    name = unique("admin-validate")
    async with open_client(bootstrap_servers, allow_topic_auto_creation=False) as client:
        await create_topics(client, [NewTopic(name, 2)], validate_only=True)
        with pytest.raises(UnknownTopicOrPartitionError):
            await client.get_partitions_count_safe(name)
        # One broker cannot hold three replicas.
        with pytest.raises(InvalidReplicationFactorError, match=name):
            await create_topics(client, [NewTopic(name, 1, replication_factor=3)])
        with pytest.raises(InvalidConfigError, match=name):
            await create_topics(client, [NewTopic(name, 1, configs={"retention.ms": "soon"})])
        # Manual placement on broker 1.
        await create_topics(client, [NewTopic(name, assignments={0: [1], 1: [1]})])
        metadata = await client.get_metadata([name])
        assert {p: m.replicas for p, m in metadata.topics[name].partitions.items()} == {
            0: (1,),
            1: (1,),
        }
        await delete_topics(client, [name])


def test_new_topic_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="num_partitions"):
        NewTopic("t", num_partitions=0)
    with pytest.raises(TypeError, match="replication_factor"):
        NewTopic("t", replication_factor="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="assignments"):
        NewTopic("t", num_partitions=2, assignments={0: [1]})
    with pytest.raises(TypeError, match="configs"):
        NewTopic("t", configs={"retention.ms": 5})  # type: ignore[dict-item]


async def test_create_partitions(make_topic: MakeTopic, bootstrap_servers: list[str]) -> None:
    topic = make_topic(partitions=2)
    async with open_client(bootstrap_servers) as client:
        await create_partitions(client, {topic: 5})
        assert await client.get_partitions_count_safe(topic) == 5
        assert kcat_topics(bootstrap_servers)[topic] == 5
        # The new partitions have leaders already: producing to the last one works.
        await client.start_producer(topic)
        assert await client.produce_sync(topic, b"x", partition=4) == 0
        with pytest.raises(InvalidPartitionsError, match=topic):
            await create_partitions(client, {topic: 3})
        with pytest.raises(UnknownTopicOrPartitionError):
            await create_partitions(client, {unique("admin-none"): 3})


# ------------------------------------------------------------------------------- configs


def config_command_describe(kafka: KafkaCluster, topic: str) -> str:
    """What Kafka's own kafka-configs tool says are the topic's explicitly set configs."""
    result = kafka.run_tool(
        KafkaTool.CONFIG_COMMAND,
        "--describe",
        "--entity-type",
        "topics",
        "--entity-name",
        topic,
        check=True,
    )
    return result.stdout


async def test_topic_configs_set_append_subtract_delete(
    make_topic: MakeTopic, kafka: KafkaCluster
) -> None:
    topic = make_topic()
    resource = ConfigResource.topic(topic)
    async with open_client(kafka.bootstrap_servers) as client:
        await alter_configs(client, {resource: {"retention.ms": "123456", "segment.ms": "7200000"}})
        # Brokers apply a change a moment after the controller accepted it: wait for it.
        retention = await config_once(client, resource, "retention.ms", "123456")
        assert retention.source == "DYNAMIC_TOPIC_CONFIG"
        configs = (await describe_configs(client, [resource]))[resource]
        assert configs["segment.ms"].value == "7200000"
        assert configs["max.message.bytes"].is_default
        theirs = config_command_describe(kafka, topic)
        assert "retention.ms=123456" in theirs
        assert "segment.ms=7200000" in theirs

        await alter_configs(
            client, {resource: [AlterConfigOp("cleanup.policy", "append", "compact")]}
        )
        await config_once(client, resource, "cleanup.policy", "delete,compact")
        only = await describe_configs(client, [resource], names=["cleanup.policy"])
        assert list(only[resource]) == ["cleanup.policy"]
        await alter_configs(
            client, {resource: [AlterConfigOp("cleanup.policy", "subtract", "compact")]}
        )
        await config_once(client, resource, "cleanup.policy", "delete")

        # Deleting a setting brings back the default; the other setting stays.
        await alter_configs(client, {resource: {"retention.ms": None}})
        retention = await config_once(client, resource, "retention.ms", str(7 * 24 * 3600 * 1000))
        assert retention.is_default
        configs = (await describe_configs(client, [resource], include_synonyms=True))[resource]
        assert configs["segment.ms"].value == "7200000"
        # Synonyms list every source of a topic config, the topic's own first.
        assert configs["segment.ms"].synonyms[0].source == "DYNAMIC_TOPIC_CONFIG"
        assert "retention.ms=" not in config_command_describe(kafka, topic)

        # validate_only changes nothing.
        await alter_configs(client, {resource: {"segment.ms": "3600000"}}, validate_only=True)
        await trio.sleep(0.5)  # were it applied, a broker would show it by now
        only = await describe_configs(client, [resource], names=["segment.ms"])
        assert only[resource]["segment.ms"].value == "7200000"

        with pytest.raises(InvalidConfigError, match=topic):
            await alter_configs(client, {resource: {"retention.ms": "soon"}})
        with pytest.raises(UnknownTopicOrPartitionError) as caught:
            await describe_configs(client, [ConfigResource.topic(unique("admin-none"))])
        assert "admin-none" in str(caught.value)


async def config_once(
    client: Client, resource: ConfigResource, name: str, value: str
) -> ConfigEntry:
    """The config once it has ``value`` (brokers apply changes a moment after accepting)."""
    with trio.fail_after(10):
        while True:
            configs = await describe_configs(client, [resource], names=[name])
            entry = configs[resource][name]
            if entry.value == value:
                return entry
            await trio.sleep(0.05)


async def test_broker_configs(bootstrap_servers: list[str]) -> None:
    async with open_client(bootstrap_servers) as client:
        (node_id,) = (await describe_cluster(client)).brokers
        broker = ConfigResource.broker(node_id)
        before = (await describe_configs(client, [broker]))[broker]
        assert before["log.cleaner.backoff.ms"].source in ("DEFAULT_CONFIG", "STATIC_BROKER_CONFIG")
        # A dynamic per-broker config that no other test cares about; set, read, put back.
        await alter_configs(client, {broker: {"log.cleaner.backoff.ms": "16000"}})
        try:
            # The broker applies the change when the controller's record reaches it.
            entry = await config_once(client, broker, "log.cleaner.backoff.ms", "16000")
            assert entry.source == "DYNAMIC_BROKER_CONFIG"
        finally:
            await alter_configs(client, {broker: {"log.cleaner.backoff.ms": None}})
        default = before["log.cleaner.backoff.ms"].value
        assert default is not None
        after = await config_once(client, broker, "log.cleaner.backoff.ms", default)
        assert after == before["log.cleaner.backoff.ms"]
        with pytest.raises(ValueError, match="not in the cluster"):
            await describe_configs(client, [ConfigResource.broker(node_id + 100)])


# ------------------------------------------------------------------------------- records


async def test_delete_records_moves_the_log_start(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=2)
    async with open_client(bootstrap_servers) as client:
        await client.start_producer(topic)
        for i in range(10):
            await client.produce_sync(topic, b"%d" % i, partition=0)
            await client.produce_sync(topic, b"%d" % i, partition=1)
        assert await delete_records(client, {(topic, 0): 4, (topic, 1): -1}) == {
            (topic, 0): 4,
            (topic, 1): 10,
        }
        assert await client.resolve_offset(topic, 0, "earliest") == 4
        assert await client.resolve_offset(topic, 1, "earliest") == 10
        first = await client.fetch(topic, 0, 4)
        assert [m.value for m in first][:1] == [b"4"]
        with pytest.raises(OffsetOutOfRangeError):
            await client.fetch(topic, 0, 0)
        with pytest.raises(OffsetOutOfRangeError) as caught:
            await delete_records(client, {(topic, 0): 11})
        assert caught.value.context == {"topic": topic, "partition": 0}
        with pytest.raises(UnknownTopicOrPartitionError):
            await delete_records(client, {(topic, 7): 1})


# ------------------------------------------------------------------------------- groups


def group_command_describe(kafka: KafkaCluster, group_id: str) -> dict[tuple[str, int], str]:
    """Kafka's kafka-consumer-groups --describe: the CURRENT-OFFSET per partition."""
    result = kafka.run_tool(
        KafkaTool.CONSUMER_GROUP_COMMAND, "--describe", "--group", group_id, check=True
    )
    offsets = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == group_id:
            offsets[fields[1], int(fields[2])] = fields[3]
    return offsets


async def test_commit_fetch_list_describe_delete_a_simple_group(
    make_topic: MakeTopic, kafka: KafkaCluster
) -> None:
    topic, other = make_topic(partitions=3), make_topic()
    group_id = unique("admin-group")
    async with open_client(kafka.bootstrap_servers) as client:
        assert await fetch_committed_offsets(client, group_id) == {}
        await commit_offsets(
            client, group_id, {(topic, 0): 5, (topic, 2): 7, (other, 0): 1}, metadata="by test"
        )
        committed = await fetch_committed_offsets(client, group_id)
        assert {key: c.offset for key, c in committed.items()} == {
            (topic, 0): 5,
            (topic, 2): 7,
            (other, 0): 1,
        }
        assert {c.metadata for c in committed.values()} == {"by test"}
        # By topic: partition 1 has no commit and is left out.
        only = await fetch_committed_offsets(client, group_id, [topic])
        assert set(only) == {(topic, 0), (topic, 2)}
        # Kafka's own tool reads the same commits (and lists only committed partitions).
        assert group_command_describe(kafka, group_id) == {
            (topic, 0): "5",
            (topic, 2): "7",
            (other, 0): "1",
        }

        listed = {g.group_id: g for g in await list_groups(client)}
        assert listed[group_id].state == "Empty"
        assert (
            listed[group_id].coordinator_id
            == (await client.get_group_coordinator(group_id)).node_id
        )
        described = await describe_groups(client, [group_id, unique("admin-never")])
        assert described[group_id].state == "Empty"
        assert described[group_id].members == ()
        (never,) = set(described) - {group_id}
        assert described[never].state == "Dead"

        await commit_offsets(client, group_id, {(topic, 0): 6})
        committed = await fetch_committed_offsets(client, group_id, [topic])
        assert committed[topic, 0].offset == 6

        with pytest.raises(UnknownTopicOrPartitionError):
            await commit_offsets(client, group_id, {(unique("admin-none"), 0): 1})

        await delete_groups(client, [group_id])
        assert await fetch_committed_offsets(client, group_id) == {}
        assert group_id not in {g.group_id for g in await list_groups(client)}
        with pytest.raises(GroupIdNotFoundError) as caught:
            await delete_groups(client, [group_id])
        assert caught.value.context == {"group_id": group_id}


async def test_describe_groups_decodes_a_java_members_assignment(
    make_topic: MakeTopic, kafka: KafkaCluster, tmp_path: Path
) -> None:
    topic = make_topic(partitions=3)
    group_id = unique("admin-java")
    log = tmp_path / "console-consumer.log"
    async with open_client(kafka.bootstrap_servers) as client:
        with java_consumer(kafka, topic, group_id, log) as process:
            with trio.move_on_after(60):
                while process.poll() is None:
                    group = (await describe_groups(client, [group_id]))[group_id]
                    if group.state == "Stable" and group.members:
                        break
                    await trio.sleep(0.2)
            assert group.state == "Stable", log.read_text()
            assert group.protocol_type == "consumer"
            assert group.protocol in ("range", "cooperative-sticky", "roundrobin")
            (member,) = group.members
            assert member.client_id == "java-member"
            assert member.subscription == (topic,)
            assert member.assignment == {topic: (0, 1, 2)}
            listed = {g.group_id: g for g in await list_groups(client)}
            assert listed[group_id].protocol_type == "consumer"
            assert listed[group_id].state == "Stable"
            # An active group can neither be deleted nor take commits from outside it.
            with pytest.raises(NonEmptyGroupError):
                await delete_groups(client, [group_id])
            with pytest.raises(KafkaError) as caught:
                await commit_offsets(client, group_id, {(topic, 0): 1})
            assert caught.value.name in ("UNKNOWN_MEMBER_ID", "ILLEGAL_GENERATION")


# ------------------------------------------------------------------------------- versions


async def test_older_request_versions_against_the_real_broker(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    """The field layouts that changed (OffsetFetch v8's groups array, DeleteTopics v6's
    topic structs, OffsetCommit before v8's flexible encoding) work in both shapes."""
    topic = make_topic(partitions=2)
    group_id = unique("admin-old")
    async with open_client(bootstrap_servers) as client:
        connections = [
            await client.get_connection(b.host, b.port)
            for b in (await client.get_metadata([])).brokers.values()
        ]
        connections.append(await client.pool.any_connection())
        for connection in set(connections):
            for api, highest in (
                (OffsetFetchRequest, 7),
                (DeleteTopicsRequest, 5),
                (OffsetCommitRequest, 7),
            ):
                low, high = connection.api_versions[api.API_KEY]
                assert high > highest, f"the broker no longer speaks above v{highest}"
                connection.api_versions[api.API_KEY] = (low, highest)
        await commit_offsets(client, group_id, {(topic, 1): 3})
        assert {
            k: c.offset for k, c in (await fetch_committed_offsets(client, group_id)).items()
        } == {(topic, 1): 3}
        only = await fetch_committed_offsets(client, group_id, [topic])
        assert list(only) == [(topic, 1)]
        await delete_topics(client, [topic])
        with pytest.raises(UnknownTopicOrPartitionError):
            await client.get_partitions_count_safe(topic)


# ------------------------------------------------------------------------------- cluster


async def test_describe_cluster(bootstrap_servers: list[str]) -> None:
    async with open_client(bootstrap_servers) as client:
        cluster = await describe_cluster(client)
        metadata = await client.get_metadata([])
    assert cluster.cluster_id == metadata.cluster_id
    assert cluster.brokers == metadata.brokers
    assert cluster.controller_id in cluster.brokers
    assert [b.address for b in cluster.brokers.values()] == bootstrap_servers


@pytest.mark.cluster
async def test_three_brokers_topics_groups_and_coordinator_failover(
    kafka_cluster3: KafkaCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = AsyncKafkaCluster(kafka_cluster3)
    topic = unique("admin-cluster3")
    async with open_client(kafka_cluster3.bootstrap_servers) as client:
        description = await describe_cluster(client)
        assert sorted(description.brokers) == [1, 2, 3]

        await create_topics(client, [NewTopic(topic, num_partitions=6, replication_factor=3)])
        # Every broker, asked directly, already shows a leader for every partition.
        answers = await metadata_on_every_broker(client, topic)
        assert len(answers) == 3
        for leaders in answers:
            assert sorted(leaders) == list(range(6))
            assert all(leader in (1, 2, 3) for leader in leaders.values())

        # Groups land on different coordinators; list_groups asks every broker.
        coordinators: dict[str, int] = {}
        while len(set(coordinators.values())) < 3:
            group_id = unique("admin-spread")
            await commit_offsets(client, group_id, {(topic, 0): 1})
            coordinators[group_id] = (await client.get_group_coordinator(group_id)).node_id
        listed = {g.group_id: g.coordinator_id for g in await list_groups(client)}
        for group_id, node_id in coordinators.items():
            assert listed[group_id] == node_id

        # Asked of the wrong broker, each group call gets NOT_COORDINATOR from it, finds the
        # coordinator again and asks that one.
        group_id = next(iter(coordinators))
        find = client.get_group_coordinator
        found: list[int] = []

        async def wrong_broker_first(group: str) -> BrokerMetadata:
            right = await find(group)
            found.append(right.node_id)
            if len(found) % 2:
                return description.brokers[1 if right.node_id != 1 else 2]
            return right

        monkeypatch.setattr(client, "get_group_coordinator", wrong_broker_first)
        await commit_offsets(client, group_id, {(topic, 1): 11})
        assert (await fetch_committed_offsets(client, group_id))[topic, 1].offset == 11
        assert (await describe_groups(client, [group_id]))[group_id].state == "Empty"
        assert len(found) == 6  # each call: the wrong broker, then the right one
        monkeypatch.undo()

        # The coordinator goes away: its groups move, and fetching their offsets follows.
        await commit_offsets(client, group_id, {(topic, 3): 42})
        victim = coordinators[group_id]
        await cluster.stop_broker(victim)
        committed = await fetch_committed_offsets(client, group_id)
        assert committed[topic, 3].offset == 42
        assert (await client.get_group_coordinator(group_id)).node_id != victim
        await cluster.start_broker(victim)
        await delete_topics(client, [topic])
