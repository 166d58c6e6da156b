"""trio-brod's transactional producer and processor against the fake Kafka's transaction
coordinator, under MockClock; and librdkafka's transactional producer through the fake.

The trio-brod tests run on ``autojump_clock`` (MockClock(autojump_threshold=0)): a
transaction timeout, session timeouts and retries' backoffs take no wall time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Literal

import confluent_kafka
import pytest
import trio
import trio.testing

import trio_brod
from trio_brod import open_client
from trio_brod.consumer.message_set import MessageSet
from trio_brod.groups._coordinator import GroupCoordinator
from trio_brod.groups.offsets import fetch_committed
from trio_brod.protocol.errors import (
    IllegalGenerationError,
    InvalidProducerEpochError,
    ProducerFencedError,
    UnstableOffsetCommitError,
)
from trio_brod.testing import fake_kafka
from trio_brod.testing.fake import FakeKafka
from trio_brod.testing.fake._transactions import COMPLETE_ABORT, ONGOING
from trio_brod.transaction import (
    AbortableTransactionError,
    FatalTransactionError,
    GroupMetadata,
    Transaction,
    TransactionalProducer,
    TransactionConfig,
    group_metadata,
)

CONFIG = TransactionConfig(transaction_timeout=20.0)
Isolation = Literal["read_committed", "read_uncommitted"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def until(condition: Callable[[], object]) -> None:
    """Poll *condition* on Trio's clock (no wall time under MockClock)."""
    with trio.fail_after(120):
        while not condition():  # noqa: ASYNC110 (other tasks' progress)
            await trio.sleep(0.05)


async def read(
    client: trio_brod.Client, topic: str, partition: int, isolation: Isolation
) -> list[bytes | None]:
    """Every value of a partition a reader at *isolation* sees, up to its end there."""
    end = await client.resolve_offset(topic, partition, "latest", isolation_level=isolation)
    values: list[bytes | None] = []
    offset = 0
    while offset < end:
        batch = await client.fetch(topic, partition, offset, isolation_level=isolation)
        values.extend(m.value for m in batch if m.offset < end)
        offset = batch.next_offset
    return values


async def produce_then_fail(tp: TransactionalProducer, topic: str) -> None:
    async with tp.transaction() as txn:
        for i in range(5):
            await txn.produce(topic, b"aborted-%d" % i, partition=i % 2)
        raise ZeroDivisionError


async def test_commit_is_visible_and_abort_is_not_to_read_committed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka(brokers=2) as fake:
        fake.create_topic("out", partitions=2)
        async with (
            open_client(fake.bootstrap_servers) as client,
            client.transactional_producer(unique("tx"), config=CONFIG) as tp,
        ):
            async with tp.transaction() as txn:
                for i in range(6):
                    await txn.produce("out", b"c1-%d" % i, partition=i % 2)
            with pytest.raises(ZeroDivisionError):
                await produce_then_fail(tp, "out")
            async with tp.transaction() as txn:
                await txn.produce("out", b"c2", partition=1)
            committed = [await read(client, "out", p, "read_committed") for p in (0, 1)]
            uncommitted = [await read(client, "out", p, "read_uncommitted") for p in (0, 1)]
        assert committed == [
            [b"c1-0", b"c1-2", b"c1-4"],
            [b"c1-1", b"c1-3", b"c1-5", b"c2"],
        ]
        # read_uncommitted sees the aborted records too (never the markers).
        assert uncommitted == [
            [b"c1-0", b"c1-2", b"c1-4", b"aborted-0", b"aborted-2", b"aborted-4"],
            [b"c1-1", b"c1-3", b"c1-5", b"aborted-1", b"aborted-3", b"c2"],
        ]
        # Each ended transaction left a marker in its partitions: the last batch of each.
        assert all(fake.log("out", p).batches[-1].is_control for p in (0, 1))


async def test_an_open_transaction_holds_the_last_stable_offset_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka(brokers=1) as fake:
        fake.create_topic("lso")
        async with (
            open_client(fake.bootstrap_servers) as client,
            client.transactional_producer(unique("tx"), config=CONFIG) as tp,
        ):
            await client.start_producer("lso")
            await (await client.produce("lso", b"plain-0"))
            async with tp.transaction() as txn:
                await (await txn.produce("lso", b"open", partition=0))
                # A record outside the transaction, after its first: still held back.
                await (await client.produce("lso", b"plain-1"))
                latest = await client.resolve_offset("lso", 0, "latest")
                stable = await client.resolve_offset(
                    "lso", 0, "latest", isolation_level="read_committed"
                )
                assert (latest, stable) == (3, 1)
                assert await read(client, "lso", 0, "read_committed") == [b"plain-0"]
            # Committed: the marker is at 3, and everything up to the end is stable.
            stable = await client.resolve_offset(
                "lso", 0, "latest", isolation_level="read_committed"
            )
            assert stable == await client.resolve_offset("lso", 0, "latest") == 4
            assert await read(client, "lso", 0, "read_committed") == [
                b"plain-0",
                b"open",
                b"plain-1",
            ]


