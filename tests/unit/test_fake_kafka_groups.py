"""trio-brod's group subscriber against the fake Kafka's group coordinator, under MockClock.

Every test runs on ``autojump_clock`` (MockClock(autojump_threshold=0)): session timeouts,
rebalance timeouts and heartbeats take no wall time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import trio
import trio.testing

import trio_brod.admin
from trio_brod import (
    AssignedPartition,
    Client,
    GroupConfig,
    GroupSubscriber,
    open_client,
    open_group_member,
    open_group_subscriber,
)
from trio_brod.protocol import (
    FindCoordinatorRequest,
    HeartbeatRequest,
    JoinGroupRequest,
    MetadataRequest,
)
from trio_brod.protocol.errors import (
    CoordinatorNotAvailableError,
    GroupIdNotFoundError,
    NonEmptyGroupError,
)
from trio_brod.testing import fake_kafka
from trio_brod.testing.fake import Drop, FakeKafka, Hang, Intercepted, Pass

TOPIC = "orders"
PARTITIONS = 4


async def wait_until(check: Callable[[], bool]) -> None:
    """Poll *check* on Trio's clock (no wall time under MockClock); a deadline fails."""
    with trio.fail_after(600):
        while not check():  # noqa: ASYNC110 - polls state that has no event to wait on
            await trio.sleep(0.05)


async def produce(fake: FakeKafka, count: int) -> None:
    async with open_client(fake.bootstrap_servers, client_id="producer") as client:
        await client.start_producer(TOPIC)
        for i in range(count):
            await client.produce_sync(TOPIC, b"%d" % i, partition=i % PARTITIONS)


async def ignore(assigned: AssignedPartition, message: object) -> None:
    """A handler that only acknowledges."""


def owned(sub: object) -> set[int]:
    return {a.partition for a in sub.assignments()}  # type: ignore[attr-defined]


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
async def test_two_members_share_then_one_takes_all(
    autojump_clock: trio.testing.MockClock, strategy: str
) -> None:
    seen: list[tuple[int, int]] = []

    async def handle(assigned: AssignedPartition, message: object) -> None:
        seen.append((assigned.partition, message.offset))  # type: ignore[attr-defined]

    config = GroupConfig(partition_assignment_strategy=strategy, offset_commit_interval=0.5)
    async with fake_kafka() as fake:
        fake.create_topic(TOPIC, partitions=PARTITIONS)
        await produce(fake, 40)
        async with (
            open_client(fake.bootstrap_servers, client_id="a") as ca,
            open_group_subscriber(ca, "g", [TOPIC], handle, config=config) as a,
        ):
            await wait_until(lambda: owned(a) == set(range(PARTITIONS)))
            async with (
                open_client(fake.bootstrap_servers, client_id="b") as cb,
                open_group_subscriber(cb, "g", [TOPIC], handle, config=config) as b,
            ):
                await wait_until(
                    lambda: (
                        owned(a) | owned(b) == set(range(PARTITIONS))
                        and not owned(a) & owned(b)
                        and len(owned(a)) == len(owned(b)) == 2
                    )
                )
                group = fake.group("g")
                assert group is not None
                assert group.state == "Stable"
                assert len(group.members) == 2
                assert a.health().generation_id == b.health().generation_id == group.generation
            # b left: a gets everything back.
            await wait_until(lambda: owned(a) == set(range(PARTITIONS)))
            await wait_until(lambda: len(seen) >= 40)
    assert {o for _, o in seen} == set(range(10))


