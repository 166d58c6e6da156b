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


async def fill(client: trio_brod.Client, topic: str, partitions: int, count: int) -> None:
    """``count`` unique values, round robin over the partitions, in record batches of 50
    (a fetch returns whole batches: small ones make small message sets, so many
    transactions)."""
    await client.start_producer(topic)
    per_partition: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(partitions)}
    for i in range(count):
        per_partition[i % partitions].append((b"k%d" % i, b"%06d" % i))
    receipts = []
    for partition, messages in per_partition.items():
        for start in range(0, len(messages), 50):
            receipts.append(
                await client.produce_batch(topic, messages[start : start + 50], partition=partition)
            )
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
    async with open_client(bootstrap_servers) as client:
        await fill(client, source, 4, count)
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


async def test_exactly_once_through_a_member_killed_mid_stream(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    partitions, count = 6, 30_000
    source = make_topic(partitions=partitions)
    sink = make_topic(partitions=partitions)
    group_id = unique("txn-crash")
    killed_id = unique("proc-killed")
    async with open_client(bootstrap_servers) as client:
        await fill(client, source, partitions, count)
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
                done_before = await committed_total(client, group_id, source, partitions)
                assert done_before < count, "the child finished before it was killed"
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


async def test_a_transaction_outliving_the_rebalance_timeout_is_aborted_before_release(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    """The first member's transaction hangs in ``process`` when a second member joins: the
    revoked partitions' workers are cancelled after ``rebalance_timeout``, which aborts the
    transaction before the partitions are released; their new owner starts from the last
    commit, and the output still holds every input exactly once."""
    source = make_topic(partitions=4)
    sink = make_topic(partitions=2)
    group_id = unique("txn-proc-timeout")
    count = 2000
    group = trio_brod.GroupConfig(session_timeout=10.0, rebalance_timeout=4.0, heartbeat_rate=1.0)
    hang = trio.Event()
    hung: list[str] = []
    copy = transform(sink)

    async def slow_once(txn: trio_brod.Transaction, message_set: trio_brod.MessageSet) -> None:
        if hang.is_set() and not hung:
            hung.append("hanging")
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                hung.append("cancelled")
                raise
        await copy(txn, message_set)

    async with open_client(bootstrap_servers) as client:
        await fill(client, source, 4, count)
        async with (
            open_client(bootstrap_servers) as first_client,
            trio_brod.open_transaction_processor(
                first_client,
                group_id,
                [source],
                slow_once,
                transactional_id=unique("proc-slow"),
                consumer_config=CONSUMER,
                group_config=group,
                config=TXN,
            ) as first,
        ):
            await until(lambda: first.transactions >= 1)
            hang.set()
            await until(lambda: hung)
            async with (
                open_client(bootstrap_servers) as second_client,
                trio_brod.open_transaction_processor(
                    second_client,
                    group_id,
                    [source],
                    copy,
                    transactional_id=unique("proc-other"),
                    consumer_config=CONSUMER,
                    group_config=group,
                    config=TXN,
                ) as second,
            ):
                await until_committed(client, group_id, source, 4, count)
                assert second.transactions > 0
        assert hung == ["hanging", "cancelled"]
        assert first.aborted >= 1
        values = await committed_output(client, sink, 2)
    assert len(values) == count
    assert sorted(values) == sorted(b"out:%06d" % i for i in range(count))