async def test_a_second_producer_with_the_same_id_fences_the_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transactional_id = unique("tx-fence")
    async with fake_kafka(brokers=1) as fake:
        fake.create_topic("fenced", partitions=2)
        async with open_client(fake.bootstrap_servers) as client:
            async with client.transactional_producer(transactional_id, config=CONFIG) as first:
                async with first.transaction() as txn:
                    await txn.produce("fenced", b"first-committed", partition=0)
                epoch = first.epoch
                with pytest.raises(FatalTransactionError) as caught:
                    await fenced_by_second(client, first, epoch)
                assert isinstance(
                    caught.value.cause, (ProducerFencedError, InvalidProducerEpochError)
                )
            state = fake.transaction(transactional_id)
            assert state is not None
            assert state.epoch == epoch + 2
            values = [await read(client, "fenced", p, "read_committed") for p in (0, 1)]
    assert values == [[b"first-committed"], [b"second"]]


async def fenced_by_second(
    client: trio_brod.Client, first: TransactionalProducer, epoch: int
) -> None:
    """The first producer opens a transaction, then a second with the same id starts."""
    async with first.transaction() as txn:
        await (await txn.produce("fenced", b"first-open", partition=0))
        async with client.transactional_producer(first.transactional_id, config=CONFIG) as second:
            # Its InitProducerId aborted the first's transaction (one bump) and answered
            # the next epoch (another).
            assert second.producer_id == first.producer_id
            assert second.epoch == epoch + 2
            async with second.transaction() as txn2:
                await txn2.produce("fenced", b"second", partition=1)
            await txn.produce("fenced", b"first-after", partition=1)


async def outlive_the_timeout(fake: FakeKafka, tp: TransactionalProducer) -> None:
    """A transaction open past its timeout: the coordinator aborts it meanwhile."""
    async with tp.transaction() as txn:
        await (await txn.produce("slow", b"too-late", partition=0))
        state = fake.transaction(tp.transactional_id)
        assert state is not None
        assert state.state == ONGOING
        assert fake.log("slow", 0).last_stable_offset == 0
        await trio.sleep(31)  # past the timeout, on Trio's clock
        # The coordinator aborted by itself: the marker is written, the partition is
        # stable again, and the epoch bumped.
        assert state.state == COMPLETE_ABORT
        assert state.epoch == tp.epoch + 1
        assert fake.log("slow", 0).last_stable_offset == 2


async def enter_transaction(tp: TransactionalProducer) -> None:
    async with tp.transaction():
        pass


async def test_the_coordinator_aborts_a_transaction_that_outlives_its_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transactional_id = unique("tx-timeout")
    config = TransactionConfig(transaction_timeout=30.0)
    async with fake_kafka(brokers=1) as fake:
        fake.create_topic("slow")
        async with (
            open_client(fake.bootstrap_servers) as client,
            client.transactional_producer(transactional_id, config=config) as tp,
        ):
            started = trio.current_time()
            # The client finds its records late too (its own check of the timeout).
            with pytest.raises((AbortableTransactionError, FatalTransactionError)):
                await outlive_the_timeout(fake, tp)
            # Its abort (EndTxn) was fenced by the bumped epoch: the producer is unusable.
            with pytest.raises(FatalTransactionError) as caught:
                await enter_transaction(tp)
            assert isinstance(caught.value.cause, ProducerFencedError)
            assert trio.current_time() - started >= 30
            assert await read(client, "slow", 0, "read_committed") == []
            assert await read(client, "slow", 0, "read_uncommitted") == [b"too-late"]


async def abort_with_offsets(tp: TransactionalProducer, member: object) -> None:
    async with tp.transaction() as txn:
        await txn.send_offsets(member, {("source", 0): 100})
        raise KeyError("abort")


async def zombie_commit(tp: TransactionalProducer, old: GroupMetadata) -> None:
    async with tp.transaction() as txn:
        await txn.produce("sink", b"zombie-out", partition=0)
        await txn.send_offsets(old, {("source", 0): 50})