async def test_session_timeout_evicts_a_silent_member(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = GroupConfig(session_timeout=10, heartbeat_rate=1, rebalance_timeout=20)

    def silence_b(request: Intercepted) -> Hang | None:
        return Hang() if request.client_id == "b" else None

    async with fake_kafka() as fake:
        fake.create_topic(TOPIC, partitions=PARTITIONS)
        async with (
            open_client(fake.bootstrap_servers, client_id="a") as ca,
            open_group_subscriber(ca, "g", [TOPIC], ignore, config=config) as a,
            open_client(fake.bootstrap_servers, client_id="b") as cb,
            open_group_subscriber(cb, "g", [TOPIC], ignore, config=config) as b,
        ):
            await wait_until(lambda: len(owned(a)) == len(owned(b)) == 2)
            start = trio.current_time()
            fake.control(HeartbeatRequest, silence_b, times=None)
            await wait_until(lambda: owned(a) == set(range(PARTITIONS)))
            group = fake.group("g")
            assert len(group.members) == 1
            # The session timeout (10 s from b's last heartbeat, at most 1 s before start),
            # on Trio's clock.
            assert trio.current_time() - start >= 9


async def test_expire_member_rebalances(autojump_clock: trio.testing.MockClock) -> None:
    async with fake_kafka() as fake:
        fake.create_topic(TOPIC, partitions=PARTITIONS)
        async with (
            open_client(fake.bootstrap_servers, client_id="a") as ca,
            open_group_subscriber(ca, "g", [TOPIC], ignore) as a,
        ):
            await wait_until(lambda: owned(a) == set(range(PARTITIONS)))
            first = a.health()
            assert fake.expire_member("g", first.member_id)
            # The member learns of it (UNKNOWN_MEMBER_ID), joins again with a new id.
            await wait_until(
                lambda: (
                    a.health().member_id != first.member_id and owned(a) == set(range(PARTITIONS))
                )
            )
            assert a.health().generation_id > first.generation_id
            assert not fake.expire_member("g", "nobody")


async def test_commits_survive_a_member_restart(autojump_clock: trio.testing.MockClock) -> None:
    got: list[int] = []

    async def handle(assigned: AssignedPartition, message: object) -> None:
        got.append(message.offset)  # type: ignore[attr-defined]

    config = GroupConfig(offset_commit_interval=0.5)
    async with fake_kafka() as fake:
        fake.create_topic(TOPIC, partitions=1)
        async with open_client(fake.bootstrap_servers, client_id="p") as producer:
            await producer.start_producer(TOPIC)
            for i in range(5):
                await producer.produce_sync(TOPIC, b"%d" % i, partition=0)
            async with open_client(fake.bootstrap_servers) as c:
                async with open_group_subscriber(c, "g", [TOPIC], handle, config=config) as s:
                    await wait_until(lambda: len(got) == 5)
                    await s.commit()
                assert fake.group("g").offsets[(TOPIC, 0)].offset == 5
                for i in range(5, 8):
                    await producer.produce_sync(TOPIC, b"%d" % i, partition=0)
                async with open_group_subscriber(c, "g", [TOPIC], handle, config=config):
                    await wait_until(lambda: len(got) == 8)
    assert got == list(range(8))  # nothing consumed twice: the restart began at the commit


@pytest.mark.parametrize("restarted", ["leader", "follower"])
async def test_static_member_restart_keeps_generation(
    restarted: str, autojump_clock: trio.testing.MockClock
) -> None:
    # Which member leads is fixed by who joins first: b restarts, as the leader or not.
    def config(instance: str) -> GroupConfig:
        return GroupConfig(group_instance_id=instance, session_timeout=30)

    async with fake_kafka() as fake:
        fake.create_topic(TOPIC, partitions=PARTITIONS)
        async with (
            open_client(fake.bootstrap_servers, client_id="a") as ca,
            open_client(fake.bootstrap_servers, client_id="b") as cb,
            trio.open_nursery() as nursery,
        ):
            subscribers: dict[str, GroupSubscriber] = {}
            stop_b = trio.Event()

            async def run(name: str, client: Client, stop: trio.Event) -> None:
                config_ = config(name)
                async with open_group_subscriber(client, "g", [TOPIC], ignore, config=config_) as s:
                    subscribers[name] = s
                    await stop.wait()

            order = ["b", "a"] if restarted == "leader" else ["a", "b"]
            for name in order:
                stop = stop_b if name == "b" else trio.Event()
                nursery.start_soon(run, name, cb if name == "b" else ca, stop)
                await wait_until(lambda n=name: n in subscribers and bool(owned(subscribers[n])))
            a, b = subscribers["a"], subscribers["b"]
            await wait_until(lambda: len(owned(a)) == len(owned(b)) == 2)
            group = fake.group("g")
            assert group is not None
            assert (group.leader == b.health().member_id) == (restarted == "leader")
            generation = a.health().generation_id
            b_owned = owned(b)
            stop_b.set()
            # A static member leaves without LeaveGroup: the group waits for it.
            await wait_until(lambda: b.health().state != "stable")
            assert set(group.static) == {"a", "b"}
            async with open_group_subscriber(cb, "g", [TOPIC], ignore, config=config("b")) as b2:
                await wait_until(lambda: owned(b2) == b_owned)
                assert b2.health().generation_id == generation
            assert a.health().generation_id == generation
            assert owned(a) | b_owned == set(range(PARTITIONS))
            nursery.cancel_scope.cancel()


async def test_coordinator_moves_and_comes_back(autojump_clock: trio.testing.MockClock) -> None:
    async with fake_kafka(brokers=3) as fake:
        fake.create_topic(TOPIC, partitions=PARTITIONS, replication_factor=3)
        async with (
            open_client(fake.bootstrap_servers, client_id="a") as ca,
            open_group_subscriber(ca, "g", [TOPIC], ignore) as a,
        ):
            await wait_until(lambda: owned(a) == set(range(PARTITIONS)))
            generation = a.health().generation_id
            old = fake.coordinator("g")
            new = fake.move_coordinator("g")
            assert new != old
            fake.fail(FindCoordinatorRequest, CoordinatorNotAvailableError, times=2)
            await trio.sleep(30)  # heartbeats hit NOT_COORDINATOR, then find the new one
            await fake.stop_broker(new)
            await trio.sleep(30)
            assert fake.coordinator("g") != new
            assert a.health().state == "stable"
            assert a.health().generation_id == generation
            assert owned(a) == set(range(PARTITIONS))


async def test_consumer_protocol_members_share_and_take_over(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tuple[int, int]] = []

    async def handle(assigned: AssignedPartition, message: object) -> None:
        seen.append((assigned.partition, message.offset))  # type: ignore[attr-defined]

    config = GroupConfig(group_protocol="consumer", offset_commit_interval=0.5)
    async with fake_kafka() as fake:
        fake.create_topic(TOPIC, partitions=PARTITIONS)
        await produce(fake, 40)
        async with (
            open_client(fake.bootstrap_servers, client_id="a") as ca,
            open_group_subscriber(ca, "g848", [TOPIC], handle, config=config) as a,
        ):
            await wait_until(lambda: owned(a) == set(range(PARTITIONS)))
            async with (
                open_client(fake.bootstrap_servers, client_id="b") as cb,
                open_group_subscriber(cb, "g848", [TOPIC], handle, config=config) as b,
            ):
                await wait_until(
                    lambda: len(owned(a)) == len(owned(b)) == 2 and not owned(a) & owned(b)
                )
                group = fake.groups.consumer.groups["g848"]
                assert group.state == "Stable"
                epoch = group.epoch
                assert fake.expire_member("g848", b.health().member_id)
                # b is fenced, rejoins; the group epoch moves on.
                await wait_until(lambda: len(owned(a)) == len(owned(b)) == 2)
                assert group.epoch > epoch
            # b left (epoch -1): a gets everything back.
            await wait_until(lambda: owned(a) == set(range(PARTITIONS)))
            await wait_until(lambda: len(set(seen)) >= 40)
        offsets = fake.group("g848")
        assert offsets is not None
        assert {k: c.offset for k, c in offsets.offsets.items()} == {
            (TOPIC, p): 10 for p in range(PARTITIONS)
        }


async def test_two_members_in_one_client(autojump_clock: trio.testing.MockClock) -> None:
    # Each member talks to the coordinator over a connection of its own: on a shared one,
    # a's JoinGroup, held until b rejoins, would hold up b's heartbeat queued behind it
    # (a broker answers a connection's requests in order), again and again.
    config = GroupConfig(partition_assignment_strategy="range", rebalance_timeout=30)
    async with fake_kafka() as fake:
        fake.create_topic(TOPIC, partitions=PARTITIONS)
        async with (
            open_client(fake.bootstrap_servers) as client,
            open_group_subscriber(client, "g", [TOPIC], ignore, config=config) as a,
        ):
            await wait_until(lambda: owned(a) == set(range(PARTITIONS)))
            async with open_group_subscriber(client, "g", [TOPIC], ignore, config=config) as b:
                with trio.fail_after(25):  # within the rebalance timeout, on Trio's clock
                    await wait_until(lambda: len(owned(a)) == len(owned(b)) == 2)


async def test_a_join_fetches_metadata_only_when_it_needs_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A member subscribed to a list of topics fetches their metadata at its first join (the
    baseline for noticing new partitions), and as leader only when what it read is older
    than ``metadata_refresh``: not again for the rejoin that MEMBER_ID_REQUIRED asks for,
    nor for each rejoin of a rebalance, nor to lead one."""
    config = GroupConfig(partition_assignment_strategy="range", heartbeat_rate=0.05)
    async with fake_kafka() as fake:
        fake.create_topic(TOPIC, partitions=PARTITIONS)
        metadata = fake.control(MetadataRequest, Pass(), times=None)
        joins = fake.control(JoinGroupRequest, Pass(), times=None)
        async with (
            open_client(fake.bootstrap_servers, client_id="a") as ca,
            open_group_subscriber(ca, "g", [TOPIC], ignore, config=config) as a,
        ):
            await wait_until(lambda: owned(a) == set(range(PARTITIONS)))
            # JoinGroup twice (MEMBER_ID_REQUIRED, then with the id); Metadata once, at the
            # first join, which is fresh enough to lead the same rebalance.
            assert (len(joins.seen), len(metadata.seen)) == (2, 1)
            async with (
                open_client(fake.bootstrap_servers, client_id="b") as cb,
                open_group_subscriber(cb, "g", [TOPIC], ignore, config=config) as b,
            ):
                await wait_until(lambda: len(owned(a)) == len(owned(b)) == PARTITIONS // 2)
                # b: two joins and its first-join Metadata; a: one rejoin, and it leads
                # with the counts of its first join (a moment old).
                assert (len(joins.seen), len(metadata.seen)) == (5, 2)
        assert {r.client_id for r in metadata.seen} == {"a", "b"}


async def test_a_leader_with_counts_older_than_metadata_refresh_reads_them_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Partitions added while the group is stable are assigned at the latest one topic
    check later; a leader whose counts are older than ``metadata_refresh`` (here: its topic
    checks failed meanwhile) reads them again to assign."""
    config = GroupConfig(partition_assignment_strategy="range", heartbeat_rate=0.05)
    seen: list[Intercepted] = []
    failing = False

    def watch(request: Intercepted) -> Drop | Pass:
        seen.append(request)
        return Drop() if failing else Pass()

    async with fake_kafka() as fake:
        fake.create_topic(TOPIC, partitions=2)
        fake.control(MetadataRequest, watch, times=None)
        async with (
            open_client(fake.bootstrap_servers, client_id="a") as ca,
            open_group_subscriber(ca, "g", [TOPIC], ignore, config=config, metadata_refresh=5) as a,
        ):
            await wait_until(lambda: owned(a) == {0, 1})
            fake.model.create_partitions(TOPIC, 4)
            started = trio.current_time()
            await wait_until(lambda: owned(a) == {0, 1, 2, 3})
            assert trio.current_time() - started <= 5 + 1  # the next topic check rejoined
            failing = True  # the topic checks' reads fail: the counts grow old
            checked = len(seen)
            await trio.sleep(12)
            assert len(seen) > checked
            failing = False
            read = len(seen)
            async with (
                open_client(fake.bootstrap_servers, client_id="b") as cb,
                open_group_subscriber(cb, "g", [TOPIC], ignore, config=config) as b,
            ):
                await wait_until(lambda: len(owned(a)) == len(owned(b)) == 2)
                # b read at its first join; a read to lead, its counts being 12 s old.
                assert sorted(r.client_id or "" for r in seen[read:]) == ["a", "b"]


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
async def test_delete_groups_as_kafka_deletes_them(
    autojump_clock: trio.testing.MockClock, protocol: str
) -> None:
    """Kafka's DeleteGroups (tests/integration/test_admin.py checks the same on a real
    broker): a group with members is NON_EMPTY_GROUP, an empty one goes with its committed
    offsets, and then it is GROUP_ID_NOT_FOUND."""

    async def handle(assigned: AssignedPartition, message: object) -> None:
        pass

    config = GroupConfig(group_protocol=protocol)
    async with fake_kafka() as fake:
        fake.create_topic(TOPIC, partitions=PARTITIONS)
        async with open_client(fake.bootstrap_servers) as client:
            async with open_group_subscriber(client, "g", [TOPIC], handle, config=config) as a:
                await wait_until(lambda: owned(a) == set(range(PARTITIONS)))
                with pytest.raises(NonEmptyGroupError):
                    await trio_brod.admin.delete_groups(client, ["g"])
            await trio_brod.admin.commit_offsets(client, "g", {(TOPIC, 0): 3})
            assert await trio_brod.admin.fetch_committed_offsets(client, "g")
            await trio_brod.admin.delete_groups(client, ["g"])
            assert await trio_brod.admin.fetch_committed_offsets(client, "g") == {}
            assert "g" not in {g.group_id for g in await trio_brod.admin.list_groups(client)}
            with pytest.raises(GroupIdNotFoundError) as caught:
                await trio_brod.admin.delete_groups(client, ["g"])
            assert caught.value.context == {"group_id": "g"}


async def test_describe_consumer_groups(autojump_clock: trio.testing.MockClock) -> None:
    """ConsumerGroupDescribe, as tests/integration/test_group_consumer_protocol.py checks it
    on a real broker (the fake's assignor is always "uniform")."""
    config = GroupConfig(group_protocol="consumer")
    static = dataclasses.replace(config, group_instance_id="desc-1")
    async with fake_kafka() as fake:
        fake.create_topic(TOPIC, partitions=PARTITIONS)
        async with (
            open_client(fake.bootstrap_servers, client_id="desc-a") as a_client,
            open_client(fake.bootstrap_servers, client_id="desc-b") as b_client,
            open_group_member(a_client, "g", [TOPIC], config=static) as a,
            open_group_member(b_client, "g", [TOPIC], config=config) as b,
        ):
            await wait_until(
                lambda: (
                    len(a.assignments()) == len(b.assignments()) == 2
                    and a.health().state == b.health().state == "stable"
                )
            )
            with pytest.raises(GroupIdNotFoundError):
                await trio_brod.admin.describe_consumer_groups(a_client, ["no-such-group"])
            described = (await trio_brod.admin.describe_consumer_groups(a_client, ["g"]))["g"]
            ours = {
                a.generation.member_id: (a.generation.generation_id, a.assignments()),
                b.generation.member_id: (b.generation.generation_id, b.assignments()),
            }
            group = fake.consumer_group("g")
            assert group is not None
            assert described.group_epoch == described.assignment_epoch == group.epoch
            # A classic group (here one that only has offsets) is not a consumer group.
            await trio_brod.admin.commit_offsets(a_client, "classic", {(TOPIC, 0): 1})
            with pytest.raises(GroupIdNotFoundError):
                await trio_brod.admin.describe_consumer_groups(a_client, ["classic"])
    assert described.state == "Stable"
    assert described.assignor_name == "uniform"
    members = {m.member_id: m for m in described.members}
    assert members.keys() == ours.keys()
    for member_id, (epoch, owned) in ours.items():
        m = members[member_id]
        assert m.member_epoch == epoch
        assert m.assignment == {TOPIC: tuple(sorted(p.partition for p in owned))}
        assert m.target_assignment == m.assignment
        assert m.subscribed_topic_names == (TOPIC,)
    assert {m.client_id for m in described.members} == {"desc-a", "desc-b"}
    assert {m.instance_id for m in described.members} == {"desc-1", None}
