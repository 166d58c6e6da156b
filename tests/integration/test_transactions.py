"""Transactions against real Kafka: what commits is visible, what aborts is not, to
trio-brod's ``read_committed`` consumer and to librdkafka's (confluent-kafka); fencing by a
second producer with the same transactional id; aborts on exceptions and cancellation;
offsets sent in a transaction with a group member's generation (KIP-447).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
import trio
from confluent_kafka import Consumer, KafkaError, TopicPartition

import trio_brod
from trio_brod import observe, open_client
from trio_brod.groups._coordinator import GroupCoordinator
from trio_brod.groups.offsets import fetch_committed
from trio_brod.protocol.errors import (
    IllegalGenerationError,
    InvalidProducerEpochError,
    ProducerFencedError,
)
from trio_brod.testing import AsyncKafkaCluster, KafkaCluster
from trio_brod.testing.pytest_plugin import MakeTopic
from trio_brod.transaction import (
    AbortableTransactionError,
    FatalTransactionError,
    GroupMetadata,
    TransactionalProducer,
    TransactionConfig,
    TransactionStateError,
    group_metadata,
)

pytestmark = pytest.mark.integration

#: Short, so that a transaction left open by a test cannot hold a topic back for long.
CONFIG = TransactionConfig(transaction_timeout=20.0)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def read_committed(
    client: trio_brod.Client, topic: str, partitions: int
) -> list[tuple[int, bytes | None]]:
    """Every committed (partition, value) of a topic through trio-brod's consumer, up to
    each partition's last stable offset."""
    found: list[tuple[int, bytes | None]] = []
    for partition in range(partitions):
        end = await client.resolve_offset(
            topic, partition, "latest", isolation_level="read_committed"
        )
        offset = 0
        while offset < end:
            batch = await client.fetch(topic, partition, offset, isolation_level="read_committed")
            found.extend((partition, m.value) for m in batch if m.offset < end)
            offset = batch.next_offset
    return found


