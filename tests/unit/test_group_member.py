"""The group member task (trio_brod.groups.member) against the fake Kafka's group coordinator.

Everything runs on a MockClock (``loopback_clock``) with :func:`trio_brod.testing.fake_kafka`,
so session timeouts and backoffs cost no wall time. What is checked here is what the state
machine's tests cannot see: that the member *carries out* its decisions in the right order
(workers cancelled before any further commit, heartbeats that no handler holds back),
retries joins as configured, and logs what an operator needs. The coordinator's side is the
fake's: evictions are ``fake.expire_member``, a dead coordinator a stopped broker, failed
joins and slow heartbeats injected faults.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from trio_brod import AssignedPartition, Client, GroupConfig, open_client, open_group_member
from trio_brod.protocol import (
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    Message,
    MetadataRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
    SyncGroupRequest,
)
from trio_brod.protocol.errors import (
    CoordinatorLoadInProgressError,
    KafkaError,
    RequestTimedOutError,
)
from trio_brod.testing import fake_kafka
from trio_brod.testing.fake import Delay, FakeKafka, Intercepted

TOPIC = "orders"
GROUP = "billing"

Seen = list[tuple[float, Intercepted]]


@asynccontextmanager
async def running(partitions: int, **options: Any) -> AsyncIterator[tuple[FakeKafka, Client]]:
    """A fake Kafka with the topic, and a client of it (``options``: its ClientConfig)."""
    async with fake_kafka() as fake:
        fake.create_topic(TOPIC, partitions=partitions)
        async with open_client(fake.bootstrap_servers, **options) as client:
            yield fake, client


def watch(fake: FakeKafka, api: type[Message]) -> Seen:
    """Every request of *api* the fake receives from now on, with the time it arrived."""
    seen: Seen = []

    def record(request: Intercepted) -> None:
        seen.append((trio.current_time(), request))

    fake.control(api, record, times=None)
    return seen


def committed(fake: FakeKafka) -> dict[tuple[str, int], int]:
    group = fake.group(GROUP)
    return {} if group is None else {tp: c.offset for tp, c in group.offsets.items()}


def config(**options: Any) -> GroupConfig:
    defaults: dict[str, Any] = {
        "partition_assignment_strategy": "range",
        "session_timeout": 6.0,
        "heartbeat_rate": 1.0,
        "rebalance_timeout": 10.0,
        "offset_commit_interval": 0.5,
    }
    defaults.update(options)
    return GroupConfig(**defaults)


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "trio_brod.group" and r.levelno == level
    ]


async def acking_worker(assigned: AssignedPartition, events: list[tuple[str, Any]]) -> None:
    """A worker that handles one message every 0.1 s and acks it, until stopped."""
    offset = assigned.begin_offset or 0
    try:
        with assigned:
            while not assigned.revoked:
                await trio.sleep(0.1)
                assigned.ack(offset)
                offset += 1
    finally:
        events.append(("stopped", assigned.partition))


async def test_a_rebalance_is_logged_with_the_assignment(
    loopback_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trio_brod.group")
    async with (
        running(2) as (_fake, client),
        open_group_member(client, GROUP, [TOPIC], config=config()) as member,
    ):
        await member.wait_stable()
        member_id = member.generation.member_id
    info = records(caplog, logging.INFO)
    assert f"{GROUP}: joining the group: joining the group" in info
    assert f"{GROUP}: generation 1, member {member_id} owns [('orders', 0), ('orders', 1)]" in (
        info
    )


async def test_heartbeats_go_on_while_a_handler_awaits_past_the_session_timeout(
    loopback_clock: trio.testing.MockClock,
) -> None:
    handled = trio.Event()

    async def slow_worker(assigned: AssignedPartition) -> None:
        with assigned:
            await trio.sleep(30.0)  # five session timeouts
            assigned.ack(0)
            handled.set()

    async with running(1) as (fake, client):
        heartbeats, joins = watch(fake, HeartbeatRequest), watch(fake, JoinGroupRequest)
        async with open_group_member(client, GROUP, [TOPIC], config=config()) as member:
            async with trio.open_nursery() as nursery:
                async for assigned in member:
                    nursery.start_soon(slow_worker, assigned)
                    break
                start, joined = trio.current_time(), len(joins)
                await handled.wait()
                await member.commit()
            beats = [at for at, _ in heartbeats if at >= start]
            assert len(beats) >= 28  # one a second, none held back by the handler
            assert member.generation.generation_id == 1
            assert len(joins) == joined  # never evicted, never rejoined
        assert committed(fake) == {(TOPIC, 0): 1}


async def test_an_evicted_member_cancels_its_workers_before_any_further_commit(
    loopback_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trio_brod.group")
    lost: list[list[int]] = []
    # What reached the coordinator, and the workers' stops, in one order.
    events: list[tuple[str, Any]] = []

    async def on_lost(parts: Sequence[AssignedPartition]) -> None:
        lost.append([a.partition for a in parts])

    def record(request: Intercepted) -> None:
        body: Any = request.body
        generation = getattr(body, "generation_id", None)
        if isinstance(body, OffsetCommitRequest):
            generation = body.generation_id_or_member_epoch
        events.append((type(body).__name__, generation))

    # Commits only when asked, so that the heartbeat is what hears of the eviction.
    cfg = config(offset_commit_interval=60.0)
    async with running(2) as (fake, client):
        for api in (HeartbeatRequest, OffsetCommitRequest, JoinGroupRequest, SyncGroupRequest):
            fake.control(api, record, times=None)
        for api in (LeaveGroupRequest, OffsetFetchRequest):
            fake.control(api, record, times=None)
        async with (
            open_group_member(client, GROUP, [TOPIC], config=cfg, on_lost=on_lost) as member,
            trio.open_nursery() as nursery,
        ):
            first = []
            async for assigned in member:
                nursery.start_soon(acking_worker, assigned, events)
                first.append(assigned)
                if len(first) == 2:
                    break
            await trio.sleep(3.0)
            await member.commit()
            committed_before = committed(fake)
            assert set(committed_before) == {(TOPIC, 0), (TOPIC, 1)}
            events.append(("evicted", None))
            assert fake.expire_member(GROUP, member.generation.member_id)
            with trio.fail_after(10):
                while member.generation.generation_id <= 1:  # noqa: ASYNC110 (member state)
                    await trio.sleep(0.1)
            await member.commit()  # the new generation owns nothing yet: commits nothing
            nursery.cancel_scope.cancel()
        after = events[events.index(("evicted", None)) + 1 :]
        # The first heartbeat after the eviction heard of it; both workers stopped before
        # anything else reached the broker, and nothing of generation 1 was committed after.
        assert after[0] == ("HeartbeatRequest", 1)
        assert sorted(after[1:3]) == [("stopped", 0), ("stopped", 1)]
        assert ("OffsetCommitRequest", 1) not in after
        assert all(a.lost for a in first)
        assert lost == [[0, 1]]
        assert committed(fake) == committed_before
    warnings = records(caplog, logging.WARNING)
    assert f"{GROUP}: evicted from generation 1: UNKNOWN_MEMBER_ID" in " ".join(warnings)
    assert any("lost [('orders', 0), ('orders', 1)] of generation 1" in w for w in warnings)


@pytest.mark.parametrize("request_timeout", [30.0, 3.0])
async def test_a_member_cut_off_from_its_coordinator_gives_its_partitions_up_at_session_timeout(
    loopback_clock: trio.testing.MockClock, request_timeout: float
) -> None:
    # brod's #649: a member that cannot heartbeat must not keep processing partitions the
    # broker has already handed to another member once the session timed out.
    events: list[tuple[str, Any]] = []
    async with (
        running(1, request_timeout=request_timeout) as (fake, client),
        open_group_member(client, GROUP, [TOPIC], config=config()) as member,
        trio.open_nursery() as nursery,
    ):
        async for assigned in member:
            nursery.start_soon(acking_worker, assigned, events)
            break
        await trio.sleep(2.0)
        await fake.stop_broker(1)  # the only broker: coordinator and all
        cut = trio.current_time()
        with trio.fail_after(60):
            while not events:  # noqa: ASYNC110 (the worker's own record)
                await trio.sleep(0.1)
        stopped = trio.current_time()
        # Within the session timeout (plus a heartbeat), not after request_timeout.
        assert stopped - cut <= 6.0 + 2 * 1.0
        assert assigned.lost
        last_commit = committed(fake)[TOPIC, 0]
        await fake.start_broker(1)
        with trio.fail_after(60):
            async for again in member:
                group = fake.group(GROUP)
                assert group is not None
                # A new generation (the coordinator evicted the silent member meanwhile).
                assert again.generation_id == group.generation > 1
                assert again.begin_offset == last_commit
                break
        nursery.cancel_scope.cancel()


async def test_a_blocked_event_loop_is_logged_with_the_delay(
    loopback_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trio_brod.group")
    async with (
        running(1) as (_fake, client),
        open_group_member(client, GROUP, [TOPIC], config=config()) as member,
    ):
        await member.wait_stable()
        await trio.sleep(0.5)
        loopback_clock.jump(4.0)  # as a handler that blocks the loop for 4 s would
        await trio.sleep(1.0)
    (warning,) = [w for w in records(caplog, logging.WARNING) if "late" in w]
    assert warning.startswith(f"{GROUP}: heartbeat 3.5 s late: the event loop was blocked")


async def test_a_slow_heartbeat_answer_is_not_taken_for_a_blocked_event_loop(
    loopback_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trio_brod.group")
    async with (
        running(1) as (fake, client),
        open_group_member(client, GROUP, [TOPIC], config=config()) as member,
    ):
        await member.wait_stable()
        # The coordinator takes 4 s to answer the next heartbeat (within the session).
        slow = fake.control(HeartbeatRequest, Delay(4.0))
        await trio.sleep(7.0)
        assert slow.seen  # the delayed heartbeat was sent and answered
        assert member.generation.generation_id == 1
    assert not [w for w in records(caplog, logging.WARNING) if "late" in w]


async def test_heartbeats_go_on_while_the_topic_watcher_waits_for_a_slow_metadata_answer(
    loopback_clock: trio.testing.MockClock,
) -> None:
    # The member's periodic duties share one timer task, but none waits for another's call.
    async with running(1) as (fake, client):
        heartbeats, joins = watch(fake, HeartbeatRequest), watch(fake, JoinGroupRequest)
        async with open_group_member(
            client, GROUP, [TOPIC], config=config(), metadata_refresh=2.0
        ) as member:
            await member.wait_stable()
            slow = fake.control(MetadataRequest, Delay(20.0))  # past the 6 s session
            start, joined = trio.current_time(), len(joins)
            await trio.sleep(12.0)
            assert slow.seen
            beats = [at for at, _ in heartbeats if at >= start]
            assert len(beats) >= 11  # one a second, none held back by the metadata read
            assert member.generation.generation_id == 1
            assert len(joins) == joined


async def test_the_topic_watcher_goes_on_while_a_heartbeat_answer_is_slow(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with running(1) as (fake, client):
        reads = watch(fake, MetadataRequest)
        async with open_group_member(
            client, GROUP, [TOPIC], config=config(), metadata_refresh=0.5
        ) as member:
            await member.wait_stable()
            slow = fake.control(HeartbeatRequest, Delay(4.0))
            await slow.wait_seen()
            await trio.sleep(0.5)
            start = trio.current_time()
            await trio.sleep(2.5)  # the heartbeat is still unanswered
            assert len([at for at, _ in reads if at >= start]) >= 4
            assert member.generation.generation_id == 1


async def test_heartbeats_go_on_while_a_periodic_commit_waits_for_its_coordinator(
    loopback_clock: trio.testing.MockClock,
) -> None:
    events: list[tuple[str, Any]] = []
    async with running(1) as (fake, client):
        heartbeats, joins = watch(fake, HeartbeatRequest), watch(fake, JoinGroupRequest)
        async with (
            open_group_member(client, GROUP, [TOPIC], config=config()) as member,
            trio.open_nursery() as nursery,
        ):
            async for assigned in member:
                nursery.start_soon(acking_worker, assigned, events)
                break
            # Each commit is retried until request_timeout (30 s: five sessions).
            loading = fake.fail(OffsetCommitRequest, CoordinatorLoadInProgressError, times=None)
            start, joined = trio.current_time(), len(joins)
            await trio.sleep(15.0)
            assert loading.seen
            beats = [at for at, _ in heartbeats if at >= start]
            assert len(beats) >= 14  # one a second, none held back by the commit
            assert member.generation.generation_id == 1
            assert len(joins) == joined
            assert not committed(fake)
            loading.cancel()
            await trio.sleep(31.0)  # the commit in flight gave up; the next one goes through
            assert committed(fake)[TOPIC, 0] > 0
            nursery.cancel_scope.cancel()


async def test_rejoin_delay_is_waited_between_failed_joins_then_the_member_joins(
    loopback_clock: trio.testing.MockClock,
) -> None:
    cfg = config(max_rejoin_attempts=2, rejoin_delay=2.0)
    async with running(1) as (fake, client):
        joins = watch(fake, JoinGroupRequest)
        fake.fail(JoinGroupRequest, RequestTimedOutError, times=2)
        async with open_group_member(client, GROUP, [TOPIC], config=cfg) as member:
            await member.wait_stable()
            assert member.generation.generation_id == 1
    times = [at for at, _ in joins]
    # Two failed, then MEMBER_ID_REQUIRED (JoinGroup v4+) and the join with that id.
    assert len(times) == 4
    first, second = times[1] - times[0], times[2] - times[1]
    # rejoin_delay, then twice that (each with up to 20 % jitter).
    assert 2.0 * 0.8 <= first <= 2.0 * 1.2 + 0.1
    assert 4.0 * 0.8 <= second <= 4.0 * 1.2 + 0.1


async def test_the_member_gives_up_after_max_rejoin_attempts(
    loopback_clock: trio.testing.MockClock,
) -> None:
    cfg = config(max_rejoin_attempts=3, rejoin_delay=0.5)
    async with running(1) as (fake, client):
        joins = watch(fake, JoinGroupRequest)
        fake.fail(JoinGroupRequest, RequestTimedOutError, times=10)
        with pytest.RaisesGroup(
            pytest.RaisesExc(KafkaError, match="gave up joining after 3 attempts"),
            flatten_subgroups=True,
            allow_unwrapped=True,
        ):
            async with open_group_member(client, GROUP, [TOPIC], config=cfg):
                await trio.sleep_forever()
        # The first attempt and three retries, then no more.
        assert len(joins) == 4
