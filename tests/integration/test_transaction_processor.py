"""The transaction processor (brod's ``txn_do``) against real Kafka: exactly once through a
rebalance, and through a member SIGKILLed mid-stream (a real subprocess) and replaced.

The output is read with ``read_committed`` by trio-brod and checked to hold every input
exactly once; the group's committed offsets must reach the end of every input partition.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import trio

import trio_brod
from trio_brod import open_client
from trio_brod.groups._coordinator import GroupCoordinator
from trio_brod.groups.offsets import fetch_committed
from trio_brod.testing.pytest_plugin import MakeTopic

from .txn_processor_child import CONSUMER, GROUP, TXN, transform

pytestmark = pytest.mark.integration

CHILD = Path(__file__).with_name("txn_processor_child.py")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def until(condition: Callable[[], object]) -> None:
    with trio.fail_after(120):
        while not condition():  # noqa: ASYNC110 (other tasks' and processes' progress)
            await trio.sleep(0.1)


async def feed(
    client: trio_brod.Client,
    topic: str,
    partitions: int,
    count: int,
    per_second: float,
    *,
    hold: tuple[int, trio.Event] | None = None,
) -> None:
    """``count`` unique values over the partitions in record batches of 50, at about
    ``per_second`` messages a second: input that keeps arriving, so that processors work
    in many small transactions while it does (a fetch returns whole batches, and a topic
    filled beforehand would be read in a few large message sets).

    ``hold=(n, event)``: stop after ``n`` values until ``event`` is set, so that a test
    can be sure some input is still to come when it acts, however slow the machine."""
    await client.start_producer(topic)
    sent = 0
    receipts = []
    while sent < count:
        if hold is not None and sent >= hold[0]:
            await hold[1].wait()
        partition = (sent // 50) % partitions
        messages = [(b"k%d" % i, b"%06d" % i) for i in range(sent, min(sent + 50, count))]
        receipts.append(await client.produce_batch(topic, messages, partition=partition))
        sent += len(messages)
        await trio.sleep(len(messages) / per_second)
    for receipt in receipts:
        await receipt


async def committed_output(
    client: trio_brod.Client, topic: str, partitions: int
) -> list[bytes | None]:
    values: list[bytes | None] = []
    for partition in range(partitions):
        end = await client.resolve_offset(
            topic, partition, "latest", isolation_level="read_committed"
        )
        offset = 0
        while offset < end:
            batch = await client.fetch(
                topic, partition, offset, isolation_level="read_committed", max_bytes=4 << 20
            )
            values.extend(m.value for m in batch if m.offset < end)
            offset = batch.next_offset
    return values


async def committed_total(
    client: trio_brod.Client, group_id: str, topic: str, partitions: int
) -> int:
    coordinator = GroupCoordinator(client.pool, client.metadata, group_id)
    asked = [(topic, p) for p in range(partitions)]
    found = await fetch_committed(coordinator, group_id, asked, timeout=60)
    return sum(offset or 0 for offset in found.values())


async def until_committed(
    client: trio_brod.Client, group_id: str, topic: str, partitions: int, count: int
) -> None:
    """Wait until the group's committed offsets cover ``count`` input messages."""
    with trio.fail_after(180):
        while await committed_total(client, group_id, topic, partitions) < count:  # noqa: ASYNC110
            await trio.sleep(0.3)


async def test_exactly_once_through_a_rebalance(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    source = make_topic(partitions=4)
    sink = make_topic(partitions=2)
    group_id = unique("txn-proc")
    count = 4000
    async with open_client(bootstrap_servers) as client, trio.open_nursery() as feeding:
        # Input that keeps arriving (about 4 s): the rebalance happens while it does.
        feeding.start_soon(feed, client, source, 4, count, 1000.0)
        async with (
            open_client(bootstrap_servers) as first_client,
            trio_brod.open_transaction_processor(
                first_client,
                group_id,
                [source],
                transform(sink),
                transactional_id=unique("proc-a"),
                consumer_config=CONSUMER,
                group_config=GROUP,
                config=TXN,
            ) as first,
        ):
            await until(lambda: first.transactions >= 2)
            # A second member joins mid-stream: partitions move, their open transactions
            # finish (or abort) before they are released.
            async with (
                open_client(bootstrap_servers) as second_client,
                trio_brod.open_transaction_processor(
                    second_client,
                    group_id,
                    [source],
                    transform(sink),
                    transactional_id=unique("proc-b"),
                    consumer_config=CONSUMER,
                    group_config=GROUP,
                    config=TXN,
                ) as second,
            ):
                await until(lambda: first.assignments() and second.assignments())
                await until_committed(client, group_id, source, 4, count)
        values = await committed_output(client, sink, 2)
    assert len(values) == count
    assert sorted(values) == sorted(b"out:%06d" % i for i in range(count))


@pytest.mark.compat  # on 3.9.1 this is transactions v1, on 4.x v2
async def test_exactly_once_through_a_member_killed_mid_stream(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    partitions, count = 6, 30_000
    source = make_topic(partitions=partitions)
    sink = make_topic(partitions=partitions)
    group_id = unique("txn-crash")
    killed_id = unique("proc-killed")
    async with open_client(bootstrap_servers) as client, trio.open_nursery() as feeding:
        # The input arrives over about ten seconds: the child is killed while it does. The
        # last third waits for the kill, so some input is always still to come then.
        killed = trio.Event()
        feeding.start_soon(
            partial(feed, hold=(count * 2 // 3, killed)), client, source, partitions, count, 3000.0
        )
        child = await trio.lowlevel.open_process(
            [
                sys.executable,
                str(CHILD),
                ",".join(bootstrap_servers),
                group_id,
                source,
                sink,
                killed_id,
            ],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(CHILD.parent)},
        )
        try:
            async with (
                open_client(bootstrap_servers) as other_client,
                trio_brod.open_transaction_processor(
                    other_client,
                    group_id,
                    [source],
                    transform(sink),
                    transactional_id=unique("proc-other"),
                    consumer_config=CONSUMER,
                    group_config=GROUP,
                    config=TXN,
                ) as other,
            ):
                # Both members work, and the child has committed some transactions: kill it.
                assert child.stdout is not None
                lines = b""
                with trio.fail_after(120):
                    while lines.count(b"\n") < 3:
                        chunk = await child.stdout.receive_some()
                        assert chunk, "the child ended early"
                        lines += chunk
                await until(lambda: other.transactions > 0)
                child.send_signal(signal.SIGKILL)
                await child.wait()
                # The last third of the input is fed only now: the replacement below, not
                # the killed member, is what finishes the stream.
                killed.set()
                # A fresh member with the killed one's transactional id: it fences the dead
                # one and aborts its open transaction.
                async with (
                    open_client(bootstrap_servers) as fresh_client,
                    trio_brod.open_transaction_processor(
                        fresh_client,
                        group_id,
                        [source],
                        transform(sink),
                        transactional_id=killed_id,
                        consumer_config=CONSUMER,
                        group_config=GROUP,
                        config=TXN,
                    ),
                ):
                    await until_committed(client, group_id, source, partitions, count)
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        values = await committed_output(client, sink, partitions)
    assert len(values) == count, f"{len(values) - len(set(values))} duplicates"
    assert set(values) == {b"out:%06d" % i for i in range(count)}