def librdkafka_read_committed(
    bootstrap: list[str], topic: str, partitions: int, expected: int
) -> list[tuple[int, bytes | None]]:
    """The same through librdkafka: until ``expected`` messages and every partition's end."""
    consumer = Consumer(
        {
            "bootstrap.servers": ",".join(bootstrap),
            "group.id": unique("rdk"),
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        found: list[tuple[int, bytes | None]] = []
        at_end: set[int] = set()
        give_up = time.monotonic() + 60
        while len(at_end) < partitions or len(found) < expected:
            if time.monotonic() > give_up:
                raise TimeoutError(f"librdkafka read {len(found)} of {expected}: {found}")
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                    continue
                raise RuntimeError(str(error))
            at_end.discard(message.partition())
            found.append((message.partition(), message.value()))
        return found
    finally:
        consumer.close()


async def until(condition: Callable[[], object]) -> None:
    """Wait until ``condition()`` holds (group members' states, changed by their tasks)."""
    with trio.fail_after(60):
        while not condition():  # noqa: ASYNC110 (state of other tasks and the broker)
            await trio.sleep(0.05)


async def produce_then_fail(tp: TransactionalProducer, topic: str) -> None:
    async with tp.transaction() as txn:
        for i in range(30):
            await txn.produce(topic, b"a-%d" % i, partition=i % 3)
        await txn.produce_batch(topic, [(None, b"a-batch")], partition=0)
        raise ZeroDivisionError


@pytest.mark.compat
async def test_committed_is_visible_and_aborted_is_not_to_both_readers(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=3)
    async with (
        open_client(bootstrap_servers) as client,
        client.transactional_producer(unique("tx-vis"), config=CONFIG) as tp,
    ):
        async with tp.transaction() as txn:
            for i in range(30):
                await txn.produce(topic, b"c1-%d" % i, partition=i % 3)
        with pytest.raises(ZeroDivisionError):
            await produce_then_fail(tp, topic)
        with trio.CancelScope() as scope:
            async with tp.transaction() as txn:
                await txn.produce(topic, b"cancelled", partition=1)
                scope.cancel()
                await trio.sleep_forever()
        assert scope.cancelled_caught
        async with tp.transaction() as txn:
            receipt = await txn.produce_batch(
                topic, [(None, b"c2-0"), (b"k", b"c2-1")], partition=2
            )
        assert receipt.done()
        assert receipt.result() >= 0
        # Producing outside a transaction is an error that says so.
        with pytest.raises(TransactionStateError, match="transaction"):
            await txn.produce(topic, b"late")
        # Two at once on one producer too.
        async with tp.transaction():
            with pytest.raises(TransactionStateError, match="one transaction at a time"):
                async with tp.transaction():
                    pass
        mine = await read_committed(client, topic, 3)
    expected = sorted([(i % 3, b"c1-%d" % i) for i in range(30)] + [(2, b"c2-0"), (2, b"c2-1")])
    assert sorted(mine) == expected
    theirs = await trio.to_thread.run_sync(
        librdkafka_read_committed, bootstrap_servers, topic, 3, len(expected)
    )
    assert sorted(theirs) == expected


@pytest.mark.compat
async def test_a_second_producer_with_the_same_id_fences_the_first(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=2)
    transactional_id = unique("tx-fence")
    async with open_client(bootstrap_servers) as client:
        async with client.transactional_producer(transactional_id, config=CONFIG) as first:
            async with first.transaction() as txn:
                await txn.produce(topic, b"first-committed", partition=0)
            # The first opens a transaction (partition 0 added), then the second starts:
            # its InitProducerId aborts the first's open transaction and fences the first.
            with pytest.raises(FatalTransactionError) as caught:
                await fenced_by_second(client, first, topic)
            assert isinstance(caught.value.cause, (ProducerFencedError, InvalidProducerEpochError))
            # Every later call raises the same error.
            with pytest.raises(FatalTransactionError) as again:
                await enter_transaction(first)
            assert again.value is caught.value
        # Leaving the first's block did not raise again: we are here.
        values = sorted(v for _, v in await read_committed(client, topic, 2))
    assert values == [b"first-committed", b"second"]


async def fenced_by_second(
    client: trio_brod.Client, first: TransactionalProducer, topic: str
) -> None:
    """The first producer opens a transaction (partition 0 added), then a second starts: its
    InitProducerId aborts the first's open transaction and fences the first, whose next
    call fails for good."""
    async with first.transaction() as txn:
        await txn.produce(topic, b"first-open", partition=0)
        async with client.transactional_producer(first.transactional_id, config=CONFIG) as second:
            async with second.transaction() as txn2:
                await txn2.produce(topic, b"second", partition=1)
            await txn.produce(topic, b"first-after", partition=1)


async def enter_transaction(tp: TransactionalProducer) -> None:
    async with tp.transaction():
        pass


async def fenced_while_open(
    client: trio_brod.Client, first: TransactionalProducer, topic: str
) -> None:
    """A record of the first producer's open transaction, then a second producer starts."""
    async with first.transaction() as txn:
        await txn.produce(topic, b"zombie", partition=0)
        async with client.transactional_producer(first.transactional_id, config=CONFIG):
            pass


async def abort_with_offsets(tp: TransactionalProducer, member: object, source: str) -> None:
    async with tp.transaction() as txn:
        await txn.send_offsets(member, {(source, 0): 100})
        raise KeyError("abort")


async def zombie_commit(
    tp: TransactionalProducer, old: GroupMetadata, source: str, sink: str
) -> None:
    async with tp.transaction() as txn:
        await txn.produce(sink, b"zombie-out", partition=0)
        await txn.send_offsets(old, {(source, 0): 50})


class SentRequests(observe.Hook):
    """The (API, version) of every request a client sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    def request_sent(self, event: observe.RequestSent) -> None:
        self.sent.append((event.api, event.version))


@pytest.mark.requires_kafka("4.0", feature="transactions v2 (KIP-890)")
async def test_transactions_v2_adds_partitions_implicitly_and_bumps_the_epoch(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=3)
    group_id = unique("tx-v2-group")
    hook = SentRequests()
    async with open_client(bootstrap_servers, hooks=[hook]) as client:
        coordinator = GroupCoordinator(client.pool, client.metadata, group_id)
        async with client.transactional_producer(unique("tx-v2"), config=CONFIG) as tp:
            # A freshly formatted 4.x cluster finalizes transaction.version 2.
            assert tp.transaction_version == 2
            identities = [(tp.producer_id, tp.epoch)]
            for n in range(3):
                async with tp.transaction() as txn:
                    for i in range(6):
                        await txn.produce(topic, b"%d-%d" % (n, i), partition=i % 3)
                    await txn.send_offsets(group_id, {(topic, 0): n + 1})
                identities.append((tp.producer_id, tp.epoch))
            # An abort (the block raised) bumps the epoch too, with no InitProducerId.
            with pytest.raises(ZeroDivisionError):
                await produce_then_fail(tp, topic)
            identities.append((tp.producer_id, tp.epoch))
            async with tp.transaction() as txn:
                await txn.produce(topic, b"last", partition=1)
            identities.append((tp.producer_id, tp.epoch))
        committed = await fetch_committed(coordinator, group_id, [(topic, 0)])
        values = sorted(v for _, v in await read_committed(client, topic, 3))
    assert values == sorted([b"%d-%d" % (n, i) for n in range(3) for i in range(6)] + [b"last"])
    assert committed == {(topic, 0): 3}
    # Each EndTxn moved the producer to a new epoch (here, with fresh ids, the next one).
    producer_ids = {producer_id for producer_id, _ in identities}
    assert len(producer_ids) == 1
    epochs = [epoch for _, epoch in identities]
    assert epochs == list(range(epochs[0], epochs[0] + len(epochs)))
    apis = {api for api, _ in hook.sent}
    assert "AddPartitionsToTxn" not in apis
    assert "AddOffsetsToTxn" not in apis
    assert [api for api, _ in hook.sent].count("InitProducerId") == 1
    tv2_apis = ("Produce", "EndTxn", "TxnOffsetCommit")
    versions = {(api, version) for api, version in hook.sent if api in tv2_apis}
    assert versions == {("Produce", 12), ("EndTxn", 5), ("TxnOffsetCommit", 5)}


async def test_a_fenced_producer_finds_out_at_commit(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic()
    transactional_id = unique("tx-fence-commit")
    async with open_client(bootstrap_servers) as client:
        async with client.transactional_producer(transactional_id, config=CONFIG) as first:
            with pytest.raises(FatalTransactionError):
                await fenced_while_open(client, first, topic)
            with pytest.raises(FatalTransactionError):
                await enter_transaction(first)
        assert await read_committed(client, topic, 1) == []


async def test_offsets_commit_with_the_transaction_and_a_stale_generation_is_refused(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    source = make_topic(partitions=2)
    sink = make_topic()
    group_id = unique("tx-group")
    config = trio_brod.GroupConfig(rebalance_timeout=10.0, session_timeout=10.0)
    async with open_client(bootstrap_servers) as client:
        coordinator = GroupCoordinator(client.pool, client.metadata, group_id)
        async with (
            client.transactional_producer(unique("tx-offsets"), config=CONFIG) as tp,
            trio_brod.open_group_member(client, group_id, [source], config=config) as member,
        ):
            await until(lambda: len(member.assignments()) == 2)
            old = group_metadata(member)
            assert old.generation_id >= 0
            assert old.member_id
            async with tp.transaction() as txn:
                await txn.produce(sink, b"out-1", partition=0)
                await txn.send_offsets(member, {(source, 0): 7, (source, 1): 3})
            committed = await fetch_committed(coordinator, group_id, [(source, 0), (source, 1)])
            assert committed == {(source, 0): 7, (source, 1): 3}
            # An aborted transaction's offsets are not committed.
            with pytest.raises(KeyError):
                await abort_with_offsets(tp, member, source)
            # A second member joins: a new generation, so the old one's commit is refused.
            # (Through a client of its own: a JoinGroup waiting on the coordinator holds up
            # the requests behind it on the same connection, the first member's heartbeats.)
            async with (
                open_client(bootstrap_servers) as other_client,
                trio_brod.open_group_member(
                    other_client, group_id, [source], config=config
                ) as other,
            ):
                await until(
                    lambda: (
                        member.generation.generation_id != old.generation_id and other.assignments()
                    )
                )
                with pytest.raises(AbortableTransactionError) as caught:
                    await zombie_commit(tp, old, source, sink)
                assert isinstance(caught.value.cause, IllegalGenerationError)
                # The producer goes on: the next transaction commits.
                async with tp.transaction() as txn:
                    await txn.produce(sink, b"out-2", partition=0)
                    await txn.send_offsets(group_id, {(source, 1): 4})
            committed = await fetch_committed(coordinator, group_id, [(source, 0), (source, 1)])
            assert committed == {(source, 0): 7, (source, 1): 4}
        values = [v for _, v in await read_committed(client, sink, 1)]
    assert values == [b"out-1", b"out-2"]
    assert GroupMetadata(group_id).generation_id == -1


async def test_the_coordinator_broker_stopped_mid_transaction(
    make_topic: MakeTopic, kafka_cluster3: KafkaCluster
) -> None:
    """The transaction coordinator's broker stops mid-transaction in the three-broker
    cluster: the transaction completes or aborts cleanly, all or nothing, and no hanging
    transaction holds back the last stable offset; the producer goes on."""
    topic = make_topic(partitions=3, replication_factor=3, cluster=kafka_cluster3)
    cluster = AsyncKafkaCluster(kafka_cluster3)
    async with (
        open_client(kafka_cluster3.bootstrap_servers) as client,
        client.transactional_producer(unique("tx-coord"), config=CONFIG) as tp,
    ):
        victim = tp.coordinator
        assert victim is not None
        try:
            outcome = "committed"
            try:
                async with tp.transaction() as txn:
                    for i in range(30):
                        await txn.produce(topic, b"mid-%d" % i, partition=i % 3)
                    await cluster.stop_broker(victim.node_id)
                    for i in range(30, 60):
                        await txn.produce(topic, b"mid-%d" % i, partition=i % 3)
            except AbortableTransactionError:
                outcome = "aborted"
            moved = tp.coordinator
            assert moved is not None
            assert moved.node_id != victim.node_id
            async with tp.transaction() as txn:
                await txn.produce(topic, b"after", partition=0)

            async def settled() -> bool:
                for partition in range(3):
                    stable = await client.resolve_offset(
                        topic, partition, "latest", isolation_level="read_committed"
                    )
                    end = await client.resolve_offset(topic, partition, "latest")
                    if stable != end:
                        return False
                return True

            with trio.fail_after(60):
                while not await settled():  # noqa: ASYNC110 (the brokers' transaction markers)
                    await trio.sleep(0.2)
            values = sorted(v for _, v in await read_committed(client, topic, 3))
        finally:
            await cluster.start_broker(victim.node_id)
    mid = sorted(b"mid-%d" % i for i in range(60))
    expected = sorted([*mid, b"after"]) if outcome == "committed" else [b"after"]
    assert values == expected
