"""The group member task (trio_brod.groups.member) against an in-memory coordinator.

Everything runs on ``MockClock(autojump_threshold=0)`` with tests/fakes/group.py's
coordinator (no sockets), so session timeouts and backoffs cost no wall time. What is
checked here is what the state machine's tests cannot see: that the member *carries out*
its decisions in the right order (workers cancelled before any further commit, heartbeats
that no handler holds back), retries joins as configured, and logs what an operator needs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing

from tests.fakes.group import MEMBER_ID, FakeGroupCluster
from trio_brod import AssignedPartition, GroupConfig, open_group_member
from trio_brod.protocol import HeartbeatRequest, JoinGroupRequest
from trio_brod.protocol.errors import KafkaError, RequestTimedOutError, UnknownMemberIdError

TOPIC = "orders"
GROUP = "billing"


@dataclass
class _Client:
    pool: Any
    metadata: Any


def client(cluster: FakeGroupCluster) -> Any:
    return _Client(cluster, cluster)


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
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trio_brod.group")
    cluster = FakeGroupCluster({TOPIC: 2})
    async with open_group_member(client(cluster), GROUP, [TOPIC], config=config()) as member:
        await member.wait_stable()
    info = records(caplog, logging.INFO)
    assert f"{GROUP}: joining the group: joining the group" in info
    assert f"{GROUP}: generation 1, member {MEMBER_ID} owns [('orders', 0), ('orders', 1)]" in (
        info
    )


async def test_heartbeats_go_on_while_a_handler_awaits_past_the_session_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeGroupCluster({TOPIC: 1})
    handled = trio.Event()

    async def slow_worker(assigned: AssignedPartition) -> None:
        with assigned:
            await trio.sleep(30.0)  # five session timeouts
            assigned.ack(0)
            handled.set()

    async with open_group_member(client(cluster), GROUP, [TOPIC], config=config()) as member:
        async with trio.open_nursery() as nursery:
            async for assigned in member:
                nursery.start_soon(slow_worker, assigned)
                break
            start = trio.current_time()
            await handled.wait()
            await member.commit()
        beats = [at for at, _ in cluster.sent(HeartbeatRequest) if at >= start]
        assert len(beats) >= 28  # one a second, none held back by the handler
        assert member.generation.generation_id == 1
        assert [at for at, _ in cluster.sent(JoinGroupRequest)] == [
            at for at, _ in cluster.sent(JoinGroupRequest)[:1]
        ]
    assert cluster.committed == {(TOPIC, 0): 1}


async def test_an_evicted_member_cancels_its_workers_before_any_further_commit(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trio_brod.group")
    cluster = FakeGroupCluster({TOPIC: 2})
    lost: list[list[int]] = []

    async def on_lost(parts: Sequence[AssignedPartition]) -> None:
        lost.append([a.partition for a in parts])

    # Commits only when asked, so that the heartbeat is what hears of the eviction.
    cfg = config(offset_commit_interval=60.0)
    async with (
        open_group_member(client(cluster), GROUP, [TOPIC], config=cfg, on_lost=on_lost) as member,
        trio.open_nursery() as nursery,
    ):
        first = []
        async for assigned in member:
            # The workers write into the broker's event log: one order for both.
            nursery.start_soon(acking_worker, assigned, cluster.events)
            first.append(assigned)
            if len(first) == 2:
                break
        await trio.sleep(3.0)
        await member.commit()
        committed_before = dict(cluster.committed)
        cluster.evict()
        with trio.fail_after(10):
            while member.generation.generation_id != 2:  # noqa: ASYNC110 (fake state)
                await trio.sleep(0.1)
        await member.commit()  # generation 2 owns nothing yet: commits nothing
        nursery.cancel_scope.cancel()
    events = cluster.events
    heard = events.index(("heartbeat error", UnknownMemberIdError.code))
    after = events[heard + 1 :]
    # Both workers stopped before anything else reached the broker, and nothing of
    # generation 1 was committed after the eviction.
    assert sorted(after[:2]) == [("stopped", 0), ("stopped", 1)]
    assert ("commit", 1) not in after
    assert not any(what == "commit refused" for what, _ in events)
    assert all(a.lost for a in first)
    assert lost == [[0, 1]]
    assert cluster.committed == committed_before
    warnings = records(caplog, logging.WARNING)
    assert f"{GROUP}: evicted from generation 1: UNKNOWN_MEMBER_ID" in " ".join(warnings)
    assert any("lost [('orders', 0), ('orders', 1)] of generation 1" in w for w in warnings)


@pytest.mark.parametrize("request_timeout", [30.0, 3.0])
async def test_a_member_cut_off_from_its_coordinator_gives_its_partitions_up_at_session_timeout(
    autojump_clock: trio.testing.MockClock, request_timeout: float
) -> None:
    # brod's #649: a member that cannot heartbeat must not keep processing partitions the
    # broker has already handed to another member once the session timed out.
    cluster = FakeGroupCluster({TOPIC: 1}, request_timeout=request_timeout)
    events: list[tuple[str, Any]] = []
    async with (
        open_group_member(client(cluster), GROUP, [TOPIC], config=config()) as member,
        trio.open_nursery() as nursery,
    ):
        async for assigned in member:
            nursery.start_soon(acking_worker, assigned, events)
            break
        await trio.sleep(2.0)
        cluster.unreachable = True
        cut = trio.current_time()
        commits = len(cluster.commits)
        with trio.fail_after(60):
            while not events:  # noqa: ASYNC110 (the worker's own record)
                await trio.sleep(0.1)
        stopped = trio.current_time()
        # Within the session timeout (plus a heartbeat), not after request_timeout.
        assert stopped - cut <= 6.0 + 2 * 1.0
        assert assigned.lost
        assert len(cluster.commits) == commits
        committed = dict(cluster.committed)
        cluster.unreachable = False
        with trio.fail_after(60):
            async for again in member:
                assert again.generation_id == 2
                assert again.begin_offset == committed[TOPIC, 0]
                break
        nursery.cancel_scope.cancel()


async def test_a_blocked_event_loop_is_logged_with_the_delay(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trio_brod.group")
    cluster = FakeGroupCluster({TOPIC: 1})
    async with open_group_member(client(cluster), GROUP, [TOPIC], config=config()) as member:
        await member.wait_stable()
        await trio.sleep(0.5)
        autojump_clock.jump(4.0)  # as a handler that blocks the loop for 4 s would
        await trio.sleep(1.0)
    (warning,) = [w for w in records(caplog, logging.WARNING) if "late" in w]
    assert warning.startswith(f"{GROUP}: heartbeat 3.5 s late: the event loop was blocked")


async def test_a_slow_heartbeat_answer_is_not_taken_for_a_blocked_event_loop(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trio_brod.group")
    cluster = FakeGroupCluster({TOPIC: 1})
    async with open_group_member(client(cluster), GROUP, [TOPIC], config=config()) as member:
        await member.wait_stable()
        cluster.hold_heartbeats = True
        await trio.sleep(4.0)  # the coordinator takes 3-4 s to answer (within the session)
        cluster.release_heartbeats()
        await trio.sleep(3.0)
        assert member.generation.generation_id == 1
    assert not [w for w in records(caplog, logging.WARNING) if "late" in w]


async def test_rejoin_delay_is_waited_between_failed_joins_then_the_member_joins(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeGroupCluster({TOPIC: 1})
    cluster.join_errors = [RequestTimedOutError] * 2
    cfg = config(max_rejoin_attempts=2, rejoin_delay=2.0)
    async with open_group_member(client(cluster), GROUP, [TOPIC], config=cfg) as member:
        await member.wait_stable()
        assert member.generation.generation_id == 1
    joins = [at for at, _ in cluster.sent(JoinGroupRequest)]
    assert len(joins) == 3
    first, second = joins[1] - joins[0], joins[2] - joins[1]
    # rejoin_delay, then twice that (each with up to 20 % jitter).
    assert 2.0 * 0.8 <= first <= 2.0 * 1.2 + 0.1
    assert 4.0 * 0.8 <= second <= 4.0 * 1.2 + 0.1


async def test_the_member_gives_up_after_max_rejoin_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeGroupCluster({TOPIC: 1})
    cluster.join_errors = [RequestTimedOutError] * 10
    cfg = config(max_rejoin_attempts=3, rejoin_delay=0.5)
    with pytest.RaisesGroup(
        pytest.RaisesExc(KafkaError, match="gave up joining after 3 attempts"),
        flatten_subgroups=True,
        allow_unwrapped=True,
    ):
        async with open_group_member(client(cluster), GROUP, [TOPIC], config=cfg):
            await trio.sleep_forever()
    # The first attempt and three retries, then no more.
    assert len(cluster.sent(JoinGroupRequest)) == 4
