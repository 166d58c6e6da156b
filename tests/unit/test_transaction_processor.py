"""The exactly-once processor's own rules, through the fake Kafka under MockClock.

How many message sets a transaction takes, what happens to message sets waiting for a
transaction when ``process`` fails, and revocation: a partition's open transaction
commits if it can within the group's ``rebalance_timeout`` and aborts otherwise, before
the partition is released, with the output exactly once either way. Against the real
broker, tests/integration/test_transaction_processor.py runs it with a member SIGKILLed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

import trio_brod
from trio_brod import open_client
from trio_brod.consumer.message_set import MessageSet
from trio_brod.groups._coordinator import GroupCoordinator
from trio_brod.groups.offsets import fetch_committed
from trio_brod.testing import fake_kafka
from trio_brod.transaction import Transaction, TransactionConfig

CONFIG = TransactionConfig(transaction_timeout=120.0)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def until(condition: Callable[[], object]) -> None:
    """Poll *condition* on Trio's clock (no wall time under MockClock)."""
    with trio.fail_after(600):
        while not condition():  # noqa: ASYNC110 (other tasks' progress)
            await trio.sleep(0.05)


async def fill(client: trio_brod.Client, topic: str, partition: int, first: int, n: int) -> None:
    """Records ``first .. first+n-1`` into one partition, ten to a batch."""
    await client.start_producer(topic)
    for start in range(first, first + n, 10):
        messages = [(b"k", b"%d:%05d" % (partition, i)) for i in range(start, start + 10)]
        await (await client.produce_batch(topic, messages, partition=partition))


async def output(client: trio_brod.Client, topic: str) -> list[bytes]:
    """Every committed value of partition 0 of *topic*."""
    end = await client.resolve_offset(topic, 0, "latest", isolation_level="read_committed")
    values: list[bytes] = []
    offset = 0
    while offset < end:
        batch = await client.fetch(topic, 0, offset, isolation_level="read_committed")
        values.extend(m.value or b"" for m in batch if m.offset < end)
        offset = batch.next_offset
    return values


def consumer_config() -> trio_brod.ConsumerConfig:
    # Small fetches: a message set per batch or two, so that several pile up.
    return trio_brod.ConsumerConfig(begin_offset="earliest", max_bytes=512)


def open_processor(
    client: trio_brod.Client, group_id: str, process: Any, tx_prefix: str, **options: Any
) -> Any:
    """A processor of topic "in" with the tests' consumer and transaction options."""
    return trio_brod.open_transaction_processor(
        client,
        group_id,
        ["in"],
        process,
        transactional_id=unique(tx_prefix),
        consumer_config=consumer_config(),
        config=CONFIG,
        **options,
    )


async def test_a_transaction_takes_every_message_set_its_partitions_have_delivered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group_id = unique("take-all")
    txns: list[Transaction] = []
    contents: list[tuple[int, int]] = []  # (transaction index, partition) per message set

    async def process(txn: Transaction, message_set: MessageSet) -> None:
        if not txns:
            await trio.sleep(5)  # the first transaction is slow: message sets pile up
        if not any(t is txn for t in txns):
            txns.append(txn)
        index = next(i for i, t in enumerate(txns) if t is txn)
        contents.append((index, message_set.partition))
        for message in message_set:
            await txn.produce("out", message.value, partition=0)

    async with fake_kafka() as fake:
        fake.create_topic("in", partitions=2)
        fake.create_topic("out", partitions=1)
        async with open_client(fake.bootstrap_servers) as client:
            for partition in (0, 1):
                await fill(client, "in", partition, 0, 200)
            async with open_processor(client, group_id, process, "tx") as processor:
                await until(lambda: processor.messages >= 400)
            values = await output(client, "out")
    assert sorted(values) == sorted(b"%d:%05d" % (p, i) for p in (0, 1) for i in range(200))
    # Behind the slow first transaction, each partition's window filled with message sets;
    # the next transaction took all of them, not one per partition.
    assert max(contents.count(content) for content in set(contents)) >= 2, contents
    assert len(txns) < len(contents) // 2, contents


