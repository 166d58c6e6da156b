"""trio-brod members in one KIP-848 ``consumer`` group with Kafka's Java consumer and
librdkafka, both with ``group.protocol=consumer`` (issue 13).

A trio-brod group subscriber, Java's VerifiableConsumer and a confluent-kafka consumer join
one group one by one, and the Java member leaves again, while messages flow. A monitor
samples what each client owns all the time: no partition is ever owned by two clients at
once, and after each step every partition is owned by exactly one. Every message produced
is consumed by someone. The broker's assignor (uniform) splits the partitions; its heartbeat
interval (5 s) paces the steps.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.group_peers import JavaMember, LibrdkafkaMember, running
from tests.integration.test_group_interop import Owners, wait_until
from tests.kip848 import skip_without_kip848
from trio_brod import AssignedPartition, GroupConfig, open_client, open_group_subscriber
from trio_brod.protocol.records import Record
from trio_brod.testing import KafkaCluster
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.integration

PARTITIONS = 6


async def test_trio_brod_java_and_librdkafka_members_share_a_consumer_protocol_group(
    kafka: KafkaCluster, make_topic: MakeTopic, tmp_path: Path
) -> None:
    skip_without_kip848(kafka)
    topic = make_topic(partitions=PARTITIONS)
    group = f"interop-kip848-{topic}"
    owners = Owners({(topic, p) for p in range(PARTITIONS)})
    java = JavaMember(kafka, topic, group, tmp_path / "java.log", group_protocol="consumer")
    rdkafka = LibrdkafkaMember(kafka.bootstrap_servers, topic, group, group_protocol="consumer")
    ours: list[tuple[str, int, int]] = []
    produced: set[tuple[str, int, int]] = set()

    async def handle(assigned: AssignedPartition, message: Record) -> None:
        ours.append((assigned.topic, assigned.partition, message.offset))

    config = GroupConfig(group_protocol="consumer", offset_commit_interval=0.5)
    async with (
        open_client(kafka.bootstrap_servers) as producer,
        open_client(kafka.bootstrap_servers) as client,
        trio.open_nursery() as nursery,
    ):
        await producer.start_producer(topic)
        producing = trio.CancelScope()

        async def produce() -> None:
            with producing:
                i = 0
                while True:
                    partition = i % PARTITIONS
                    offset = await producer.produce_sync(topic, b"%d" % i, partition=partition)
                    produced.add((topic, partition, offset))
                    i += 1
                    await trio.sleep(0.01)

        nursery.start_soon(produce)
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

                    await wait_until(all_consumed, 60, "every message consumed")
        nursery.cancel_scope.cancel()
    assert owners.overlaps == []
    assert len(every) > 100
    assert not every - set(ours) - set(java.records()) - set(rdkafka.records())
