"""The group member and the group subscriber against a real broker (issue 12's guarantees).

Short timeouts keep the tests short: session_timeout 6 s (the broker's minimum), heartbeats
every second, commits every half second; the harness sets group.initial.rebalance.delay.ms
to 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest
import trio

from trio_brod import (
    AssignedPartition,
    GroupConfig,
    open_client,
    open_group_member,
    open_group_subscriber,
)
from trio_brod.admin import NewTopic, create_partitions, create_topics, delete_topics
from trio_brod.groups._coordinator import GroupCoordinator
from trio_brod.groups._protocol import MemberAssignment, MemberSubscription
from trio_brod.groups.offsets import commit_offsets, fetch_committed
from trio_brod.protocol.errors import IllegalGenerationError
from trio_brod.protocol.records import Record
from trio_brod.testing import KafkaCluster
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.integration


class SimpleRange:
    """A range assignor for these tests (sorted member ids, contiguous ranges)."""

    name = "range"
    rebalance_protocols = ("eager",)

    def subscription_user_data(self, topics: object, owned: object) -> bytes | None:
        return None

    def assign(
        self,
        partitions_per_topic: Mapping[str, int],
        subscriptions: Mapping[str, MemberSubscription],
    ) -> dict[str, MemberAssignment]:
        result: dict[str, list[tuple[str, int]]] = {m: [] for m in subscriptions}
        for topic, count in sorted(partitions_per_topic.items()):
            members = sorted(m for m, s in subscriptions.items() if topic in s.topics)
            for i, partition in enumerate(range(count)):
                result[members[i * len(members) // count]].append((topic, partition))
        return {m: MemberAssignment(tuple(tps)) for m, tps in result.items()}


def fast(**options: object) -> GroupConfig:
    defaults: dict[str, object] = {
        "partition_assignment_strategy": SimpleRange(),
        "session_timeout": 6.0,
        "heartbeat_rate": 1.0,
        "rebalance_timeout": 10.0,
        "offset_commit_interval": 0.5,
    }
    defaults.update(options)
    return GroupConfig(**defaults)  # type: ignore[arg-type]


async def produce(kafka: KafkaCluster, topic: str, partitions: int, count: int) -> None:
    async with open_client(kafka.bootstrap_servers) as client:
        await client.start_producer(topic)
        for i in range(count):
            await client.produce_sync(topic, b"%d" % i, partition=i % partitions)


async def committed(kafka: KafkaCluster, group: str, topic: str, partitions: int) -> dict:
    async with open_client(kafka.bootstrap_servers) as client:
        coordinator = GroupCoordinator(client.pool, client.metadata, group)
        return await fetch_committed(coordinator, group, [(topic, p) for p in range(partitions)])


@pytest.mark.compat
async def test_one_member_consumes_and_commits_every_partition(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    topic = make_topic(partitions=4)
    group = f"g1-{topic}"
    await produce(kafka, topic, 4, 40)
    seen: list[tuple[int, int]] = []
    done = trio.Event()

    async def handle(assigned: AssignedPartition, message: Record) -> None:
        seen.append((assigned.partition, message.offset))
        if len(seen) == 40:
            done.set()

    async with (
        open_client(kafka.bootstrap_servers) as client,
        open_group_subscriber(client, group, [topic], handle, config=fast()) as g,
    ):
        with trio.fail_after(60):
            await done.wait()
        await g.commit()
        health = g.health()
        assert health.state == "stable"
        assert health.assignment == {(topic, p) for p in range(4)}
        assert all(p.lag == 0 for p in health.partitions.values())
    assert sorted(seen) == sorted((i % 4, i // 4) for i in range(40))
    assert await committed(kafka, group, topic, 4) == {(topic, p): 10 for p in range(4)}


@pytest.mark.compat
@pytest.mark.parametrize("assignor", ["test-range", "range", "roundrobin", "cooperative-sticky"])
async def test_two_members_split_the_partitions(
    kafka: KafkaCluster, make_topic: MakeTopic, assignor: str
) -> None:
    strategy: object = SimpleRange() if assignor == "test-range" else assignor
    topic = make_topic(partitions=12)
    group = f"g2-{topic}"
    owners: list[tuple[int, str, int]] = []  # (generation, member, partition)

    async def on_assigned(parts: object) -> None:
        for a in parts:  # type: ignore[attr-defined]
            owners.append((a.generation_id, a.member_id, a.partition))

    async with (
        open_client(kafka.bootstrap_servers) as c1,
        open_client(kafka.bootstrap_servers) as c2,
        open_group_member(
            c1,
            group,
            [topic],
            config=fast(partition_assignment_strategy=strategy),
            on_assigned=on_assigned,
        ) as m1,
    ):
        with trio.fail_after(60):
            await m1.wait_stable()
        assert {a.partition for a in m1.assignments()} == set(range(12))
        async with open_group_member(
            c2,
            group,
            [topic],
            config=fast(partition_assignment_strategy=strategy),
            on_assigned=on_assigned,
        ) as m2:
            with trio.fail_after(60):
                while not (  # noqa: ASYNC110 (two members' states)
                    m1.generation.generation_id == m2.generation.generation_id
                    and len(m1.assignments()) + len(m2.assignments()) == 12
                    and m1.assignments()
                    and m2.assignments()
                ):
                    await trio.sleep(0.1)
            one = {a.partition for a in m1.assignments()}
            two = {a.partition for a in m2.assignments()}
            assert not one & two
            assert one | two == set(range(12))
    by_generation: dict[int, list[int]] = {}
    for generation, _member, partition in owners:
        by_generation.setdefault(generation, []).append(partition)
    for partitions in by_generation.values():
        assert len(partitions) == len(set(partitions))  # no partition owned twice


async def test_a_handler_exception_surfaces_after_leaving(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    topic = make_topic(partitions=2)
    group = f"g3-{topic}"
    await produce(kafka, topic, 2, 4)

    other_done = trio.Event()

    async def handle(assigned: AssignedPartition, message: Record) -> None:
        if assigned.partition == 1 and message.offset == 1:
            other_done.set()  # partition 1 has handled both its messages
        if assigned.partition == 0 and message.offset == 1:
            await other_done.wait()
            raise KeyError("boom")

    async with open_client(kafka.bootstrap_servers) as client:
        with trio.fail_after(60), pytest.raises(KeyError, match="boom"):
            async with open_group_subscriber(client, group, [topic], handle, config=fast()) as g:
                await trio.sleep_forever()
        assert g.health().state == "left"
    # It committed what was handled (partition 0's offset 0, both of partition 1's), not
    # the failed message.
    assert await committed(kafka, group, topic, 2) == {(topic, 0): 1, (topic, 1): 2}


async def test_a_long_handler_does_not_get_the_member_evicted(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    topic = make_topic(partitions=1)
    group = f"g4-{topic}"
    await produce(kafka, topic, 1, 1)
    done = trio.Event()

    async def handle(assigned: AssignedPartition, message: Record) -> None:
        await trio.sleep(9)  # longer than session_timeout
        done.set()

    async with (
        open_client(kafka.bootstrap_servers) as client,
        open_group_subscriber(client, group, [topic], handle, config=fast()) as g,
    ):
        await g.wait_stable()
        generation = g.health().generation_id
        with trio.fail_after(30):
            await done.wait()
        await g.commit()
        assert g.health().generation_id == generation
        assert g.health().state == "stable"
    assert await committed(kafka, group, topic, 1) == {(topic, 0): 1}


@pytest.mark.compat
async def test_commits_from_an_old_generation_are_refused(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    topic = make_topic(partitions=2)
    group = f"g5-{topic}"
    async with (
        open_client(kafka.bootstrap_servers) as client,
        open_group_member(client, group, [topic], config=fast()) as member,
    ):
        await member.wait_stable()
        generation = member.generation
        coordinator = GroupCoordinator(client.pool, client.metadata, group)
        await commit_offsets(
            coordinator,
            group,
            {(topic, 0): 1},
            generation_id=generation.generation_id,
            member_id=generation.member_id,
        )
        with pytest.raises(IllegalGenerationError):
            await commit_offsets(
                coordinator,
                group,
                {(topic, 0): 2},
                generation_id=generation.generation_id - 1,
                member_id=generation.member_id,
            )


@pytest.mark.compat
async def test_a_static_member_restarted_keeps_its_generation(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    topic = make_topic(partitions=3)
    group = f"g6-{topic}"
    config = fast(group_instance_id="static-1")
    async with open_client(kafka.bootstrap_servers) as client:
        async with open_group_member(client, group, [topic], config=config) as member:
            await member.wait_stable()
            first = member.generation.generation_id
        async with open_group_member(client, group, [topic], config=config) as member:
            with trio.fail_after(30):
                await member.wait_stable()
            assert member.generation.generation_id == first
            assert {a.partition for a in member.assignments()} == {0, 1, 2}


@pytest.mark.compat
async def test_cooperative_rebalance_commits_kept_and_revoked_partitions(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """After a cooperative rebalance, the partitions a member keeps are committed with the
    new generation, and the ones it gives up are committed before they move: the new owner
    starts after what the old one handled. (Commits only at revocation and on request here:
    the periodic commit is too slow to hide a missing one.)"""
    topic = make_topic(partitions=4)
    group = f"coop-commit-{topic}"
    await produce(kafka, topic, 4, 40)
    handled: dict[str, list[tuple[int, int]]] = {"a": [], "b": []}
    config = fast(partition_assignment_strategy="cooperative-sticky", offset_commit_interval=60.0)

    def handler(name: str):  # type: ignore[no-untyped-def]
        async def handle(assigned: AssignedPartition, message: Record) -> None:
            handled[name].append((assigned.partition, message.offset))

        return handle

    async def until(check) -> None:  # type: ignore[no-untyped-def]
        with trio.fail_after(60):
            while not check():  # noqa: ASYNC110 (two members' states)
                await trio.sleep(0.05)

    async with (
        open_client(kafka.bootstrap_servers) as ca,
        open_client(kafka.bootstrap_servers) as cb,
        open_group_subscriber(ca, group, [topic], handler("a"), config=config) as a,
    ):
        await until(lambda: len(handled["a"]) == 40)
        async with open_group_subscriber(cb, group, [topic], handler("b"), config=config) as b:
            await until(
                lambda: (
                    len(a.assignments()) == len(b.assignments()) == 2
                    and a.health().state == b.health().state == "stable"
                )
            )
            await produce(kafka, topic, 4, 40)
            await until(lambda: len(handled["a"]) + len(handled["b"]) >= 80)
            await a.commit()  # the kept partitions, in the new generation
            await b.commit()
    everything = handled["a"] + handled["b"]
    assert len(everything) == len(set(everything)) == 80  # nothing handled twice
    assert all(offset >= 10 for _partition, offset in handled["b"])
    offsets = await committed(kafka, group, topic, 4)
    assert offsets == {(topic, p): 20 for p in range(4)}


async def test_a_pattern_picks_up_new_topics_and_added_partitions(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    # A compiled regular expression subscribes to every matching topic: one created later
    # joins the subscription at the next metadata refresh, and a topic that gains partitions
    # makes the member join again with them, as the Java client does.
    first = make_topic(partitions=2)  # does not match: the pattern wants a suffix
    pattern = re.compile("^" + re.escape(first) + r"-(a|b)$")
    renamed = f"{first}-a"
    second = f"{first}-b"
    group = f"g-pattern-{first}"
    async with open_client(kafka.bootstrap_servers) as admin_client:
        await create_topics(admin_client, [NewTopic(renamed, 2)])
    async with (
        open_client(kafka.bootstrap_servers) as client,
        open_group_subscriber(
            client, group, pattern, _ignore, config=fast(), metadata_refresh=0.5
        ) as g,
    ):
        await g.wait_stable()
        with trio.fail_after(30):
            while {a.topic_partition for a in g.assignments()} != {(renamed, 0), (renamed, 1)}:  # noqa: ASYNC110
                await trio.sleep(0.1)
        async with open_client(kafka.bootstrap_servers) as admin_client:
            await create_topics(admin_client, [NewTopic(second, 1)])
            with trio.fail_after(30):
                while (second, 0) not in {a.topic_partition for a in g.assignments()}:  # noqa: ASYNC110
                    await trio.sleep(0.1)
            await create_partitions(admin_client, {renamed: 3})
            with trio.fail_after(30):
                while (renamed, 2) not in {a.topic_partition for a in g.assignments()}:  # noqa: ASYNC110
                    await trio.sleep(0.1)
        assert {a.topic_partition for a in g.assignments()} == {
            (renamed, 0),
            (renamed, 1),
            (renamed, 2),
            (second, 0),
        }
        assert first not in {a.topic for a in g.assignments()}  # does not match the pattern
    async with open_client(kafka.bootstrap_servers) as admin_client:
        await delete_topics(admin_client, [renamed, second])


async def _ignore(assigned: AssignedPartition, message: Record) -> None:
    await trio.lowlevel.checkpoint()
