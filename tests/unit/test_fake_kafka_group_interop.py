"""librdkafka (confluent-kafka) and kcat consumer groups through the fake's group coordinator.

On the real clock (librdkafka has its own timers); no real Kafka is needed.
"""

from __future__ import annotations

import time

import confluent_kafka
import trio

from trio_brod import open_client
from trio_brod.testing import fake_kafka

TOPIC, GROUP, COUNT = "rdg", "rd-group", 40


def two_members_consume(bootstrap: str) -> tuple[list[set[int]], set[tuple[int, int]]]:
    """Two librdkafka members share the topic; each commits what it read. Returns each
    member's assignment once both have one, and every (partition, offset) read.
    """
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": GROUP,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "partition.assignment.strategy": "range",
    }
    members = [confluent_kafka.Consumer(config), confluent_kafka.Consumer(config)]
    got: set[tuple[int, int]] = set()
    shares: list[set[int]] = []
    try:
        for m in members:
            m.subscribe([TOPIC])
        deadline = time.monotonic() + 90  # generous: the machine is shared
        while time.monotonic() < deadline:
            for m in members:
                message = m.poll(0.05)
                if message is not None and message.error() is None:
                    got.add((message.partition(), message.offset()))
                    m.commit(message, asynchronous=False)
            current = [{tp.partition for tp in m.assignment()} for m in members]
            if all(current) and not shares:
                shares = current
            if shares and len(got) == COUNT:
                break
    finally:
        for m in members:
            m.close()
    return shares, got


async def test_librdkafka_members_share_a_group_through_the_fake() -> None:
    async with fake_kafka() as fake:
        fake.create_topic(TOPIC, partitions=4)
        async with open_client(fake.bootstrap_servers) as client:
            await client.start_producer(TOPIC)
            for i in range(COUNT):
                await client.produce_sync(TOPIC, b"%d" % i, partition=i % 4)
        with trio.fail_after(120):
            shares, got = await trio.to_thread.run_sync(
                two_members_consume, ",".join(fake.bootstrap_servers)
            )
        assert got == {(p, o) for p in range(4) for o in range(COUNT // 4)}
        assert len(shares) == 2
        assert shares[0] | shares[1] == set(range(4))
        assert not shares[0] & shares[1]
        group = fake.group(GROUP)
        assert group is not None
        assert {k: c.offset for k, c in group.offsets.items()} == {
            (TOPIC, p): COUNT // 4 for p in range(4)
        }
        # Both closed, each with a LeaveGroup: the group is empty, its offsets stay.
        assert group.state == "Empty"


async def test_kcat_balanced_consumer_through_the_fake() -> None:
    async with fake_kafka() as fake:
        fake.create_topic("kg", partitions=2)
        async with open_client(fake.bootstrap_servers) as client:
            await client.start_producer("kg")
            for i in range(10):
                await client.produce_sync("kg", b"v%d" % i, partition=i % 2)
        with trio.fail_after(120):
            result = await trio.run_process(
                [
                    "kcat", "-b", ",".join(fake.bootstrap_servers), "-G", "kcat-group", "kg",
                    "-o", "beginning", "-e", "-f", "%p %o %s\n",
                    "-X", "session.timeout.ms=6000",
                ],
                capture_stdout=True,
                capture_stderr=True,
            )  # fmt: skip
        lines = set(result.stdout.decode().splitlines())
        assert lines == {f"{i % 2} {i // 2} v{i}" for i in range(10)}
        group = fake.group("kcat-group")
        assert group is not None
        assert group.generation >= 1
