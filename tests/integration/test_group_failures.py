"""Consumer groups when things fail, on real brokers (issue 12's failure guarantees).

* a member SIGKILLed mid-stream (a real process: tests/group_member_process.py): the
  other member takes its partitions after the session timeout, from its last commit, and
  every message is handled (at least once, no gap);
* the coordinator's broker stopped in the three-broker cluster: the member finds the new
  coordinator and goes on, and no commit is lost (classic and KIP-848 consumer protocol);
* a static member restarted with a new client within the session timeout: its partitions
  come back with no rebalance (the generation does not change, the other member keeps its
  partitions throughout).

Timeouts as in tests/integration/test_groups.py: session_timeout 6 s, heartbeats every
second, commits every half second.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from tests.group_member_process import CONFIG, CONSUMER_CONFIG
from tests.kip848 import skip_without_kip848
from trio_brod import (
    AssignedPartition,
    ConsumerConfig,
    open_client,
    open_group_member,
    open_group_subscriber,
)
from trio_brod.groups._coordinator import GroupCoordinator
from trio_brod.groups.offsets import fetch_committed
from trio_brod.protocol.records import Record
from trio_brod.testing import AsyncKafkaCluster, KafkaCluster
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EARLIEST = ConsumerConfig(begin_offset="earliest")


async def produce(bootstrap: list[str], topic: str, partitions: int, count: int) -> None:
    async with open_client(bootstrap) as client:
        await client.start_producer(topic)
        for i in range(count):
            await client.produce_sync(topic, b"%d" % i, partition=i % partitions)


async def committed(bootstrap: list[str], group: str, topic: str, partitions: int) -> dict:
    async with open_client(bootstrap) as client:
        coordinator = GroupCoordinator(client.pool, client.metadata, group)
        found = await fetch_committed(coordinator, group, [(topic, p) for p in range(partitions)])
        return {p: offset for (_, p), offset in found.items()}


def handled_by_process(path: Path) -> list[tuple[int, int, int]]:
    """The (generation, partition, offset) lines the member process printed."""
    lines = path.read_text().splitlines()
    return [(int(g), int(p), int(o)) for g, p, o in (line.split() for line in lines if line)]


async def test_a_killed_member_s_partitions_are_taken_over_from_its_last_commit(
    kafka: KafkaCluster, make_topic: MakeTopic, tmp_path: Path
) -> None:
    partitions, per_partition = 4, 100
    topic = make_topic(partitions=partitions)
    group = f"gk-{topic}"
    bootstrap = kafka.bootstrap_servers
    await produce(bootstrap, topic, partitions, partitions * per_partition)
    out = tmp_path / "member.out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests.group_member_process"]
    err = tmp_path / "member.err"
    with out.open("w") as sink, err.open("w") as errors:
        process = await trio.lowlevel.open_process(
            [*command, ",".join(bootstrap), group, topic, "0.05"],
            stdout=sink,
            stderr=errors,
            env=env,
            cwd=ROOT,
        )
    try:
        # The process alone first, until it is well into every partition.
        with trio.fail_after(60):
            while len(handled_by_process(out)) < 40:
                assert process.poll() is None, err.read_text()
                await trio.sleep(0.1)

        handled: list[tuple[int, int, int]] = []  # ours: (generation, partition, offset)
        done = trio.Event()
        everything = {(p, o) for p in range(partitions) for o in range(per_partition)}

        async def handle(assigned: AssignedPartition, message: Record) -> None:
            handled.append((assigned.generation_id, assigned.partition, message.offset))
            theirs = {(p, o) for _, p, o in handled_by_process(out)}
            if everything <= theirs | {(p, o) for _, p, o in handled}:
                done.set()

        async with (
            open_client(bootstrap) as client,
            open_group_subscriber(
                client, group, [topic], handle, config=CONFIG, consumer_config=EARLIEST
            ) as ours,
        ):
            # Both members share the group: wait for the process to handle messages of
            # the new generation, then kill it in the middle of its partitions.
            with trio.fail_after(60):
                while not (  # noqa: ASYNC110 (the member's state)
                    ours.assignments() and len(ours.assignments()) < partitions
                ):
                    await trio.sleep(0.1)
            shared_generation = ours.health().generation_id
            with trio.fail_after(60):
                while shared_generation not in {g for g, _, _ in handled_by_process(out)}:  # noqa: ASYNC110
                    await trio.sleep(0.1)
            await trio.sleep(1.0)
            process.send_signal(signal.SIGKILL)
            await process.wait()
            theirs = handled_by_process(out)
            their_partitions = {p for g, p, _ in theirs if g == shared_generation}
            assert their_partitions
            assert not their_partitions & {a.partition for a in ours.assignments()}
            # Its last commit: nothing can change it now.
            last_commit = await committed(bootstrap, group, topic, partitions)
            assert all(last_commit.get(p, -1) < per_partition for p in their_partitions)

            with trio.fail_after(60):
                await done.wait()
            health = ours.health()
            assert health.assignment == {(topic, p) for p in range(partitions)}
            assert health.generation_id > shared_generation
    finally:
        if process.poll() is None:
            process.kill()
            await process.wait()
    # Every message handled by one member or the other: at least once, no gap.
    seen = {(p, o) for _, p, o in theirs} | {(p, o) for _, p, o in handled}
    assert seen == everything
    # The taken-over partitions were resumed exactly at the dead member's last commit.
    for p in their_partitions:
        after = [o for g, q, o in handled if q == p and g > shared_generation]
        start = last_commit.get(p)
        assert min(after) == (start if start is not None and start >= 0 else 0)
        assert sorted(set(after)) == list(range(min(after), per_partition))


@pytest.mark.cluster
@pytest.mark.parametrize("protocol", ["classic", "consumer"])
async def test_the_member_follows_the_coordinator_when_its_broker_stops(
    kafka_cluster3: KafkaCluster, make_topic: MakeTopic, protocol: str
) -> None:
    if protocol == "consumer":
        skip_without_kip848(kafka_cluster3)
    cluster = AsyncKafkaCluster(kafka_cluster3)
    partitions, per_partition = 3, 60
    topic = make_topic(partitions=partitions, replication_factor=3, cluster=kafka_cluster3)
    group = f"gc-{topic}"
    bootstrap = cluster.bootstrap_servers
    await produce(bootstrap, topic, partitions, partitions * per_partition)
    handled: set[tuple[int, int]] = set()
    half = trio.Event()
    done = trio.Event()

    async def handle(assigned: AssignedPartition, message: Record) -> None:
        await trio.sleep(0.05)
        handled.add((assigned.partition, message.offset))
        if len(handled) >= partitions * per_partition // 2:
            half.set()
        if len(handled) == partitions * per_partition:
            done.set()

    async with (
        open_client(bootstrap) as client,
        open_group_subscriber(
            client,
            group,
            [topic],
            handle,
            config=CONFIG if protocol == "classic" else CONSUMER_CONFIG,
            consumer_config=EARLIEST,
        ) as g,
    ):
        with trio.fail_after(60):
            await half.wait()
        await g.commit()
        before = await committed(bootstrap, group, topic, partitions)
        assert sum(before.values()) >= partitions * per_partition // 2
        old = await GroupCoordinator(client.pool, client.metadata, group).find()
        await cluster.stop_broker(old.node_id)
        try:
            with trio.fail_after(90):
                await done.wait()
                while g.health().state != "stable":  # noqa: ASYNC110 (the member's state)
                    await trio.sleep(0.1)
            await g.commit()
            new = await GroupCoordinator(client.pool, client.metadata, group).find()
            assert new.node_id != old.node_id
            after = await committed(bootstrap, group, topic, partitions)
        finally:
            await cluster.start_broker(old.node_id)
    # Nothing committed before the move was lost, and everything was committed after it.
    assert all(after[p] >= before[p] for p in before)
    assert after == dict.fromkeys(range(partitions), per_partition)
    assert handled == {(p, o) for p in range(partitions) for o in range(per_partition)}


async def test_a_static_member_restarted_with_a_new_client_gets_its_partitions_back(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    topic = make_topic(partitions=4)
    group = f"gs-{topic}"
    bootstrap = kafka.bootstrap_servers
    first = replace(CONFIG, group_instance_id="static-a")
    other = replace(CONFIG, group_instance_id="static-b")
    revoked_b: list[int] = []

    async def on_revoked_b(parts: Sequence[AssignedPartition]) -> None:
        revoked_b.extend(a.partition for a in parts)

    async with (
        open_client(bootstrap) as client_b,
        open_group_member(client_b, group, [topic], config=other, on_revoked=on_revoked_b) as b,
    ):
        async with (
            open_client(bootstrap) as client_a,
            open_group_member(client_a, group, [topic], config=first) as a,
        ):
            with trio.fail_after(60):
                while not (  # noqa: ASYNC110 (two members' states)
                    a.generation.generation_id == b.generation.generation_id
                    and len(a.assignments()) + len(b.assignments()) == 4
                    and a.assignments()
                    and b.assignments()
                ):
                    await trio.sleep(0.1)
            generation = a.generation.generation_id
            mine = {p.partition for p in a.assignments()}
            theirs = {p.partition for p in b.assignments()}
            revoked_b.clear()
        # Closed without LeaveGroup (static); back within session_timeout, new client.
        async with (
            open_client(bootstrap) as client_a2,
            open_group_member(client_a2, group, [topic], config=first) as a2,
        ):
            with trio.fail_after(30):
                await a2.wait_stable()
            assert a2.generation.generation_id == generation
            assert {p.partition for p in a2.assignments()} == mine
            await trio.sleep(2.0)  # a few heartbeats: had the group rebalanced, b would know
            assert b.generation.generation_id == generation
            assert {p.partition for p in b.assignments()} == theirs
            assert revoked_b == []
