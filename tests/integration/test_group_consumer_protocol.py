"""KIP-848's ``consumer`` group protocol against a real broker (Kafka 4.x, where it is on by
default): issue 13's guarantees for ``GroupConfig(group_protocol="consumer")``.

* one member consumes and commits everything (topic list, and a server-side regex);
* two and three members: one owner per partition at any time, every partition owned;
* partitions that stay with their member are never stopped while others move;
* a fenced member cancels its workers and commits nothing more; it rejoins with epoch 0;
* a commit with a stale member epoch is refused and does not count;
* a static member leaves with epoch -2 and gets its partitions back;
* a broker with the protocol turned off gets a clear error, no hang.

The broker's heartbeat interval (5 s by default) paces the rebalances; the tests wait on
conditions under generous deadlines.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import trio

from tests.integration.test_cli import cli
from tests.kip848 import skip_without_kip848
from trio_brod import (
    AssignedPartition,
    GroupConfig,
    GroupMember,
    open_client,
    open_group_member,
    open_group_subscriber,
)
from trio_brod.admin import describe_consumer_groups
from trio_brod.groups import ConsumerProtocolUnsupportedError, _consumer_member
from trio_brod.groups._coordinator import GroupCoordinator
from trio_brod.groups.offsets import commit_offsets, fetch_committed
from trio_brod.protocol import ConsumerGroupHeartbeatRequest
from trio_brod.protocol.errors import (
    FencedMemberEpochError,
    GroupIdNotFoundError,
    StaleMemberEpochError,
)
from trio_brod.protocol.records import Record
from trio_brod.testing import KafkaCluster
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.integration

CONSUMER = GroupConfig(group_protocol="consumer", offset_commit_interval=0.5)


@pytest.fixture(autouse=True)
def _kip848(request: pytest.FixtureRequest, kafka: KafkaCluster) -> None:
    # The error for a broker without the protocol is checked on every version.
    if request.node.name != "test_a_broker_without_the_consumer_protocol_gets_a_clear_error":
        skip_without_kip848(kafka)


async def wait_until(condition: Callable[[], object], seconds: float = 60) -> None:
    """Poll ``condition`` (members' states, which no event announces) until true."""
    with trio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 (polling members' states)
            await trio.sleep(0.1)


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


async def consume_all(
    kafka: KafkaCluster, group: str, topics: Sequence[str] | re.Pattern[str], expected: int
) -> list[tuple[str, int, int]]:
    seen: list[tuple[str, int, int]] = []
    done = trio.Event()

    async def handle(assigned: AssignedPartition, message: Record) -> None:
        seen.append((assigned.topic, assigned.partition, message.offset))
        if len(seen) == expected:
            done.set()

    async with (
        open_client(kafka.bootstrap_servers) as client,
        open_group_subscriber(client, group, topics, handle, config=CONSUMER) as g,
    ):
        with trio.fail_after(60):
            await done.wait()
        await g.commit()
        health = g.health()
        assert health.state == "stable"
        assert health.generation_id > 0  # the member epoch
    return seen


@pytest.mark.compat
async def test_one_member_consumes_and_commits_every_partition(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    topic = make_topic(partitions=4)
    group = f"c1-{topic}"
    await produce(kafka.bootstrap_servers, topic, 4, 40)
    seen = await consume_all(kafka, group, [topic], 40)
    assert sorted(seen) == sorted((topic, i % 4, i // 4) for i in range(40))
    assert await committed(kafka.bootstrap_servers, group, topic, 4) == dict.fromkeys(range(4), 10)


async def test_a_server_side_regex_subscription(kafka: KafkaCluster, make_topic: MakeTopic) -> None:
    first = make_topic(partitions=2)
    second = make_topic(partitions=1)
    prefix = f"rx{uuid.uuid4().hex[:8]}"
    # Topics named for the regex: created by producing to them (auto-creation).
    names = [f"{prefix}-a", f"{prefix}-b"]
    for name in names:
        await produce(kafka.bootstrap_servers, name, 1, 5)
    await produce(kafka.bootstrap_servers, first, 2, 4)  # not matched
    seen = await consume_all(kafka, f"c-{prefix}", re.compile(rf"{prefix}-.*"), 10)
    assert sorted({t for t, _, _ in seen}) == names
    assert second not in {t for t, _, _ in seen}


async def test_members_split_the_partitions_one_owner_each_and_unmoved_ones_never_stop(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    partitions = 6
    topic = make_topic(partitions=partitions)
    group = f"c3-{topic}"
    owner: dict[int, str] = {}  # partition -> member currently running a worker
    events: list[tuple[str, str, int]] = []  # (member, "start"/"stop", partition)
    violations: list[str] = []

    def tracking(name: str) -> tuple[object, object, object]:
        async def on_assigned(parts: Sequence[AssignedPartition]) -> None:
            for p in parts:
                if p.partition in owner:
                    violations.append(f"{name} got {p.partition} still run by {owner[p.partition]}")
                owner[p.partition] = name
                events.append((name, "start", p.partition))

        async def on_gone(parts: Sequence[AssignedPartition]) -> None:
            for p in parts:
                if owner.get(p.partition) == name:
                    del owner[p.partition]
                events.append((name, "stop", p.partition))

        return on_assigned, on_gone, on_gone

    stops = {name: trio.Event() for name in "abc"}

    async def run_member(name: str, *, task_status: trio.TaskStatus[object]) -> None:
        on_assigned, on_revoked, on_lost = tracking(name)
        async with (
            open_client(kafka.bootstrap_servers) as client,
            open_group_member(
                client,
                group,
                [topic],
                config=CONSUMER,
                on_assigned=on_assigned,  # type: ignore[arg-type]
                on_revoked=on_revoked,  # type: ignore[arg-type]
                on_lost=on_lost,  # type: ignore[arg-type]
            ) as member,
        ):
            task_status.started(member)
            await stops[name].wait()  # then leave the group gracefully

    def owners() -> dict[str, set[int]]:
        found: dict[str, set[int]] = {}
        for p, name in owner.items():
            found.setdefault(name, set()).add(p)
        return found

    async with trio.open_nursery() as nursery:
        for count, name in enumerate("abc", 1):
            before = {n: set(ps) for n, ps in owners().items()}
            mark = len(events)
            await nursery.start(run_member, name)
            await wait_until(
                lambda count=count: (
                    len(owner) == partitions
                    and len(owners()) == count
                    and all(len(ps) == partitions // count for ps in owners().values())
                ),
                90,
            )
            # A partition that stayed with its member was never stopped meanwhile.
            after = owners()
            for n, kept in before.items():
                stopped = {p for m, what, p in events[mark:] if m == n and what == "stop"}
                assert not stopped & kept & after[n]
                assert len(kept - after[n]) > 0  # and some did move to the newcomer
        # A member leaves: the others take its partitions over.
        stops["a"].set()
        await wait_until(lambda: len(owner) == partitions and set(owners()) == {"b", "c"}, 90)
        stops["b"].set()
        stops["c"].set()
    assert violations == []


async def acking_worker(assigned: AssignedPartition) -> None:
    """A worker that 'handles' a message every 50 ms and acks it, until stopped."""
    offset = assigned.begin_offset or 0
    with assigned:
        while not assigned.revoked:
            await trio.sleep(0.05)
            assigned.ack(offset)
            offset += 1


async def test_a_fenced_member_cancels_its_workers_commits_nothing_more_and_rejoins(
    kafka: KafkaCluster, make_topic: MakeTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = make_topic(partitions=2)
    group = f"cf-{topic}"
    commits: list[tuple[int, str]] = []  # (member epoch, what had happened by then)
    phase = ["running"]
    real_commit = _consumer_member.commit_offsets

    async def recording_commit(*args: object, **kwargs: object) -> None:
        commits.append((kwargs["generation_id"], phase[0]))  # type: ignore[arg-type]
        await real_commit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_consumer_member, "commit_offsets", recording_commit)
    lost: list[AssignedPartition] = []
    revoked: list[AssignedPartition] = []

    async def on_lost(parts: Sequence[AssignedPartition]) -> None:
        assert all(p.lost for p in parts)
        lost.extend(parts)
        phase[0] = "lost"

    async def on_revoked(parts: Sequence[AssignedPartition]) -> None:
        revoked.extend(parts)

    async with (
        open_client(kafka.bootstrap_servers) as client,
        open_group_member(
            client, group, [topic], config=CONSUMER, on_lost=on_lost, on_revoked=on_revoked
        ) as member,
        trio.open_nursery() as workers,
    ):

        async def start_workers() -> None:
            async for assigned in member:
                workers.start_soon(acking_worker, assigned)

        workers.start_soon(start_workers)
        await wait_until(lambda: len(member.assignments()) == 2 and commits)
        fenced = member.generation
        first = member.assignments()
        # Remove the member behind its back (a heartbeat with its id and epoch -1, as the
        # broker's session timeout would): its next heartbeat or commit is refused.
        coordinator = GroupCoordinator(client.pool, client.metadata, group)
        request = ConsumerGroupHeartbeatRequest(
            group_id=group, member_id=fenced.member_id, member_epoch=-1
        )
        await coordinator.request(request, max_version=1)
        phase[0] = "removed"
        await wait_until(
            lambda: lost and member.health().state == "stable" and member.assignments()
        )
        phase[0] = "rejoined"
        rejoined = member.generation
        revoked_before_rejoining = list(revoked)
        workers.cancel_scope.cancel()
    assert {p.topic_partition for p in lost} == {p.topic_partition for p in first}
    assert all(p.cancel_scope.cancel_called for p in first)
    assert not revoked_before_rejoining  # lost, not revoked: nothing committed for them
    assert rejoined.member_id == fenced.member_id
    assert rejoined.generation_id > 0
    # Once the loss was known, nothing was committed until the member had rejoined, and
    # never again with the fenced epoch.
    after_loss = [epoch for epoch, when in commits if when == "lost"]
    assert after_loss == []
    assert all(epoch != fenced.generation_id for epoch, when in commits if when == "rejoined")


async def test_a_commit_with_a_stale_or_future_epoch_is_refused(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    topic = make_topic(partitions=1)
    group = f"cs-{topic}"
    async with (
        open_client(kafka.bootstrap_servers) as client,
        open_group_member(client, group, [topic], config=CONSUMER) as member,
    ):
        await wait_until(lambda: member.health().state == "stable")
        g = member.generation
        coordinator = GroupCoordinator(client.pool, client.metadata, group)
        with pytest.raises(StaleMemberEpochError):
            await commit_offsets(
                coordinator,
                group,
                {(topic, 0): 5},
                generation_id=g.generation_id - 1,
                member_id=g.member_id,
                member_epoch=True,
            )
        # Kafka 4.3 answers a future epoch STALE_MEMBER_EPOCH too (4.0: FENCED_MEMBER_EPOCH).
        with pytest.raises((StaleMemberEpochError, FencedMemberEpochError)):
            await commit_offsets(
                coordinator,
                group,
                {(topic, 0): 6},
                generation_id=g.generation_id + 1,
                member_id=g.member_id,
                member_epoch=True,
            )
    assert await committed(kafka.bootstrap_servers, group, topic, 1) == {0: None}


async def test_a_commit_answered_stale_member_epoch_does_not_count_as_done(
    kafka: KafkaCluster, make_topic: MakeTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = make_topic(partitions=1)
    group = f"cd-{topic}"
    real_commit = _consumer_member.commit_offsets
    refuse = [True]

    async def stale_once(*args: object, **kwargs: object) -> None:
        if refuse[0]:
            refuse[0] = False
            raise StaleMemberEpochError("test", group_id=group)
        await real_commit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_consumer_member, "commit_offsets", stale_once)
    async with (
        open_client(kafka.bootstrap_servers) as client,
        open_group_member(client, group, [topic], config=CONSUMER) as member,
    ):
        await wait_until(member.assignments)
        (assigned,) = member.assignments()
        assigned.ack(4)
        with pytest.raises(StaleMemberEpochError):
            await member.commit()
        assert assigned.committed is None  # not done
        assert member.health().state == "stable"  # not fenced by a stale epoch
        await member.commit()
        assert assigned.committed == 5
    assert await committed(kafka.bootstrap_servers, group, topic, 1) == {0: 5}


async def test_a_static_member_leaves_with_epoch_minus_2_and_gets_its_partitions_back(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    topic = make_topic(partitions=4)
    group = f"cst-{topic}"
    static = GroupConfig(group_protocol="consumer", group_instance_id="static-1")

    async def wait_assigned(member: GroupMember, count: int) -> None:
        await wait_until(lambda: len(member.assignments()) == count)

    other_got: set[tuple[str, int]] = set()

    async def record(parts: Sequence[AssignedPartition]) -> None:
        other_got.update(p.topic_partition for p in parts)

    async with (
        open_client(kafka.bootstrap_servers) as other_client,
        open_group_member(
            other_client, group, [topic], config=CONSUMER, on_assigned=record
        ) as other,
    ):
        async with (
            open_client(kafka.bootstrap_servers) as client,
            open_group_member(client, group, [topic], config=static) as member,
        ):
            await wait_assigned(member, 2)
            await wait_assigned(other, 2)
            mine = {a.topic_partition for a in member.assignments()}
            other_got.clear()  # from here on, the other member must gain nothing
        # Left with epoch -2: the broker keeps its partitions for its return (within
        # the session timeout), so the other member does not get them, however many
        # heartbeats it sends meanwhile (after a leave with -1 its next one would).
        for _ in range(2):
            since = trio.current_time()
            await wait_until(lambda since=since: (other.health().last_heartbeat or 0) > since)
        async with (
            open_client(kafka.bootstrap_servers) as client,
            open_group_member(client, group, [topic], config=static) as member,
        ):
            await wait_assigned(member, 2)
            assert {a.topic_partition for a in member.assignments()} == mine
            assert other_got == set()
            assert {a.topic_partition for a in other.assignments()} == (
                {(topic, p) for p in range(4)} - mine
            )


@pytest.mark.compat
async def test_a_broker_without_the_consumer_protocol_gets_a_clear_error(
    make_topic: MakeTopic,
) -> None:
    cluster = KafkaCluster(broker_config={"group.coordinator.rebalance.protocols": "classic"})
    await trio.to_thread.run_sync(cluster.start)
    try:
        async with open_client(cluster.bootstrap_servers) as client:
            with trio.fail_after(60), pytest.raises(ConsumerProtocolUnsupportedError) as info:
                async with open_group_member(client, "off", ["t"], config=CONSUMER):
                    await trio.sleep_forever()
        assert "group_protocol='classic'" in str(info.value)
    finally:
        await trio.to_thread.run_sync(cluster.stop)


async def test_admin_and_the_cli_describe_a_consumer_protocol_group_with_the_range_assignor(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    topic = make_topic(partitions=4)
    group = f"cdesc-{topic}"
    # The broker's range assignor, asked for by the members (remote_assignor).
    ranged = GroupConfig(group_protocol="consumer", remote_assignor="range")
    static = dataclasses.replace(ranged, group_instance_id="desc-1")
    async with (
        open_client(kafka.bootstrap_servers, client_id="desc-a") as a_client,
        open_client(kafka.bootstrap_servers, client_id="desc-b") as b_client,
        open_group_member(a_client, group, [topic], config=static) as a,
        open_group_member(b_client, group, [topic], config=ranged) as b,
    ):
        await wait_until(
            lambda: (
                len(a.assignments()) == len(b.assignments()) == 2
                and a.health().state == b.health().state == "stable"
            )
        )
        with pytest.raises(GroupIdNotFoundError):
            await describe_consumer_groups(a_client, [f"no-such-{group}"])
        described = (await describe_consumer_groups(a_client, [group]))[group]
        text = await cli(kafka.bootstrap_servers, "groups", "-g", group)
        document = json.loads(await cli(kafka.bootstrap_servers, "groups", "-g", group, "--json"))
        ours = {
            a.generation.member_id: (a.generation.generation_id, a.assignments()),
            b.generation.member_id: (b.generation.generation_id, b.assignments()),
        }
    assert described.assignor_name == "range"
    assert described.state == "Stable"
    # range: contiguous halves.
    assert sorted(tuple(p.partition for p in owned) for _, owned in ours.values()) == [
        (0, 1),
        (2, 3),
    ]
    members = {m.member_id: m for m in described.members}
    assert members.keys() == ours.keys()
    for member_id, (epoch, owned) in ours.items():
        m = members[member_id]
        assert m.member_epoch == epoch
        assert m.assignment == {topic: tuple(p.partition for p in owned)}
        assert m.target_assignment == m.assignment
        assert m.subscribed_topic_names == (topic,)
    assert {m.client_id for m in described.members} == {"desc-a", "desc-b"}
    assert {m.instance_id for m in described.members} == {"desc-1", None}
    lines = text.splitlines()
    assert lines[0].startswith(f"{group}: Stable, consumer protocol, assignor range, epoch ")
    for member_id, (epoch, owned) in ours.items():
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(member_id))
        assert lines[at].endswith(f" epoch {epoch}")
        assert lines[at + 1].strip() == f"{topic}: " + ",".join(str(p.partition) for p in owned)
    (entry,) = document
    assert entry["type"] == "consumer"
    assert {m["member_id"]: m["member_epoch"] for m in entry["members"]} == {
        k: v[0] for k, v in ours.items()
    }


#: A broker whose consumer groups time out (and heartbeat) fast: Kafka's defaults and
#: minimums are a 45 s session and 5 s heartbeats, too slow for a test that kills a member.
FAST_GROUPS = {
    "group.consumer.min.session.timeout.ms": "6000",
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.heartbeat.interval.ms": "500",
    "group.consumer.heartbeat.interval.ms": "1000",
}
ROOT = Path(__file__).resolve().parents[2]


def handled_by_process(path: Path) -> list[tuple[int, int, int]]:
    """The (epoch, partition, offset) lines the member process printed (complete ones:
    the process may be writing the last one as it is read)."""
    lines = path.read_text().split("\n")[:-1]
    return [(int(g), int(p), int(o)) for g, p, o in (line.split() for line in lines if line)]


@pytest.fixture(scope="module")
def fast_groups() -> Iterator[KafkaCluster]:
    """A broker of its own whose consumer groups time out in 6 s (see FAST_GROUPS)."""
    with KafkaCluster(broker_config=FAST_GROUPS) as cluster:
        yield cluster


async def test_a_killed_member_s_partitions_are_taken_over_from_its_last_commit(
    fast_groups: KafkaCluster, tmp_path: Path
) -> None:
    await killed_member_scenario(fast_groups, tmp_path)


async def test_a_member_whose_heartbeats_stop_is_fenced_commits_nothing_more_and_rejoins(
    fast_groups: KafkaCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its session expires on the broker while its committer goes on: the first refused
    commit fences it (workers cancelled, nothing committed), then it rejoins."""
    topic, group = "stalled", "cst-stalled"
    fast_groups.create_topic(topic, partitions=2)
    stalled = trio.Event()
    resumed = trio.Event()
    real_heartbeat = _consumer_member.ConsumerDriver._heartbeat_once

    async def stoppable_heartbeat(self: _consumer_member.ConsumerDriver) -> bool:
        if stalled.is_set() and not resumed.is_set():
            await resumed.wait()
        return await real_heartbeat(self)

    monkeypatch.setattr(_consumer_member.ConsumerDriver, "_heartbeat_once", stoppable_heartbeat)
    commits: list[tuple[int, str]] = []
    phase = ["running"]
    real_commit = _consumer_member.commit_offsets

    async def recording_commit(*args: object, **kwargs: object) -> None:
        commits.append((kwargs["generation_id"], phase[0]))  # type: ignore[arg-type]
        await real_commit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_consumer_member, "commit_offsets", recording_commit)
    lost: list[AssignedPartition] = []

    async def on_lost(parts: Sequence[AssignedPartition]) -> None:
        lost.extend(parts)
        phase[0] = "lost"

    async with (
        open_client(fast_groups.bootstrap_servers) as client,
        open_group_member(client, group, [topic], config=CONSUMER, on_lost=on_lost) as member,
        trio.open_nursery() as workers,
    ):

        async def start_workers() -> None:
            async for assigned in member:
                workers.start_soon(acking_worker, assigned)

        workers.start_soon(start_workers)
        await wait_until(lambda: len(member.assignments()) == 2 and commits)
        fenced = member.generation
        first = member.assignments()
        stalled.set()  # no more heartbeats: the broker's 6 s session runs out
        await wait_until(lambda: lost)
        assert member.health().state == "joining"
        phase[0] = "after loss"
        resumed.set()
        await wait_until(lambda: member.health().state == "stable" and member.assignments())
        rejoined = member.generation
        phase[0] = "rejoined"
        workers.cancel_scope.cancel()
    assert {p.topic_partition for p in lost} == {p.topic_partition for p in first}
    assert all(p.cancel_scope.cancel_called for p in first)
    assert rejoined.generation_id > 0
    assert rejoined.member_id == fenced.member_id
    # After the loss, nothing was committed until the member had rejoined.
    assert [c for c in commits if c[1] in ("lost", "after loss")] == []


async def killed_member_scenario(cluster: KafkaCluster, tmp_path: Path) -> None:
    # 400 messages a partition at 50 ms each: the process is far from done with its
    # partitions when it is killed.
    partitions, per_partition = 4, 400
    topic, group = "killed", "ck-killed"
    bootstrap = cluster.bootstrap_servers
    cluster.create_topic(topic, partitions=partitions)
    await produce(bootstrap, topic, partitions, partitions * per_partition)
    out, err = tmp_path / "member.out", tmp_path / "member.err"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests.group_member_process"]
    with out.open("w") as sink, err.open("w") as errors:
        process = await trio.lowlevel.open_process(
            [*command, ",".join(bootstrap), group, topic, "0.05", "consumer"],
            stdout=sink,
            stderr=errors,
            env=env,
            cwd=ROOT,
        )
    handled: list[tuple[int, int]] = []  # ours: (partition, offset)
    try:
        await wait_until(lambda: len(handled_by_process(out)) >= 40 or process.poll() is not None)
        assert process.poll() is None, err.read_text()
        everything = {(p, o) for p in range(partitions) for o in range(per_partition)}
        done = trio.Event()

        async def handle(assigned: AssignedPartition, message: Record) -> None:
            handled.append((assigned.partition, message.offset))
            theirs = {(p, o) for _, p, o in handled_by_process(out)}
            if everything <= theirs | set(handled):
                done.set()

        async with (
            open_client(bootstrap) as client,
            open_group_subscriber(client, group, [topic], handle, config=CONSUMER) as ours,
        ):
            # Both share the group; the process goes on with its half: kill it there.
            await wait_until(lambda: len(ours.assignments()) == partitions // 2)
            mark = len(handled_by_process(out))
            await wait_until(lambda: len(handled_by_process(out)) > mark + 20)
            process.send_signal(signal.SIGKILL)
            await process.wait()
            theirs = handled_by_process(out)
            their_partitions = {p for _, p, _ in theirs[mark:]}
            assert their_partitions
            assert not their_partitions & {a.partition for a in ours.assignments()}
            last_commit = await committed(bootstrap, group, topic, partitions)
            with trio.fail_after(60):
                await done.wait()
            assert {a.partition for a in ours.assignments()} == set(range(partitions))
    finally:
        if process.poll() is None:
            process.kill()
            await process.wait()
    # Every message handled by one member or the other: at least once, no gap.
    assert {(p, o) for _, p, o in theirs} | set(handled) == everything
    # The taken-over partitions were resumed exactly at the dead member's last commit.
    for p in their_partitions:
        after = [o for q, o in handled if q == p]
        start = last_commit.get(p)
        assert min(after) == (start or 0)
        assert sorted(set(after)) == list(range(min(after), per_partition))
