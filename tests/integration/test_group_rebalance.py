"""Rebalances among trio-brod members while messages flow (issue 12's guarantees).

* Three members joining one by one over a 12-partition topic, with no crash, handle 60,000
  messages exactly once: every revoked partition's offsets are committed before it is given
  up, and the next owner starts there (with the classic protocol, and with KIP-848's
  ``consumer`` protocol, where the broker moves partitions member by member).
* With cooperative-sticky, the partitions that do not move keep being consumed through the
  rebalance (KIP-429): their workers are never stopped or started again, and they handle
  messages while the member is still revoking the moved ones.

Short timeouts keep the tests short: session_timeout 6 s (the broker's minimum), heartbeats
every second, commits every half second.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Sequence

import pytest
import trio

from tests.kip848 import skip_without_kip848
from trio_brod import AssignedPartition, GroupConfig, open_client, open_group_subscriber
from trio_brod._config_groups import AssignorName
from trio_brod.producer import DeliveryReceipt
from trio_brod.protocol.records import Record
from trio_brod.testing import KafkaCluster
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.integration


def fast(assignor: AssignorName = "cooperative-sticky") -> GroupConfig:
    return GroupConfig(
        partition_assignment_strategy=assignor,
        session_timeout=6.0,
        heartbeat_rate=1.0,
        rebalance_timeout=10.0,
        offset_commit_interval=0.5,
    )


#: KIP-848's consumer protocol: the broker assigns (uniform), with its own timeouts.
CONSUMER = GroupConfig(
    group_protocol="consumer", rebalance_timeout=10.0, offset_commit_interval=0.5
)


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
async def test_three_members_joining_one_by_one_handle_60000_messages_exactly_once(
    kafka: KafkaCluster, make_topic: MakeTopic, protocol: str
) -> None:
    if protocol == "consumer":
        skip_without_kip848(kafka)
    partitions, chunks, chunk = 12, 60, 1000
    topic = make_topic(partitions=partitions)
    group = f"exactly-once-{topic}"
    handled: dict[str, list[tuple[int, int]]] = {"a": [], "b": [], "c": []}
    receipts: list[DeliveryReceipt] = []
    a_third, two_thirds, everything_handled = trio.Event(), trio.Event(), trio.Event()

    def handler(name: str) -> Callable[[AssignedPartition, Record], Awaitable[None]]:
        async def handle(assigned: AssignedPartition, message: Record) -> None:
            handled[name].append((assigned.partition, message.offset))
            if sum(map(len, handled.values())) >= chunks * chunk:
                everything_handled.set()

        return handle

    async def produce() -> None:
        for c in range(chunks):
            for i in range(chunk):
                n = c * chunk + i
                receipt = await producer.produce(topic, b"%d" % n, partition=n % partitions)
                receipts.append(receipt)
            if c == chunks // 3:
                a_third.set()
            elif c == 2 * chunks // 3:
                two_thirds.set()
            await trio.sleep(0.1)

    async with (
        open_client(kafka.bootstrap_servers) as producer,
        open_client(kafka.bootstrap_servers) as ca,
        open_client(kafka.bootstrap_servers) as cb,
        open_client(kafka.bootstrap_servers) as cc,
        trio.open_nursery() as nursery,
    ):
        await producer.start_producer(topic)
        config = fast() if protocol == "classic" else CONSUMER
        async with open_group_subscriber(ca, group, [topic], handler("a"), config=config) as a:
            await a.wait_stable()
            nursery.start_soon(produce)
            await a_third.wait()
            async with open_group_subscriber(cb, group, [topic], handler("b"), config=config):
                await two_thirds.wait()
                third = open_group_subscriber(cc, group, [topic], handler("c"), config=config)
                async with third as c:
                    await c.wait_stable()
                    with trio.fail_after(60):
                        await everything_handled.wait()
                        # With KIP-848 the broker hands c its share partition by partition,
                        # as the others give theirs up: it may still be on its way.
                        while len(c.assignments()) != partitions // 3:  # noqa: ASYNC110
                            await trio.sleep(0.1)
    produced = {(p, await r) for p, r in ((i % partitions, r) for i, r in enumerate(receipts))}
    together = handled["a"] + handled["b"] + handled["c"]
    assert len(produced) == chunks * chunk
    assert len(together) == len(produced)  # no duplicates...
    assert set(together) == produced  # ...and nothing lost
    assert all(handled.values())  # each member had its share


async def test_unmoved_partitions_keep_consuming_through_a_cooperative_rebalance(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    partitions = 6
    topic = make_topic(partitions=partitions)
    group = f"cooperative-{topic}"
    started: dict[int, int] = dict.fromkeys(range(partitions), 0)  # worker starts in member a
    stopped: list[int] = []  # partitions a gave up
    handled: list[tuple[float, int, bool]] = []  # (time, partition, while a was revoking)
    revoking = False
    window: list[float] = []  # when b started to join, when both were stable again

    async def handle(assigned: AssignedPartition, message: Record) -> None:
        handled.append((trio.current_time(), assigned.partition, revoking))

    async def on_assigned(parts: Sequence[AssignedPartition]) -> None:
        for p in parts:
            started[p.partition] += 1

    async def on_revoked(parts: Sequence[AssignedPartition]) -> None:
        # The application flushes its state for the moved partitions, slowly: the rebalance
        # cannot end before this returns.
        nonlocal revoking
        stopped.extend(p.partition for p in parts)
        if len(window) != 1:
            return  # not b's join: a is closing
        revoking = True
        await trio.sleep(2.0)
        revoking = False

    async def produce() -> None:
        n = 0
        while True:
            await producer.produce(topic, b"%d" % n, partition=n % partitions)
            n += 1
            await trio.sleep(0.01)

    config = fast("cooperative-sticky")  # with "range" (eager), every check fails
    async with (
        open_client(kafka.bootstrap_servers) as producer,
        open_client(kafka.bootstrap_servers) as ca,
        open_client(kafka.bootstrap_servers) as cb,
        trio.open_nursery() as nursery,
        open_group_subscriber(
            ca,
            group,
            [topic],
            handle,
            config=config,
            on_assigned=on_assigned,
            on_revoked=on_revoked,
            on_lost=on_revoked,
        ) as a,
    ):
        await producer.start_producer(topic)
        await a.wait_stable()
        nursery.start_soon(produce)
        await trio.sleep(1.0)
        window.append(trio.current_time())
        async with open_group_subscriber(cb, group, [topic], handle, config=config) as b:
            with trio.fail_after(60):
                while not (a.assignments() and b.assignments() and not revoking):  # noqa: ASYNC110
                    await trio.sleep(0.05)
            window.append(trio.current_time())
            await trio.sleep(0.5)
            kept = {p.partition for p in a.assignments()}
            moved = {p.partition for p in b.assignments()}
            gave_up = set(stopped)
            nursery.cancel_scope.cancel()
    assert kept
    assert moved
    assert gave_up == moved
    for partition in kept:
        # Never stopped nor started again: one worker all along...
        assert started[partition] == 1
        # ...that handled messages while the moved partitions were being revoked,
        assert any(p == partition and during for _, p, during in handled)
        # ...and never paused for long: at most a fraction of the rebalance's duration.
        times = [window[0]]
        times += [t for t, p, _ in handled if p == partition and window[0] < t < window[1]]
        times.append(window[1])
        longest = max(later - earlier for earlier, later in itertools.pairwise(times))
        assert longest < (window[1] - window[0]) / 2, (partition, longest, window)
