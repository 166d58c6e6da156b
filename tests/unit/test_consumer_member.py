"""The KIP-848 member driver (trio_brod.groups._consumer_member) against the fake Kafka's
consumer-group coordinator, on a MockClock (``loopback_clock``): what the state machine's
tests cannot see, that the driver carries its decisions out (the broker's heartbeat
interval, workers cancelled before anything else when fenced, a stale commit not counted,
a broker without the protocol refused at once, refused joins retried with backoff).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from trio_brod import AssignedPartition, Client, GroupConfig, open_client, open_group_member
from trio_brod.groups import ConsumerProtocolUnsupportedError
from trio_brod.protocol import ConsumerGroupHeartbeatRequest, OffsetCommitRequest
from trio_brod.protocol.errors import (
    FencedMemberEpochError,
    StaleMemberEpochError,
    UnknownMemberIdError,
)
from trio_brod.testing import fake_kafka
from trio_brod.testing.fake import Fail, FakeKafka, Intercepted

TOPIC = "orders"
GROUP = "billing"
CONSUMER = GroupConfig(group_protocol="consumer", offset_commit_interval=0.5)

#: (what, member epoch) of the requests that reached the coordinator, and other events.
Events = list[tuple[str, Any]]


@asynccontextmanager
async def running(partitions: int) -> AsyncIterator[tuple[FakeKafka, Client]]:
    """A fake Kafka with the topic, and a client of it."""
    async with fake_kafka() as fake:
        fake.create_topic(TOPIC, partitions=partitions)
        async with open_client(fake.bootstrap_servers) as client:
            yield fake, client


def heartbeats(fake: FakeKafka) -> list[tuple[float, ConsumerGroupHeartbeatRequest]]:
    """Every ConsumerGroupHeartbeat the fake receives from now on, with its arrival time."""
    seen: list[tuple[float, ConsumerGroupHeartbeatRequest]] = []

    def record(request: Intercepted) -> None:
        assert isinstance(request.body, ConsumerGroupHeartbeatRequest)
        seen.append((trio.current_time(), request.body))

    fake.control(ConsumerGroupHeartbeatRequest, record, times=None)
    return seen


def log_requests(fake: FakeKafka, events: Events) -> None:
    """Add ("commit", epoch) and ("heartbeat", epoch) to *events* as requests arrive."""

    def record(request: Intercepted) -> None:
        body = request.body
        if isinstance(body, OffsetCommitRequest):
            events.append(("commit", body.generation_id_or_member_epoch))
        elif isinstance(body, ConsumerGroupHeartbeatRequest):
            events.append(("heartbeat", body.member_epoch))

    fake.control(OffsetCommitRequest, record, times=None)
    fake.control(ConsumerGroupHeartbeatRequest, record, times=None)


def committed(fake: FakeKafka) -> dict[tuple[str, int], int]:
    group = fake.group(GROUP)
    return {} if group is None else {tp: c.offset for tp, c in group.offsets.items()}


async def acking_worker(assigned: AssignedPartition, events: Events) -> None:
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
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with running(2) as (fake, client):
        fake.groups.consumer.heartbeat_interval = 2.0
        sent = heartbeats(fake)
        async with open_group_member(client, GROUP, [TOPIC], config=CONSUMER):
            await trio.sleep(9.0)
            # The broker may change it: its next answer says so.
            fake.groups.consumer.heartbeat_interval = 0.7
            await trio.sleep(5.0)
            leaving = trio.current_time()
    times = [at for at, r in sent if r.member_epoch > 0 and at < leaving]
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(times)]
    # After the join (and the acknowledgement of its assignment), every 2 s, then 0.7 s.
    assert gaps[:3] == [2.0, 2.0, 2.0]
    assert gaps[-3:] == [0.7, 0.7, 0.7]


async def test_a_fenced_member_cancels_its_workers_before_anything_else_and_rejoins(
    loopback_clock: trio.testing.MockClock,
) -> None:
    events: Events = []

    async def on_lost(parts: Sequence[AssignedPartition]) -> None:
        events.append(("on_lost", sorted(p.partition for p in parts)))

    def fence(request: Intercepted) -> Fail | None:
        """The member's next heartbeat: the coordinator fences it (and forgets it)."""
        body = request.body
        assert isinstance(body, ConsumerGroupHeartbeatRequest)
        if body.member_epoch <= 0:
            return None
        fake.expire_member(GROUP, body.member_id)
        events.append(("fenced", body.member_epoch))
        return Fail(FencedMemberEpochError)

    async with running(2) as (fake, client):
        # Not a multiple of the commit interval: no commit is sent at the very instant of
        # the fenced heartbeat (the member could not know yet; the check below would fail).
        fake.groups.consumer.heartbeat_interval = 1.7
        sent = heartbeats(fake)
        log_requests(fake, events)
        async with (
            open_group_member(client, GROUP, [TOPIC], config=CONSUMER, on_lost=on_lost) as m,
            trio.open_nursery() as workers,
        ):

            async def run_workers() -> None:
                async for assigned in m:
                    workers.start_soon(acking_worker, assigned, events)

            workers.start_soon(run_workers)
            await trio.sleep(3.0)
            assert ("commit", 1) in events
            fake.control(ConsumerGroupHeartbeatRequest, fence)
            await trio.sleep(5.0)
            # Rejoined (epoch 0, then the broker's new epoch) and owns both partitions again.
            assert m.generation.generation_id > 1
            assert len(m.assignments()) == 2
            workers.cancel_scope.cancel()
    fenced = events.index(("fenced", 1))
    after = [e for e in events[fenced + 1 :] if e[0] != "heartbeat"]
    # Both workers stopped, then on_lost, before any other commit; no commit until the
    # member had rejoined, and none with the fenced epoch.
    assert after[:3] == [("worker stopped", 0), ("worker stopped", 1), ("on_lost", [0, 1])] or (
        after[:3] == [("worker stopped", 1), ("worker stopped", 0), ("on_lost", [0, 1])]
    )
    assert ("commit", 1) not in after
    joins = [r for _, r in sent if r.member_epoch == 0]
    assert len(joins) == 2
    assert joins[1].member_id == joins[0].member_id
    assert joins[1].topic_partitions == []  # owns nothing when rejoining