async def test_offsets_commit_with_the_transaction_and_a_stale_generation_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group_id = unique("tx-group")
    config = trio_brod.GroupConfig(rebalance_timeout=10.0, session_timeout=10.0)
    async with fake_kafka(brokers=1) as fake:
        fake.create_topic("source", partitions=2)
        fake.create_topic("sink")
        async with open_client(fake.bootstrap_servers) as client:
            coordinator = GroupCoordinator(client.pool, client.metadata, group_id)
            async with (
                client.transactional_producer(unique("tx-offsets"), config=CONFIG) as tp,
                trio_brod.open_group_member(client, group_id, ["source"], config=config) as member,
            ):
                await until(lambda: len(member.assignments()) == 2)
                old = group_metadata(member)
                asked = [("source", 0), ("source", 1)]
                async with tp.transaction() as txn:
                    await txn.produce("sink", b"out-1", partition=0)
                    await txn.send_offsets(member, {("source", 0): 7, ("source", 1): 3})
                    # Staged, not committed: OffsetFetch with require_stable is told to wait
                    # (UNSTABLE_OFFSET_COMMIT) until the transaction ends.
                    with pytest.raises(UnstableOffsetCommitError):
                        await fetch_committed(coordinator, group_id, asked, timeout=5.0)
                assert await fetch_committed(coordinator, group_id, asked) == {
                    ("source", 0): 7,
                    ("source", 1): 3,
                }
                # An aborted transaction's offsets are never committed.
                with pytest.raises(KeyError):
                    await abort_with_offsets(tp, member)
                async with (
                    open_client(fake.bootstrap_servers) as other_client,
                    trio_brod.open_group_member(
                        other_client, group_id, ["source"], config=config
                    ) as other,
                ):
                    await until(
                        lambda: (
                            member.generation.generation_id != old.generation_id
                            and other.assignments()
                        )
                    )
                    with pytest.raises(AbortableTransactionError) as caught:
                        await zombie_commit(tp, old)
                    assert isinstance(caught.value.cause, IllegalGenerationError)
                    async with tp.transaction() as txn:
                        await txn.produce("sink", b"out-2", partition=0)
                        await txn.send_offsets(member, {("source", 1): 4})
                assert await fetch_committed(coordinator, group_id, asked) == {
                    ("source", 0): 7,
                    ("source", 1): 4,
                }
            assert await read(client, "sink", 0, "read_committed") == [b"out-1", b"out-2"]


def transform(output: str) -> trio_brod.transaction.Process:
    async def process(txn: Transaction, message_set: MessageSet) -> None:
        for message in message_set:
            assert message.value is not None
            await txn.produce(output, b"out:" + message.value, key=message.key)

    return process


async def test_the_exactly_once_processor_runs_through_the_fake(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group_id = unique("txn-proc")
    count = 600
    async with fake_kafka(brokers=1) as fake:
        fake.create_topic("in", partitions=3)
        fake.create_topic("out", partitions=2)
        async with open_client(fake.bootstrap_servers) as client:
            await client.start_producer("in")
            for start in range(0, count, 50):
                messages = [(b"k%d" % i, b"%04d" % i) for i in range(start, start + 50)]
                await (await client.produce_batch("in", messages, partition=(start // 50) % 3))
            coordinator = GroupCoordinator(client.pool, client.metadata, group_id)
            asked = [("in", p) for p in range(3)]
            async with (
                open_client(fake.bootstrap_servers) as worker_client,
                trio_brod.open_transaction_processor(
                    worker_client,
                    group_id,
                    ["in"],
                    transform("out"),
                    transactional_id=unique("proc"),
                    consumer_config=trio_brod.ConsumerConfig(
                        begin_offset="earliest", max_bytes=2048
                    ),
                    config=CONFIG,
                ) as processor,
            ):

                async def done() -> bool:
                    found = await fetch_committed(coordinator, group_id, asked)
                    return sum(o or 0 for o in found.values()) >= count

                with trio.fail_after(300):
                    while not await done():  # noqa: ASYNC110 (the processor's progress)
                        await trio.sleep(0.5)
                assert processor.transactions >= 2
            values = [v for p in (0, 1) for v in await read(client, "out", p, "read_committed")]
    assert sorted(v or b"" for v in values) == sorted(b"out:%04d" % i for i in range(count))


# -- librdkafka ------------------------------------------------------------------------------


def librdkafka_transactions(bootstrap: str, transactional_id: str) -> None:
    """confluent-kafka's transactional producer (sync API): one transaction committed, one
    aborted."""
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": transactional_id}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(10):
        producer.produce("rdk", value=b"committed-%d" % i, partition=i % 2)
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce("rdk", value=b"aborted", partition=0)
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce("rdk", value=b"last", partition=1)
    producer.commit_transaction(30)


async def test_librdkafka_transactions_through_the_fake() -> None:
    # The real clock: librdkafka has its own timers.
    async with fake_kafka(brokers=1) as fake:
        fake.create_topic("rdk", partitions=2)
        with trio.fail_after(120):
            await trio.to_thread.run_sync(
                librdkafka_transactions, fake.bootstrap_servers[0], unique("rdk-tx")
            )
        async with open_client(fake.bootstrap_servers) as client:
            committed = [await read(client, "rdk", p, "read_committed") for p in (0, 1)]
    assert committed == [
        [b"committed-%d" % i for i in range(0, 10, 2)],
        [*(b"committed-%d" % i for i in range(1, 10, 2)), b"last"],
    ]