async def test_process_failing_with_message_sets_queued_ends_the_processor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The transactor fails while other partitions' message sets wait for the next
    transaction: their workers are answered, and the block raises ``process``'s error
    (it used to wait for ever, the workers shielded in their wait for an outcome)."""
    calls = 0

    async def process(txn: Transaction, message_set: MessageSet) -> None:
        nonlocal calls
        calls += 1
        await trio.sleep(5)  # meanwhile the other partitions hand theirs over
        raise ValueError("bad record")

    async with fake_kafka() as fake:
        fake.create_topic("in", partitions=3)
        fake.create_topic("out", partitions=1)
        async with open_client(fake.bootstrap_servers) as client:
            for partition in (0, 1, 2):
                await fill(client, "in", partition, 0, 20)
            with trio.fail_after(300), pytest.raises(ValueError, match="bad record"):
                async with open_processor(client, unique("fails"), process, "tx"):
                    await trio.sleep_forever()
    assert calls == 1


@pytest.mark.parametrize(
    ("slow", "outcome"),
    [(5.0, "committed"), (60.0, "aborted")],
    ids=["within-rebalance-timeout", "past-rebalance-timeout"],
)
async def test_revocation_commits_within_the_rebalance_timeout_else_aborts(
    autojump_clock: trio.testing.MockClock, slow: float, outcome: str
) -> None:
    """A second member joins while the first is inside a slow transaction for partition 0,
    with partition 1's message sets waiting behind it. Under the eager ``range`` assignor
    both partitions are revoked: the open transaction commits before the partitions are
    released if it can finish within ``rebalance_timeout`` (20 s), and aborts otherwise;
    the waiting message sets are taken back at once. The committed output holds every
    input record exactly once either way."""
    group_id = unique("revoke")
    group_config = trio_brod.GroupConfig(
        partition_assignment_strategy="range",
        rebalance_timeout=20.0,
        session_timeout=30.0,
        heartbeat_rate=1.0,
    )
    slowing = trio.Event()
    in_slow = trio.Event()

    async def first(txn: Transaction, message_set: MessageSet) -> None:
        if slowing.is_set() and message_set.partition == 0:
            in_slow.set()
            await trio.sleep(slow)
        for message in message_set:
            await txn.produce("out", message.value, partition=0)

    async def second(txn: Transaction, message_set: MessageSet) -> None:
        for message in message_set:
            await txn.produce("out", message.value, partition=0)

    def owned(processor: trio_brod.TransactionProcessor) -> set[int]:
        return {a.partition for a in processor.assignments()}

    async with fake_kafka() as fake:
        fake.create_topic("in", partitions=2)
        fake.create_topic("out", partitions=1)
        async with (
            open_client(fake.bootstrap_servers) as client,
            open_client(fake.bootstrap_servers) as other,
        ):
            coordinator = GroupCoordinator(client.pool, client.metadata, group_id)

            async def committed() -> int:
                found = await fetch_committed(coordinator, group_id, [("in", 0), ("in", 1)])
                return sum(offset or 0 for offset in found.values())

            async with open_processor(
                client, group_id, first, "tx-a", group_config=group_config
            ) as a:
                await until(lambda: owned(a) == {0, 1})
                for partition in (0, 1):
                    await fill(client, "in", partition, 0, 30)
                await until(lambda: a.messages >= 60)
                slowing.set()
                await fill(client, "in", 0, 30, 30)
                await in_slow.wait()
                await fill(client, "in", 1, 30, 30)  # queued behind the slow transaction
                transactions, aborted = a.transactions, a.aborted
                async with open_processor(
                    other, group_id, second, "tx-b", group_config=group_config
                ) as b:
                    await until(lambda: len(owned(a)) == len(owned(b)) == 1)
                    with trio.fail_after(600):
                        while await committed() < 120:  # noqa: ASYNC110 (the processors' progress)
                            await trio.sleep(0.5)
                if outcome == "committed":
                    assert a.aborted == aborted
                    assert a.transactions > transactions
                else:
                    assert a.aborted > aborted
            values = await output(client, "out")
    expected = [b"%d:%05d" % (p, i) for p in (0, 1) for i in range(60)]
    assert sorted(values) == sorted(expected)