async def test_a_commit_with_a_stale_epoch_is_not_counted_and_the_member_stays(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with running(1) as (fake, client):
        sent = heartbeats(fake)
        # Commits only when asked: the one the fake refuses is the test's.
        config = GroupConfig(group_protocol="consumer", offset_commit_interval=60.0)
        async with open_group_member(client, GROUP, [TOPIC], config=config) as m:
            await trio.sleep(1.0)
            (assigned,) = m.assignments()
            assigned.ack(9)
            refused = fake.fail(OffsetCommitRequest, StaleMemberEpochError)
            with pytest.raises(StaleMemberEpochError):
                await m.commit()
            assert refused.seen
            assert assigned.committed is None
            assert committed(fake) == {}
            # The refusal asked for a heartbeat at once (the broker's interval is 5 s): the
            # member learns its current epoch.
            at = trio.current_time()
            await trio.sleep(0.1)
            assert [r for t, r in sent if t >= at and r.member_epoch > 0]
            await m.commit()
            assert assigned.committed == 10
            assert m.generation.generation_id == 1  # the member stayed
        assert committed(fake) == {(TOPIC, 0): 10}


@pytest.mark.parametrize(("instance", "epoch"), [(None, -1), ("static-1", -2)])
async def test_leaving_commits_then_sends_epoch_minus_one_or_minus_two(
    loopback_clock: trio.testing.MockClock, instance: str | None, epoch: int
) -> None:
    events: Events = []
    config = GroupConfig(group_protocol="consumer", group_instance_id=instance)
    async with running(1) as (fake, client):
        sent = heartbeats(fake)
        log_requests(fake, events)
        async with open_group_member(client, GROUP, [TOPIC], config=config) as m:
            await trio.sleep(1.0)
            m.assignments()[0].ack(4)
        last = sent[-1][1]
        assert (last.member_epoch, last.instance_id) == (epoch, instance)
        assert committed(fake) == {(TOPIC, 0): 5}
        assert events[-2:] == [("commit", 1), ("heartbeat", epoch)]


async def test_a_broker_without_the_protocol_fails_the_member_at_once_saying_what_to_do(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with running(1) as (fake, client):
        fake.remove_api(ConsumerGroupHeartbeatRequest)  # Kafka 3.x
        with (
            trio.fail_after(1),  # no retries: at once
            pytest.raises(ConsumerProtocolUnsupportedError, match="group_protocol='classic'"),
        ):
            async with open_group_member(client, GROUP, [TOPIC], config=CONSUMER):
                await trio.sleep_forever()


async def test_a_join_refused_again_and_again_is_retried_with_backoff_not_in_a_busy_loop(
    loopback_clock: trio.testing.MockClock,
) -> None:
    joins: list[float] = []

    def refuse_joins(request: Intercepted) -> Fail | None:
        body = request.body
        assert isinstance(body, ConsumerGroupHeartbeatRequest)
        if body.member_epoch != 0:
            return None
        joins.append(trio.current_time())
        return Fail(UnknownMemberIdError)

    async with running(1) as (fake, client):
        refusing = fake.control(ConsumerGroupHeartbeatRequest, refuse_joins, times=None)
        async with open_group_member(client, GROUP, [TOPIC], config=CONSUMER) as m:
            await trio.sleep(20.0)
            # 0.1 s doubling up to 2 s (with jitter): about a dozen in 20 s, not thousands.
            assert 8 <= len(joins) <= 20
            refusing.cancel()
            await trio.sleep(3.0)
            group = fake.consumer_group(GROUP)
            assert group is not None
            assert [member.epoch for member in group.members.values()] == [1]
            assert m.generation.generation_id == 1
