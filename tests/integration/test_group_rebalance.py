"""Rebalances among trio-brod members while messages flow (issue 12's guarantees).

* Three members joining one by one over a 12-partition topic, with no crash, handle 60,000
  messages exactly once: every revoked partition's offsets are committed before it is given
  up, and the next owner starts there.
* With cooperative-sticky, the partitions that do not move keep being consumed through the
  rebalance (KIP-429): their workers are never stopped or started again, and they handle
  messages while the member is still revoking the moved ones.

Short timeouts keep the tests short: session_timeout 6 s (the broker's minimum), heartbeats
every second, commits every half second.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from trio_brod import AssignedPartition, GroupConfig, open_client, open_group_subscriber
from trio_brod._config import AssignorName
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


async def test_three_members_joining_one_by_one_handle_60000_messages_exactly_once(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
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
        config = fast()
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
                    assert len(c.assignments()) == partitions // 3
    produced = {(p, await r) for p, r in ((i % partitions, r) for i, r in enumerate(receipts))}
    together = handled["a"] + handled["b"] + handled["c"]
    assert len(produced) == chunks * chunk
    assert len(together) == len(produced)  # no duplicates...
    assert set(together) == produced  # ...and nothing lost
    assert all(handled.values())  # each member had its share
