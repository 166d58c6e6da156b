"""The KIP-848 member driver (trio_brod.groups._consumer_member) against an in-memory
coordinator (tests/fakes/consumer_group.py), on ``MockClock(autojump_threshold=0)``: what
the state machine's tests cannot see, that the driver carries its decisions out (the
broker's heartbeat interval, workers cancelled before anything else when fenced, a stale
commit not counted)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing

from tests.fakes.consumer_group import FakeConsumerGroupCluster
from trio_brod import AssignedPartition, GroupConfig, open_group_member
from trio_brod.groups import ConsumerProtocolUnsupportedError
from trio_brod.protocol import ConsumerGroupHeartbeatRequest
from trio_brod.protocol.errors import StaleMemberEpochError

TOPIC = "orders"
GROUP = "billing"
CONSUMER = GroupConfig(group_protocol="consumer", offset_commit_interval=0.5)


@dataclass
class _Client:
    pool: Any
    metadata: Any


def client(cluster: FakeConsumerGroupCluster) -> Any:
    return _Client(cluster, cluster)


async def acking_worker(assigned: AssignedPartition, events: list[tuple[str, Any]]) -> None:
    offset = assigned.begin_offset or 0
    try:
        with assigned:
            while True:
                await trio.sleep(0.1)
                assigned.ack(offset)
                offset += 1
    finally:
        events.append(("worker stopped", assigned.partition))


async def test_heartbeats_come_at_the_broker_s_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeConsumerGroupCluster({TOPIC: 2})
    cluster.interval_ms = 2000
    async with open_group_member(client(cluster), GROUP, [TOPIC], config=CONSUMER):
        await trio.sleep(9.0)
        cluster.interval_ms = 700  # the broker may change it: the next answer says so
        await trio.sleep(5.0)
        leaving = trio.current_time()
    times = [
        at
        for at, r in cluster.sent(ConsumerGroupHeartbeatRequest)
        if r.member_epoch > 0 and at < leaving
    ]
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(times)]
    # After the join (and the acknowledgement of its assignment), every 2 s, then 0.7 s.
    assert gaps[:3] == [2.0, 2.0, 2.0]
    assert gaps[-3:] == [0.7, 0.7, 0.7]


async def test_a_fenced_member_cancels_its_workers_before_anything_else_and_rejoins(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeConsumerGroupCluster({TOPIC: 2})
    events: list[tuple[str, Any]] = cluster.events  # type: ignore[assignment]

    async def on_lost(parts: Sequence[AssignedPartition]) -> None:
        events.append(("on_lost", sorted(p.partition for p in parts)))

    async with (
        open_group_member(client(cluster), GROUP, [TOPIC], config=CONSUMER, on_lost=on_lost) as m,
        trio.open_nursery() as workers,
    ):

        async def run_workers() -> None:
            async for assigned in m:
                workers.start_soon(acking_worker, assigned, events)

        workers.start_soon(run_workers)
        await trio.sleep(3.0)
        assert ("commit", 1) in events
        cluster.fence()
        await trio.sleep(5.0)
        assert m.generation.generation_id == 2  # rejoined: epoch 0, then the broker's 2
        assert len(m.assignments()) == 2
        workers.cancel_scope.cancel()
    fenced = events.index(("fenced", 1))
    after = events[fenced + 1 :]
    # Both workers stopped, then on_lost, before any other commit; no commit until the
    # member had rejoined (epoch 2), and none with the fenced epoch.
    assert after[:3] == [("worker stopped", 0), ("worker stopped", 1), ("on_lost", [0, 1])] or (
        after[:3] == [("worker stopped", 1), ("worker stopped", 0), ("on_lost", [0, 1])]
    )
    assert all(e != ("commit", 1) for e in after)
    joins = [r for _, r in cluster.sent(ConsumerGroupHeartbeatRequest) if r.member_epoch == 0]
    assert len(joins) == 2
    assert joins[1].member_id == joins[0].member_id
    assert joins[1].topic_partitions == []  # owns nothing when rejoining


async def test_a_commit_with_a_stale_epoch_is_not_counted_and_the_member_stays(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeConsumerGroupCluster({TOPIC: 1})
    async with open_group_member(client(cluster), GROUP, [TOPIC], config=CONSUMER) as m:
        await trio.sleep(1.0)
        (assigned,) = m.assignments()
        assigned.ack(9)
        cluster.bump()
        with pytest.raises(StaleMemberEpochError):
            await m.commit()
        assert assigned.committed is None
        assert cluster.committed == {}
        # The refusal asked for a heartbeat at once: the member knows its new epoch.
        await trio.sleep(0.1)
        assert m.generation.generation_id == cluster.epoch
        await m.commit()
        assert assigned.committed == 10
    assert cluster.committed == {(TOPIC, 0): 10}


async def test_leaving_commits_then_sends_epoch_minus_one_or_minus_two(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for instance, epoch in ((None, -1), ("static-1", -2)):
        cluster = FakeConsumerGroupCluster({TOPIC: 1})
        config = GroupConfig(group_protocol="consumer", group_instance_id=instance)
        async with open_group_member(client(cluster), GROUP, [TOPIC], config=config) as m:
            await trio.sleep(1.0)
            m.assignments()[0].ack(4)
        last = cluster.sent(ConsumerGroupHeartbeatRequest)[-1][1]
        assert (last.member_epoch, last.instance_id) == (epoch, instance)
        assert cluster.committed == {(TOPIC, 0): 5}
        assert cluster.events[-1] == ("commit", 1)


async def test_a_broker_without_the_protocol_fails_the_member_at_once_saying_what_to_do(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeConsumerGroupCluster({TOPIC: 1})
    cluster.without_kip848 = True  # Kafka 3.x: no ConsumerGroupHeartbeat in ApiVersions
    with (
        trio.fail_after(1),  # no retries: at once
        pytest.raises(ConsumerProtocolUnsupportedError, match="group_protocol='classic'"),
    ):
        async with open_group_member(client(cluster), GROUP, [TOPIC], config=CONSUMER):
            await trio.sleep_forever()


async def test_a_join_refused_again_and_again_is_retried_with_backoff_not_in_a_busy_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cluster = FakeConsumerGroupCluster({TOPIC: 1})
    cluster.refuse_joins = True
    async with open_group_member(client(cluster), GROUP, [TOPIC], config=CONSUMER):
        await trio.sleep(20.0)
        joins = [at for at, r in cluster.sent(ConsumerGroupHeartbeatRequest) if not r.member_epoch]
        # 0.1 s doubling up to 2 s (with jitter): about a dozen in 20 s, not thousands.
        assert 8 <= len(joins) <= 20
        cluster.refuse_joins = False
        await trio.sleep(3.0)
        assert cluster.epoch == 1
