"""Producers against real Kafka, read back with kcat (librdkafka), an independent client.

kcat's ``-J`` output is one JSON object per message. kcat writes the bytes of keys, values
and headers as they are, escaping only control characters, ``"`` and ``\\`` (as ``\\n``,
``\\u0000``...); bytes from 0x80 up come out raw, not as UTF-8. So a line decoded as Latin-1
(one character per byte) parses as JSON into strings whose Latin-1 encoding is exactly the
original bytes. Headers come as a flat ``[name, value, name, value, ...]`` array, in order,
duplicates kept, ``null`` for a missing value. That makes a byte-for-byte comparison
possible, binary data included.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from tests.javautil import java_partitions
from trio_brod import (
    Client,
    DeliveryReceipt,
    Message,
    ProducerConfig,
    open_client,
)
from trio_brod._config import CompressionName
from trio_brod._net import Connection
from trio_brod.admin import ConfigResource, alter_configs
from trio_brod.producer.partitioners import kafka_partition
from trio_brod.protocol import ProduceRequest
from trio_brod.protocol.errors import MessageTooLargeError, NotEnoughReplicasError
from trio_brod.protocol.records import decode_batches
from trio_brod.testing import AsyncKafkaCluster, KafkaCluster, resolve_kafka_jars
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.integration

Header = tuple[str, bytes | None]


@dataclass
class Consumed:
    """One message as kcat read it."""

    partition: int
    offset: int
    timestamp: int
    timestamp_type: str
    key: bytes | None
    value: bytes | None
    headers: list[Header]


def _raw(text: str | None) -> bytes | None:
    return None if text is None else text.encode("latin-1")


def parse_kcat_json(line: bytes) -> Consumed:
    """One line of ``kcat -C -J`` output, with the exact bytes (see the module docstring)."""
    fields = json.loads(line.decode("latin-1"))
    flat = fields.get("headers", [])
    headers = []
    for name, value in zip(flat[::2], flat[1::2], strict=True):
        raw_name = _raw(name)
        assert raw_name is not None
        headers.append((raw_name.decode(), _raw(value)))
    return Consumed(
        fields["partition"],
        fields["offset"],
        fields["ts"],
        fields["tstype"],
        _raw(fields["key"]),
        _raw(fields["payload"]),
        headers,
    )


async def kcat_consume(
    bootstrap: Sequence[str], topic: str, *, count: int | None = None
) -> list[Consumed]:
    """Every message of the topic, read by kcat from the beginning.

    Without ``count`` kcat stops at the end of every partition (``-e``); with it, once it
    has read that many (waiting for them: acks=0 messages may not be written yet).
    """
    command = ["kcat", "-C", "-b", ",".join(bootstrap), "-t", topic, "-o", "beginning"]
    command += ["-J", "-q", *(["-e"] if count is None else ["-c", str(count)])]
    with trio.fail_after(60):
        result = await trio.run_process(command, capture_stdout=True, capture_stderr=True)
    return [parse_kcat_json(line) for line in result.stdout.split(b"\n") if line]


def by_partition(messages: list[Consumed]) -> dict[int, list[Consumed]]:
    partitions: dict[int, list[Consumed]] = {}
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        partitions.setdefault(message.partition, []).append(message)
    return partitions


def new_topic_name(what: str) -> str:
    return f"producer-{what}-{uuid.uuid4().hex[:10]}"


async def auto_created(client: Client, what: str) -> str:
    """A new one-partition topic, created by asking for it (quicker than the admin tool)."""
    topic = new_topic_name(what)
    assert await client.get_partitions_count(topic) == 1
    return topic


# ------------------------------------------------------------------------------ codecs x acks


def sample_messages(rng: random.Random, count: int) -> list[Message]:
    """Messages worth compressing (repeated text) mixed with incompressible random bytes."""
    messages = []
    base = int(time.time() * 1000) - 3_600_000  # recent: retention deletes old messages
    for i in range(count):
        if i % 3:
            value = (b"order %d for customer %d; " % (i, i % 17)) * (1 + i % 9)
        else:
            value = rng.randbytes(rng.randrange(0, 300))
        key = None if i % 5 == 0 else b"key-%d" % (i % 11)
        headers = [("seq", b"%d" % i)] if i % 2 else []
        messages.append(Message(value, key=key, headers=headers, timestamp=base + i))
    return messages


@pytest.mark.compat
@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
async def test_every_codec_and_acks_round_trip(
    bootstrap_servers: list[str], codec: CompressionName
) -> None:
    rng = random.Random(codec)
    messages = sample_messages(rng, 300)
    topics: dict[int, str] = {}
    async with open_client(bootstrap_servers) as client:
        for acks in (-1, 1, 0):
            topic = topics[acks] = await auto_created(
                client, f"{codec}-acks{-acks if acks < 0 else acks}"
            )
            await client.start_producer(
                topic, ProducerConfig(required_acks=acks, compression=codec)
            )
            # One at a time, then as one batch call: both paths, one codec.
            receipts = [
                await client.produce(
                    topic, m.value, m.key, partition=0, headers=m.headers, timestamp=m.timestamp
                )
                for m in messages[:100]
            ]
            receipts.append(await client.produce_batch(topic, messages[100:], partition=0))
            offsets = [await receipt for receipt in receipts]
            assert offsets == ([-1] * 101 if acks == 0 else [*range(100), 100])
    for acks, topic in topics.items():
        consumed = await kcat_consume(bootstrap_servers, topic, count=len(messages))
        assert [m.offset for m in consumed] == list(range(len(messages))), acks
        for sent, got in zip(messages, consumed, strict=True):
            assert (got.key, got.value, got.headers) == (sent.key, sent.value, list(sent.headers))
            assert (got.timestamp, got.timestamp_type) == (sent.timestamp, "create")


# ------------------------------------------------------------------------------ headers, timestamps


def random_bytes(rng: random.Random, limit: int) -> bytes | None:
    choice = rng.random()
    if choice < 0.1:
        return None
    if choice < 0.2:
        return b""
    return rng.randbytes(rng.randrange(1, limit))


def random_headers(rng: random.Random) -> list[Header]:
    names = ["trace", "t\u00ebxt", "\u2603", "", "dup", "dup", 'a b\n"c\\']
    headers: list[Header] = []
    for _ in range(rng.randrange(0, 6)):
        value = random_bytes(rng, 40)
        headers.append((rng.choice(names), value))
    return headers


async def test_headers_and_timestamps_byte_for_byte_in_kcat(bootstrap_servers: list[str]) -> None:
    rng = random.Random(20250101)
    now = time.time_ns() // 1_000_000
    messages = [
        Message(
            random_bytes(rng, 200),
            key=random_bytes(rng, 30),
            headers=random_headers(rng),
            timestamp=rng.choice([0, 1, now - 1, rng.randrange(0, now)]),
        )
        for _ in range(600)
    ]
    # Every byte value in a key, a value and a header, and every control character.
    everything = bytes(range(256))
    messages.append(
        Message(everything, key=everything, headers=[("all", everything)], timestamp=now)
    )
    async with open_client(bootstrap_servers) as client:
        topic = await auto_created(client, "headers")
        await client.start_producer(topic, ProducerConfig(compression="lz4"))
        receipts: list[DeliveryReceipt] = []
        for start in range(0, len(messages), 50):
            chunk = messages[start : start + 50]
            if start % 100:
                receipts.append(await client.produce_batch(topic, chunk, partition=0))
            else:
                for m in chunk:
                    receipts.append(
                        await client.produce(
                            topic,
                            m.value,
                            m.key,
                            partition=0,
                            headers=m.headers,
                            timestamp=m.timestamp,
                        )
                    )
        for receipt in receipts:
            await receipt
    consumed = await kcat_consume(bootstrap_servers, topic)
    assert len(consumed) == len(messages)
    for offset, (sent, got) in enumerate(zip(messages, consumed, strict=True)):
        assert got.offset == offset
        assert got.key == sent.key, offset
        assert got.value == sent.value, offset
        assert got.headers == list(sent.headers), offset
        assert got.timestamp == sent.timestamp, offset
        assert got.timestamp_type == "create"


async def test_default_timestamp_is_now(bootstrap_servers: list[str]) -> None:
    async with open_client(bootstrap_servers) as client:
        topic = await auto_created(client, "now")
        await client.start_producer(topic)
        before = time.time_ns() // 1_000_000
        await client.produce_sync(topic, b"v", partition=0)
        after = time.time_ns() // 1_000_000
    (got,) = await kcat_consume(bootstrap_servers, topic)
    assert before <= got.timestamp <= after


# ------------------------------------------------------------------------------ partitioning


async def test_keyed_messages_go_where_java_puts_them_in_order(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=8)
    count = 100_000
    distinct = [b"user-%d" % i for i in range(991)]
    distinct += [bytes([i]) * (1 + i % 37) for i in range(256)]  # binary keys of many sizes
    distinct.append(b"")  # an empty key is a key (murmur2 of nothing)
    keys = [distinct[(i * 7919) % len(distinct)] for i in range(count)]
    java = dict(zip(distinct, java_partitions(resolve_kafka_jars().libs, distinct, 8), strict=True))

    async with open_client(bootstrap_servers) as client:
        await client.start_producer(topic)
        receipts = [await client.produce(topic, b"%d" % i, keys[i]) for i in range(count)]
        for receipt in receipts:
            await receipt
    assert [r.partition for r in receipts] == [java[key] for key in keys]

    consumed = await kcat_consume(bootstrap_servers, topic)
    assert len(consumed) == count
    seen = set()
    for partition, messages in by_partition(consumed).items():
        indexes = [int(m.value or b"") for m in messages]
        assert indexes == sorted(indexes), f"partition {partition} is out of order"
        for index, message in zip(indexes, messages, strict=True):
            assert message.key == keys[index]
            assert java[keys[index]] == partition
        seen.update(indexes)
    assert seen == set(range(count))
    assert len(by_partition(consumed)) == 8


async def test_partitioners_end_to_end(make_topic: MakeTopic, bootstrap_servers: list[str]) -> None:
    topic = make_topic(partitions=8)
    value = b"x" * 1000
    async with open_client(bootstrap_servers) as client:
        await client.start_producer(topic)  # the default partitioner
        receipts = []
        # Keyless, default: sticky, moving on after 16 KiB of values (17 of these).
        receipts += [await client.produce(topic, b"%d:" % i + value) for i in range(100)]
        # Per call: random (keys ignored), hash (a missing key hashes like b""), a callable.
        receipts += [
            await client.produce(topic, b"%d" % i, key=b"same", partitioner="random")
            for i in range(100, 500)
        ]
        receipts += [
            await client.produce(topic, b"%d" % i, partitioner="hash") for i in range(500, 550)
        ]

        def by_value(topic: str, count: int, key: bytes | None, value: bytes | None) -> int:
            return int(value or b"0") % count

        receipts += [
            await client.produce(topic, b"%d" % i, partitioner=by_value) for i in range(550, 600)
        ]
        for receipt in receipts:
            await receipt
    where = {}
    for message in await kcat_consume(bootstrap_servers, topic):
        index = int((message.value or b"").split(b":")[0])
        where[index] = message.partition
    assert len(where) == 600
    assert [where[i] for i in range(600)] == [r.partition for r in receipts]

    sticky = [where[i] for i in range(100)]
    runs: list[list[int]] = [[sticky[0]]]
    for partition in sticky[1:]:
        if partition == runs[-1][-1]:
            runs[-1].append(partition)
        else:
            runs.append([partition])
    # 17 messages of 1000+ bytes fill 16 KiB; then the next partition, never the same one.
    assert [len(run) for run in runs] == [17] * 5 + [15]
    assert all(a[0] != b[0] for a, b in itertools.pairwise(runs))
    assert len({where[i] for i in range(100, 500)}) == 8
    assert {where[i] for i in range(500, 550)} == {kafka_partition(b"", 8)}
    assert all(where[i] == i % 8 for i in range(550, 600))


async def test_partitioner_in_the_config(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=4)
    async with open_client(bootstrap_servers) as client:
        await client.start_producer(topic, ProducerConfig(partitioner="sticky"))
        # Sticky ignores keys: small messages all stay on one partition.
        receipts = [await client.produce(topic, b"v", key=b"k%d" % i) for i in range(50)]
        for receipt in receipts:
            await receipt
    consumed = await kcat_consume(bootstrap_servers, topic)
    assert len(consumed) == 50
    assert len({m.partition for m in consumed}) == 1


# ------------------------------------------------------------------------------ broker limits


async def test_broker_size_limit_splits_batches_and_refuses_one_message(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=1, config={"max.message.bytes": "3000"})
    config = ProducerConfig(max_linger=0.5, max_linger_count=8)
    async with open_client(bootstrap_servers) as client:
        await client.start_producer(topic, config)
        # Eight 1000-byte messages linger into one batch the broker refuses as too large;
        # the producer splits it until the halves fit, keeping the order.
        receipts = [
            await client.produce(topic, b"%04d" % i + b"." * 996, partition=0) for i in range(8)
        ]
        assert [await r for r in receipts] == list(range(8))
        # A single message too large for the broker fails with the broker's error.
        with pytest.raises(MessageTooLargeError):
            await client.produce_sync(topic, b"." * 4000, partition=0)
        assert await client.produce_sync(topic, b"after", partition=0) == 8
    consumed = await kcat_consume(bootstrap_servers, topic)
    assert [(m.value or b"")[:4] for m in consumed] == [b"%04d" % i for i in range(8)] + [b"afte"]


# ------------------------------------------------------------------------------ idempotence


@pytest.mark.compat
async def test_the_broker_accepts_a_new_epoch_after_a_gap(bootstrap_servers: list[str]) -> None:
    async with open_client(bootstrap_servers) as client:
        topic = await auto_created(client, "epoch")
        await client.start_producer(topic)
        assert await client.produce_sync(topic, b"a", partition=0) == 0
        producer = await client.get_producer(topic, 0)
        sequence = producer._sequence
        assert sequence is not None
        epoch = sequence.epoch
        # As if a batch of five had been given up: the next batch leaves a gap, which the
        # broker refuses (OUT_OF_ORDER_SEQUENCE_NUMBER); the producer starts a new epoch.
        sequence.next_sequence += 5
        assert await client.produce_sync(topic, b"b", partition=0) == 1
        assert sequence.epoch == epoch + 1
        assert sequence.next_sequence == 1
        assert await client.produce_sync(topic, b"c", partition=0) == 2
    consumed = await kcat_consume(bootstrap_servers, topic)
    assert [m.value for m in consumed] == [b"a", b"b", b"c"]


# ------------------------------------------------------------------------------ failover


@pytest.mark.cluster
@pytest.mark.parametrize("graceful", [True, False], ids=["stopped", "killed"])
async def test_leader_stopped_while_producing_loses_and_duplicates_nothing(
    make_topic: MakeTopic, kafka_cluster3: KafkaCluster, graceful: bool
) -> None:
    # Stopped: the broker hands its partitions over, then closes its connections. Killed
    # (SIGKILL): requests in flight are lost mid-air, and the others notice only after the
    # broker session time-out; retries of batches that may have been written must not be
    # written twice, so that case runs with five requests in flight per partition. Both
    # otherwise with the default config: acks=-1, idempotence, 3 retries.
    cluster = AsyncKafkaCluster(kafka_cluster3)
    topic = make_topic(partitions=3, replication_factor=3, cluster=kafka_cluster3)
    count, partitions = 50_000, 3
    receipts: list[DeliveryReceipt] = []
    stopped = trio.Event()
    async with open_client(kafka_cluster3.bootstrap_servers) as client:
        onwire = 1 if graceful else 5
        await client.start_producer(topic, ProducerConfig(partition_onwire_limit=onwire))
        victim = (await client.get_leader(topic, 0)).node_id

        async def produce(upto: int) -> None:
            while len(receipts) < upto:
                i = len(receipts)
                receipts.append(await client.produce(topic, b"%d" % i, partition=i % partitions))

        async def stop_the_leader() -> None:
            await cluster.stop_broker(victim, graceful=graceful)
            stopped.set()

        with trio.fail_after(55):
            await produce(15_000)
            await receipts[-1]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stop_the_leader)
                # Keep producing, a little at a time, for as long as the broker is stopping.
                while not stopped.is_set() and len(receipts) < 40_000:
                    await produce(len(receipts) + 200)
                    await trio.sleep(0.01)
            await produce(count)
            offsets = [await receipt for receipt in receipts]
        assert all(offset >= 0 for offset in offsets)
        leader = await client.get_leader(topic, 0)
    assert leader.node_id != victim
    assert len(receipts) == count

    consumed = await kcat_consume(kafka_cluster3.bootstrap_servers, topic)
    values = [int(m.value or b"") for m in consumed]
    assert len(values) == count, f"{len(values) - len(set(values))} duplicates"
    assert set(values) == set(range(count))
    for partition, messages in by_partition(consumed).items():
        indexes = [int(m.value or b"") for m in messages]
        assert indexes == list(range(partition, count, partitions))
        # The receipts told the truth about where each message went.
        assert [m.offset for m in messages] == [offsets[i] for i in indexes]


def count_produced_values(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[bytes | None]:
    """Count, from now on, how many times each record value is sent in a Produce request."""
    sends: collections.Counter[bytes | None] = collections.Counter()
    send = Connection.send

    def counting(self: Connection, message: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(message, ProduceRequest):
            for topic_data in message.topic_data:
                for data in topic_data.partition_data:
                    for batch in decode_batches(data.records).batches:
                        sends.update(record.value for record in batch.records())
        return send(self, message, *args, **kwargs)

    monkeypatch.setattr(Connection, "send", counting)
    return sends


@pytest.mark.cluster
async def test_isr_shortfall_then_recovery_gives_up_without_sequence_errors(
    make_topic: MakeTopic, kafka_cluster3: KafkaCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # min.insync.replicas 3 with a follower stopped: every write is refused
    # (NOT_ENOUGH_REPLICAS), so batches run out of retries while others are in flight and
    # pending; then the shortfall ends (min.insync.replicas 2). Each message is delivered
    # once, in order, or fails with the broker's error; none fails with an
    # OUT_OF_ORDER_SEQUENCE_NUMBER that the producer caused by giving up the batches ahead
    # of it, and none is sent more than max_retries + 1 times.
    topic = make_topic(
        replication_factor=3, cluster=kafka_cluster3, config={"min.insync.replicas": "3"}
    )
    bootstrap = kafka_cluster3.bootstrap_servers
    resource = ConfigResource.topic(topic)
    max_retries = 3
    config = ProducerConfig(
        partition_onwire_limit=5,
        max_retries=max_retries,
        retry_backoff=0.1,
        retry_backoff_max=0.2,
        max_batch_size=64,  # one message per batch
    )
    async with open_client(bootstrap) as client:
        await client.start_producer(topic, config)
        assert await client.produce_sync(topic, b"pre", partition=0) == 0  # the broker knows us
        leader = (await client.get_leader(topic, 0)).node_id
        follower = next(node for node in (1, 2, 3) if node != leader)
        await AsyncKafkaCluster(kafka_cluster3).stop_broker(follower)  # started again after
        sends = count_produced_values(monkeypatch)
        values = [b"m%d" % i for i in range(25)]
        receipts = [await client.produce(topic, value, partition=0) for value in values]
        await trio.sleep(2)
        await alter_configs(client, {resource: {"min.insync.replicas": "2"}})
        with trio.fail_after(30):
            for receipt in receipts:
                with contextlib.suppress(NotEnoughReplicasError):
                    await receipt
    delivered = [v for v, r in zip(values, receipts, strict=True) if r.exception() is None]
    failed = [r.exception() for r in receipts if r.exception() is not None]
    assert failed, "the shortfall made no batch run out of retries"
    assert delivered, "nothing went through after the shortfall"
    assert all(isinstance(error, NotEnoughReplicasError) for error in failed), failed
    consumed = await kcat_consume(bootstrap, topic)
    assert [m.value for m in consumed] == [b"pre", *delivered]  # once each, in order
    offsets = {m.value: m.offset for m in consumed}
    for value, receipt in zip(values, receipts, strict=True):
        if value in offsets:
            assert receipt.result() == offsets[value]
    assert max(sends[value] for value in values) <= max_retries + 1, sends
