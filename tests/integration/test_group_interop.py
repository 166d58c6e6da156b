"""trio-brod members in one group with Kafka's Java consumer and librdkafka (issue 12).

For each assignor (range, roundrobin, cooperative-sticky), a trio-brod group subscriber,
Java's VerifiableConsumer and a confluent-kafka consumer join one group one by one, and the
Java member leaves again, while messages flow. A monitor samples what each client owns all
the time: no partition is ever owned by two clients at once, and after each rebalance every
partition is owned by exactly one. Every message produced is consumed by someone.

Short timeouts keep the tests short: session_timeout 6 s (the broker's minimum), heartbeats
every second for every client.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest
import trio

from tests.group_peers import JavaMember, LibrdkafkaMember, TopicPartition, running
from trio_brod import AssignedPartition, GroupConfig, open_client, open_group_subscriber
from trio_brod._config_groups import AssignorName
from trio_brod.admin import describe_groups, fetch_committed_offsets
from trio_brod.protocol.records import Record
from trio_brod.testing import KafkaCluster, KafkaTool
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.integration

PARTITIONS = 6


def fast(assignor: AssignorName) -> GroupConfig:
    return GroupConfig(
        partition_assignment_strategy=assignor,
        session_timeout=6.0,
        heartbeat_rate=1.0,
        rebalance_timeout=10.0,
        offset_commit_interval=0.5,
    )


async def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll state that other threads and processes change (they cannot set a trio.Event)."""
    with trio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 (polling other threads' state)
            await trio.sleep(0.05)


class Owners:
    """What every client of the group owns, sampled often: overlaps are kept as found."""

    def __init__(self, everything: set[TopicPartition]) -> None:
        self.everything = everything
        self.clients: dict[str, Callable[[], set[TopicPartition]]] = {}
        self.overlaps: list[tuple[TopicPartition, list[str]]] = []

    def snapshot(self) -> dict[str, set[TopicPartition]]:
        return {name: owned() for name, owned in self.clients.items()}

    def check(self) -> dict[str, set[TopicPartition]]:
        snapshot = self.snapshot()
        for tp in sorted(self.everything):
            holders = [name for name, owned in snapshot.items() if tp in owned]
            if len(holders) > 1:
                self.overlaps.append((tp, holders))
        return snapshot

    async def monitor(self) -> None:
        while True:
            self.check()
            await trio.sleep(0.02)

    async def settled(self, members: set[str], what: str) -> None:
        """Wait until exactly ``members`` own partitions, all of them, and check once more."""

        def done() -> bool:
            snapshot = self.check()
            return (
                all(bool(snapshot[m]) == (m in members) for m in snapshot)
                and set().union(*snapshot.values()) == self.everything
            )

        await wait_until(done, 60, what)
        snapshot = self.check()
        owned = [tp for name in members for tp in snapshot[name]]
        assert sorted(owned) == sorted(self.everything), (what, snapshot)


@pytest.mark.parametrize("assignor", ["range", "roundrobin", "cooperative-sticky"])
async def test_trio_brod_java_and_librdkafka_members_share_a_group(
    kafka: KafkaCluster, make_topic: MakeTopic, tmp_path: Path, assignor: AssignorName
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    group = f"interop-{assignor}-{topic}"
    everything = {(topic, p) for p in range(PARTITIONS)}
    owners = Owners(everything)
    java = JavaMember(
        kafka,
        topic,
        group,
        tmp_path / "java.log",
        assignor=assignor,
        session_timeout=6.0,
        heartbeat_rate=1.0,
    )
    rdkafka = LibrdkafkaMember(
        kafka.bootstrap_servers,
        topic,
        group,
        assignor=assignor,
        session_timeout=6.0,
        heartbeat_rate=1.0,
    )
    ours: list[tuple[str, int, int]] = []
    produced: set[tuple[str, int, int]] = set()

    async def handle(assigned: AssignedPartition, message: Record) -> None:
        ours.append((assigned.topic, assigned.partition, message.offset))

    async with (
        open_client(kafka.bootstrap_servers) as producer,
        open_client(kafka.bootstrap_servers) as client,
        trio.open_nursery() as nursery,
    ):
        await producer.start_producer(topic)

        async def produce() -> None:
            i = 0
            while True:
                offset = await producer.produce_sync(topic, b"%d" % i, partition=i % PARTITIONS)
                produced.add((topic, i % PARTITIONS, offset))
                i += 1
                await trio.sleep(0.01)

        producing = trio.CancelScope()

        async def keep_producing() -> None:
            with producing:
                await produce()

        nursery.start_soon(keep_producing)
        config = fast(assignor)
        async with open_group_subscriber(client, group, [topic], handle, config=config) as g:
            owners.clients = {
                "trio-brod": lambda: {a.topic_partition for a in g.assignments()},
                "java": java.owned,
                "librdkafka": rdkafka.owned,
            }
            nursery.start_soon(owners.monitor)
            await owners.settled({"trio-brod"}, "trio-brod alone")
            with running(java):
                await owners.settled({"trio-brod", "java"}, "java joined")
                with running(rdkafka):
                    await owners.settled({"trio-brod", "java", "librdkafka"}, "librdkafka joined")
                    java.stop()  # SIGTERM: it commits and leaves
                    await owners.settled({"trio-brod", "librdkafka"}, "java left")
                    producing.cancel()
                    every = produced.copy()

                    def all_consumed() -> bool:
                        return every <= set(ours) | set(java.records()) | set(rdkafka.records())

                    await wait_until(all_consumed, 30, "every message consumed")
        nursery.cancel_scope.cancel()
    assert owners.overlaps == []
    assert len(every) > 100
    missing = every - set(ours) - set(java.records()) - set(rdkafka.records())
    assert not missing


def group_command(kafka: KafkaCluster, group: str, *options: str) -> list[list[str]]:
    """``kafka-consumer-groups.sh --describe --group group *options``: the table's rows."""
    result = kafka.run_tool(
        KafkaTool.CONSUMER_GROUP_COMMAND, "--describe", "--group", group, *options, check=True
    )
    lines = [line.split() for line in result.stdout.splitlines() if line.strip()]
    header = next(i for i, words in enumerate(lines) if words[0] == "GROUP")
    return lines[header + 1 :]


async def test_admin_reports_a_trio_brod_group_as_kafka_consumer_groups_does(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    topic = make_topic(partitions=4)
    group = f"describe-{topic}"
    handled = 0
    everything_handled = trio.Event()

    async def handle(assigned: AssignedPartition, message: Record) -> Literal[False] | None:
        nonlocal handled
        handled += 1
        if handled == 40:
            everything_handled.set()
        # Partition 0's last 4 messages stay unacknowledged: a lag of 4 there.
        return False if assigned.partition == 0 and message.offset >= 6 else None

    config = fast("range")
    async with (
        open_client(kafka.bootstrap_servers, client_id="describe-1") as c1,
        open_client(kafka.bootstrap_servers, client_id="describe-2") as c2,
        open_group_subscriber(c1, group, [topic], handle, config=config) as g1,
    ):
        await c1.start_producer(topic)
        for i in range(40):
            await c1.produce_sync(topic, b"%d" % i, partition=i % 4)
        async with open_group_subscriber(c2, group, [topic], handle, config=config) as g2:
            with trio.fail_after(60):
                await everything_handled.wait()
                while not (len(g1.assignments()) == len(g2.assignments()) == 2):  # noqa: ASYNC110
                    await trio.sleep(0.05)
            await g1.commit()
            await g2.commit()
            members = {g1.health().member_id: "describe-1", g2.health().member_id: "describe-2"}

            described = (await describe_groups(c1, [group]))[group]
            committed = await fetch_committed_offsets(c1, group, [topic])
            ends = {p: await c1.resolve_offset(topic, p) for p in range(4)}
            ours = []  # the tool's columns, from trio_brod.admin
            for m in described.members:
                assert m.assignment is not None
                for p in m.assignment[topic]:
                    at = committed[topic, p].offset
                    where = (m.member_id, m.client_host, m.client_id)
                    ours.append((group, topic, p, at, ends[p], ends[p] - at, *where))
            state = await trio.to_thread.run_sync(group_command, kafka, group, "--state")
            rows = await trio.to_thread.run_sync(group_command, kafka, group)
    assert {m.member_id: m.client_id for m in described.members} == members
    assert described.protocol == "range"
    assert sorted(ours) == sorted(
        (g, t, int(p), int(at), int(end), int(lag), *where)
        for g, t, p, at, end, lag, *where in rows
    )
    assert sum(row[5] for row in ours) == 4  # the unacknowledged messages of partition 0
    # COORDINATOR (ID): host:port (id); ASSIGNMENT-STRATEGY; STATE; #MEMBERS
    ((*_, node, strategy, group_state, count),) = [row[1:] for row in state]
    assert node == f"({described.coordinator.node_id})"
    assert (strategy, group_state, int(count)) == ("range", described.state, 2)
