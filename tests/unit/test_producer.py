"""The producer's own behaviour, against the fake Kafka (no Kafka needed).

What a real broker does on its own (compression, headers, partitioning, failover) is tested
against real Kafka in ``tests/integration/test_producer*.py``. Here the fake Kafka
(:mod:`trio_brod.testing.fake`) answers Metadata, InitProducerId and Produce, keeps one log
per partition and checks idempotent sequence numbers as a broker does, and each test
scripts what goes wrong (``tests/produced.py``): an error, a response that never comes, a
connection that breaks before or after the append, a leader that moves.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, cast

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.heap import alive
from tests.produce_batch_cases import NOW, batch_outcome, odd_messages, plain_messages
from tests.produced import (
    APPEND_THEN_HANG_UP,
    HANG_UP,
    IGNORE,
    INVALID_EPOCH,
    INVALID_RECORD,
    NOT_ENOUGH_REPLICAS,
    OUT_OF_ORDER,
    TOPIC,
    UNKNOWN_PRODUCER,
    Produced,
    Scripted,
    quick,
    serving,
)
from tests.task_tree import count_tasks
from trio_brod import (
    ClientClosed,
    ClientConfig,
    ConfigError,
    DeliveryReceipt,
    Message,
    MessageTooLarge,
    ProducerClosed,
    ProducerConfig,
    open_client,
)
from trio_brod._net.pending import Part, PendingResponse
from trio_brod.producer import PartitionProducer
from trio_brod.producer import worker as producer_module
from trio_brod.producer._buffer import Call, WireBatch
from trio_brod.protocol import InitProducerIdRequest, ProduceResponse
from trio_brod.protocol import records as records_module
from trio_brod.protocol.errors import (
    ClusterAuthorizationFailedError,
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    InvalidRecordError,
    KafkaError,
    NotEnoughReplicasError,
)
from trio_brod.protocol.records import (
    Compression,
    decode_batches,
    encode_batch,
    estimate_record_size,
)


@pytest.fixture
async def cluster() -> AsyncIterator[Produced]:
    async with serving() as produced:
        yield produced


def numbered(count: int, start: int = 0) -> list[bytes]:
    return [b"m%d" % i for i in range(start, start + count)]


# ------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"required_acks": 2}, "required_acks=2"),
        ({"required_acks": True}, "required_acks=True"),
        ({"ack_timeout": 0}, "ack_timeout=0"),
        ({"partition_buffer_limit": 0}, "partition_buffer_limit=0"),
        ({"partition_buffer_bytes": 0}, "partition_buffer_bytes=0"),
        ({"partition_onwire_limit": 1.5}, "partition_onwire_limit=1.5"),
        ({"max_batch_size": 0}, "max_batch_size=0"),
        ({"max_retries": -2}, "max_retries=-2"),
        ({"retry_backoff": -1.0}, "retry_backoff=-1.0"),
        ({"retry_backoff_max": math.nan}, "retry_backoff_max=nan"),
        ({"compression": "brotli"}, "compression='brotli'"),
        ({"compression": "gzip", "compression_level": 42}, "compression_level=42"),
        ({"compression_level": 3}, "compression_level=3"),
        ({"max_linger": -0.1}, "max_linger=-0.1"),
        ({"max_linger_count": -1}, "max_linger_count=-1"),
        ({"enable_idempotence": "yes"}, "enable_idempotence='yes'"),
        ({"required_acks": 1, "enable_idempotence": True}, "enable_idempotence=True"),
        ({"partition_onwire_limit": 6}, "partition_onwire_limit=6"),
        ({"max_request_size": 10}, "max_request_size=10"),
        ({"partitioner": "roundrobin"}, "partitioner='roundrobin'"),
        ({"partitioner": 7}, "partitioner=7"),
        ({"flush_timeout": -1}, "flush_timeout=-1"),
    ],
)
def test_config_names_the_bad_field(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        ProducerConfig(**options)


def test_config_defaults() -> None:
    config = ProducerConfig()
    assert config.required_acks == -1
    assert config.idempotent  # on by default, with acks=-1 (as the Java client)
    assert not ProducerConfig(required_acks=1).idempotent
    assert ProducerConfig(compression="zstd", compression_level=5).codec.name == "ZSTD"
    # Idempotence allows up to five requests in flight per partition.
    assert ProducerConfig(partition_onwire_limit=5).partition_onwire_limit == 5
    assert ProducerConfig(required_acks=1, partition_onwire_limit=6).partition_onwire_limit == 6


# ------------------------------------------------------------------------------ basics


async def test_produce_then_leave_the_block_delivers(cluster: Produced) -> None:
    # Leaving the block right after produce: the worker still has to look up the leader and
    # connect while the client closes. That must deliver, not fail with ClientClosed.
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC)
        receipt = await client.produce(TOPIC, b"only", partition=0)
    assert receipt.result() == 0
    assert cluster.values() == [b"only"]


async def test_offsets_and_order(cluster: Produced) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC)
        receipts = [await client.produce(TOPIC, value, partition=0) for value in numbered(50)]
        batch = await client.produce_batch(TOPIC, [(None, b"b0"), (b"k", b"b1")], partition=0)
        assert [await receipt for receipt in receipts] == list(range(50))
        assert await batch == 50
        assert await client.produce_sync(TOPIC, b"last", partition=0) == 52
    assert cluster.values() == [*numbered(50), b"b0", b"b1", b"last"]


async def test_auto_start_producers_uses_the_default_config(cluster: Produced) -> None:
    config = ClientConfig(
        auto_start_producers=True,
        default_producer_config=ProducerConfig(required_acks=1),
    )
    async with open_client(cluster.bootstrap, config) as client:
        await client.produce_no_ack(TOPIC, b"v", partition=0)
        producer = await client.get_producer(TOPIC, 0)
        assert producer.config.required_acks == 1
    assert cluster.values() == [b"v"]
    assert cluster.sent[0].acks == 1
    assert cluster.sent[0].producer_id == -1  # acks=1: no idempotence


async def test_partitions_added_to_the_topic_are_used(cluster: Produced) -> None:
    def last(topic: str, count: int, key: bytes | None, value: bytes | None) -> int:
        return count - 1

    async with open_client(cluster.bootstrap, metadata_max_age=0.1) as client:
        await client.start_producer(TOPIC)
        assert (await client.produce_sync(TOPIC, b"a", partitioner=last)) == 0
        cluster.fake.model.create_partitions(TOPIC, 2)  # the topic grows a partition
        await trio.sleep(0.3)
        receipt = await client.produce(TOPIC, b"b", partitioner=last)
        assert (receipt.partition, await receipt) == (1, 0)
    assert (cluster.values(0), cluster.values(1)) == ([b"a"], [b"b"])


async def test_bad_input_is_refused_at_once(cluster: Produced) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC)
        with pytest.raises(TypeError, match="value"):
            await client.produce(TOPIC, "text", partition=0)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timestamp"):
            await client.produce(TOPIC, b"v", partition=0, timestamp=-5)
        with pytest.raises(TypeError, match="timestamp"):
            await client.produce(TOPIC, b"v", partition=0, timestamp=1.5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="header 0"):
            await client.produce(TOPIC, b"v", partition=0, headers=[(b"k", b"v")])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="message 1"):
            await client.produce_batch(TOPIC, [(None, b"a"), (None, b"b", b"c")], partition=0)  # type: ignore[list-item]
        with pytest.raises(ValueError, match="at least one"):
            await client.produce_batch(TOPIC, [], partition=0)
        with pytest.raises(ValueError, match="no partition 3"):
            await client.produce(TOPIC, b"v", partition=3)
        with pytest.raises(TypeError, match="partition must be an int"):
            await client.produce(TOPIC, b"v", partition="0")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="returned 5"):
            await client.produce(TOPIC, b"v", partitioner=lambda topic, n, key, value: 5)
        with pytest.raises(ConfigError, match="partitioner='nope'"):
            await client.produce(TOPIC, b"v", partitioner="nope")  # type: ignore[arg-type]
    assert cluster.sent == []


async def test_bad_input_is_named_before_the_partitioner_runs(cluster: Produced) -> None:
    # A bad key used to fail inside murmur2 ("a bytes-like object is required, not 'int'").
    asked: list[object] = []

    def partitioner(topic: str, count: int, key: bytes | None, value: bytes | None) -> int:
        asked.append(key)
        return 0

    key_error = "key must be bytes, bytearray, memoryview or None, not int"
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, ProducerConfig(partitioner=partitioner))
        for produce in (client.produce, client.produce_sync, client.produce_no_ack):
            with pytest.raises(TypeError, match=key_error):
                await produce(TOPIC, b"v", 5)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=key_error):
                await produce(TOPIC, b"v", 5, partitioner="hash")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=r"^value must be bytes.*not str"):
                await produce(TOPIC, "text")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match=r"^timestamp must be .* not -1$"):
                await produce(TOPIC, b"v", timestamp=-1)
            with pytest.raises(TypeError, match=r"^timestamp must be an int .* not float"):
                await produce(TOPIC, b"v", timestamp=1.5)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=r"^header 0 name must be a str, not bytes"):
                await produce(TOPIC, b"v", headers=[(b"h", b"x")])  # type: ignore[list-item]
            with pytest.raises(TypeError, match=r"^header 'h' value must be bytes"):
                await produce(TOPIC, b"v", headers=[("h", 1)])  # type: ignore[list-item]
        with pytest.raises(TypeError, match=key_error):
            await client.produce_batch(TOPIC, [(None, b"v")], key=5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"for one message, pass \[message\]"):
            await client.produce_batch(TOPIC, Message(b"v"), partition=0)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="not bytes"):
            await client.produce_batch(TOPIC, b"kv", partition=0)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"messages must be an iterable .* not int"):
            await client.produce_batch(TOPIC, 5, partition=0)  # type: ignore[arg-type]
        for topic in (b"orders", 5):
            with pytest.raises(TypeError, match=r"^topic must be a str"):
                await client.produce(topic, b"v")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=r"^topic must be a str"):
                await client.start_producer(topic)  # type: ignore[arg-type]
    async with open_client(cluster.bootstrap, auto_start_producers=True) as client:
        with pytest.raises(TypeError, match=r"^topic must be a str, not bytes"):
            await client.produce(b"orders", b"v")  # type: ignore[arg-type]
    assert asked == []
    assert cluster.sent == []


async def test_int_subclass_timestamps_are_taken_as_plain_ints(cluster: Produced) -> None:
    class Millis(int):
        pass

    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC)
        assert await client.produce_sync(TOPIC, b"v", partition=0, timestamp=Millis(7)) == 0
        with pytest.raises(TypeError, match="timestamp must be an int"):
            await client.produce(TOPIC, b"v", partition=0, timestamp=True)
    assert cluster.values() == [b"v"]


async def test_buffers_changed_after_the_call_do_not_change_what_is_sent(
    cluster: Produced,
) -> None:
    # What the caller passed at the moment of the call is what is sent (as Java serialises
    # at send()): keys, values and header values given as bytearray or memoryview are
    # copied. The worker encodes the batch only after produce() has returned.
    class Name(str):
        __slots__ = ()

    buffers: list[bytearray] = []

    def buffer(data: bytes) -> bytearray:
        buffers.append(bytearray(data))
        return buffers[-1]

    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC)
        receipts = [
            await client.produce(
                TOPIC,
                buffer(b"v1"),
                memoryview(buffer(b"k1")),
                partition=0,
                headers=[("a", buffer(b"h1")), (Name("b"), memoryview(buffer(b"h2")))],
            ),
            await client.produce_batch(
                TOPIC,
                [
                    Message(buffer(b"v2"), buffer(b"k2"), headers=[("c", buffer(b"h3"))]),
                    (buffer(b"k3"), memoryview(buffer(b"v3"))),
                ],
                partition=0,
            ),
        ]
        await client.produce_no_ack(
            TOPIC, buffer(b"v4"), partition=0, headers=(("d", buffer(b"h4")),)
        )
        producer = await client.get_producer(TOPIC, 0)
        receipts.append(await producer.produce(b"v5", headers=[("e", buffer(b"h5"))]))
        for data in buffers:
            data[:] = b"XX"
        for receipt in receipts:
            await receipt
        await client.stop_producer(TOPIC)
    records = [record for sent in cluster.sent for record in sent.records]
    assert records == [
        (b"k1", b"v1", (("a", b"h1"), ("b", b"h2"))),
        (b"k2", b"v2", (("c", b"h3"),)),
        (b"k3", b"v3", ()),
        (None, b"v4", (("d", b"h4"),)),
        (None, b"v5", (("e", b"h5"),)),
    ]


@pytest.mark.parametrize(
    ("seconds", "ms"), [(1.001, 1001), (2.007, 2007), (0.0004, 1), (10, 10000)]
)
async def test_ack_timeout_goes_on_the_wire_to_the_nearest_ms(
    cluster: Produced, seconds: float, ms: int
) -> None:
    # Truncated, 1.001 s was 1000 ms (the float product is 1000.9999999999999) and
    # 0.0004 s was 0 ms, which asks the broker not to wait for the replicas at all.
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, ProducerConfig(ack_timeout=seconds))
        await client.produce_sync(TOPIC, b"v", partition=0)
    assert [sent.timeout_ms for sent in cluster.sent] == [ms]


@given(st.integers(1, 2**31 - 1))
def test_ack_timeout_in_whole_ms_is_kept_exactly(ms: int) -> None:
    assert producer_module.ack_timeout_ms(ms / 1000) == ms


async def test_message_too_large_names_size_and_limit(cluster: Produced) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, ProducerConfig(max_request_size=1000))
        with pytest.raises(MessageTooLarge, match=r"about \d+ bytes, over max_request_size=1000"):
            await client.produce(TOPIC, b"x" * 1000, partition=0)
        with pytest.raises(MessageTooLarge) as info:
            await client.produce_batch(TOPIC, [(None, b"x" * 400)] * 3, partition=0)
        assert info.value.size > info.value.limit == 1000
        assert info.value.topic == TOPIC
        assert info.value.partition == 0
        # Just under the limit goes through.
        assert await client.produce_sync(TOPIC, b"x" * 900, partition=0) == 0
    assert cluster.values() == [b"x" * 900]


# ------------------------------------------------------------------------------ back-pressure


async def produce_until_stuck(
    client: Any, values: list[bytes]
) -> tuple[list[bytes], list[DeliveryReceipt]]:
    """Produce ``values`` to partition 0 until a call waits and stays waiting; cancel it.

    Returns the values accepted and their receipts (the cancelled call accepted nothing).
    """
    accepted: list[bytes] = []
    receipts: list[DeliveryReceipt] = []

    async def produce_forever() -> None:
        for value in values:
            receipts.append(await client.produce(TOPIC, value, partition=0))
            accepted.append(value)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce_forever)
        await trio.testing.wait_all_tasks_blocked(0.2)
        stuck_at = len(accepted)
        await trio.sleep(0.1)
        assert len(accepted) == stuck_at
        nursery.cancel_scope.cancel()
    return accepted, receipts


async def test_back_pressure_blocks_and_is_cancellable(cluster: Produced) -> None:
    config = ProducerConfig(partition_buffer_limit=3, max_batch_size=100, required_acks=1)
    cluster.hold()
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, config)
        accepted, receipts = await produce_until_stuck(client, numbered(1000))
        # The broker holds the first request: the channel fills, the producer waits.
        assert 3 <= len(accepted) < 20
        # Everything accepted is delivered, in order.
        cluster.release()
        offsets = [await receipt for receipt in receipts]
    assert offsets == list(range(len(accepted)))
    assert cluster.values() == accepted


def _record_size(value: bytes) -> int:
    """What one keyless, headerless message counts against ``partition_buffer_bytes``."""
    return estimate_record_size(None, value, ())


def _byte_bound_config(limit_in_messages: int) -> ProducerConfig:
    """One message per batch, one request on the wire, and room in the channel for
    ``limit_in_messages`` 100-byte messages: easy to count where each message is."""
    size = _record_size(b"x" * 100)
    return ProducerConfig(
        required_acks=1,
        max_batch_size=size,
        partition_onwire_limit=1,
        partition_buffer_bytes=limit_in_messages * size,
        flush_timeout=0.2,
    )


async def _fill_until_blocked(client: Any, values: list[bytes]) -> list[DeliveryReceipt]:
    """Produce ``values`` one by one, letting the worker take what it takes after each."""
    receipts = []
    for value in values:
        receipts.append(await client.produce(TOPIC, value, partition=0))
        await trio.testing.wait_all_tasks_blocked()
    return receipts


async def test_back_pressure_counts_bytes(cluster: Produced) -> None:
    # Many calls fit the call limit; the byte limit is what stops them.
    config = _byte_bound_config(limit_in_messages=4)
    cluster.hold()
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, config)
        values = [value.ljust(100, b".") for value in numbered(1000)]
        accepted, receipts = await produce_until_stuck(client, values)
        # 1 on the wire (held) + 2 in the worker's batches + 4 in the channel.
        assert len(accepted) == 7
        cluster.release()
        offsets = [await receipt for receipt in receipts]
    assert offsets == list(range(7))
    assert cluster.values() == accepted


async def test_a_call_larger_than_the_byte_limit_goes_alone(cluster: Produced) -> None:
    config = ProducerConfig(required_acks=1, partition_buffer_bytes=1000)
    big = [(None, b"%03d" % i + b"y" * 97) for i in range(50)]  # about 6 KB of records
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, config)
        assert await (await client.produce_batch(TOPIC, big, partition=0)) == 0
        assert await (await client.produce_batch(TOPIC, big, partition=0)) == 50
    assert cluster.values() == [value for _, value in big] * 2


async def test_byte_waiters_go_first_come_first_served(cluster: Produced) -> None:
    value = b"v" * 100
    cluster.hold()
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, _byte_bound_config(limit_in_messages=5))
        # 1 on the wire, 2 in the worker's batches, 3 of the channel's 5 messages of room.
        earlier = await _fill_until_blocked(client, [b"%d" % i + value for i in range(6)])
        order: list[str] = []

        async def produce_batch_of_three() -> None:
            messages = [(None, b"a%d" % i + value) for i in range(3)]
            await client.produce_batch(TOPIC, messages, partition=0)
            order.append("batch")

        async def produce_one() -> None:
            await client.produce(TOPIC, b"b" + value, partition=0)
            order.append("one")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce_batch_of_three)  # 3 + 3 > 5: waits
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(produce_one)  # 3 + 1 would fit, but it came second
            await trio.testing.wait_all_tasks_blocked()
            assert order == []
            cluster.release()
        assert order == ["batch", "one"]
        assert [await receipt for receipt in earlier] == list(range(6))
    assert cluster.values()[6:] == [b"a0" + value, b"a1" + value, b"a2" + value, b"b" + value]


async def test_a_cancelled_byte_waiter_lets_the_next_one_in(cluster: Produced) -> None:
    value = b"v" * 100
    cluster.hold()
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, _byte_bound_config(limit_in_messages=5))
        await _fill_until_blocked(client, [b"%d" % i + value for i in range(6)])
        accepted: list[str] = []

        async def produce_batch_of_three() -> None:
            await client.produce_batch(TOPIC, [(None, value)] * 3, partition=0)
            accepted.append("batch")

        async def produce_one() -> None:
            await client.produce(TOPIC, b"b" + value, partition=0)
            accepted.append("one")

        async with trio.open_nursery() as nursery:
            big_scope = trio.CancelScope()
            nursery.start_soon(_run_in, big_scope, produce_batch_of_three)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(produce_one)
            await trio.testing.wait_all_tasks_blocked()
            assert accepted == []  # behind the batch
            big_scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            # The batch was never accepted; the message behind it now fits, with the broker
            # still holding everything.
            assert accepted == ["one"]
        cluster.release()
    assert cluster.values()[6:] == [b"b" + value]


async def _run_in(scope: trio.CancelScope, function: Callable[[], Any]) -> None:
    with scope:
        await function()


async def test_closing_wakes_byte_waiters_with_producer_closed(cluster: Produced) -> None:
    value = b"v" * 100
    cluster.hold()
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, _byte_bound_config(limit_in_messages=2))
        earlier = await _fill_until_blocked(client, [value] * 5)
        outcome: list[BaseException] = []

        async def produce_one() -> None:
            try:
                await client.produce(TOPIC, value, partition=0)
            except ProducerClosed as exc:
                outcome.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce_one)
            await trio.testing.wait_all_tasks_blocked()
            assert outcome == []
            await client.stop_producer(TOPIC)  # the broker never answers: gives up after 0.2 s
        assert len(outcome) == 1
        for receipt in earlier:
            with pytest.raises(ProducerClosed):
                await receipt
        cluster.release()


async def test_calls_in_flight_are_hidden_from_the_collector(cluster: Produced) -> None:
    # With the C extension, the cycle collector does not walk calls the producer holds.
    in_flight_tracked = records_module.IMPLEMENTATION != "c"
    cluster.hold()
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, ProducerConfig(required_acks=1))
        receipts = [await client.produce(TOPIC, b"%d" % i, partition=0) for i in range(3)]
        batch = await client.produce_batch(TOPIC, [(None, b"a"), (None, b"b")], partition=0)
        await trio.testing.wait_all_tasks_blocked()
        assert [gc.is_tracked(r) for r in [*receipts, batch]] == [in_flight_tracked] * 4
        if not in_flight_tracked:  # and their records (a list for the batch)
            held = [cast(Any, r).records for r in [*receipts, batch]]
            assert [len(records) for records in held] == [1, 1, 1, 2]
            assert not any(gc.is_tracked(records) for records in held)
        cluster.release()
        assert [await r for r in receipts] == [0, 1, 2]
        assert await batch == 3
        # Resolved: ordinary objects again.
        assert all(gc.is_tracked(r) for r in [*receipts, batch])


async def test_failed_calls_are_left_to_the_collector_again(cluster: Produced) -> None:
    # A failed receipt holds its error, whose traceback may lead back to it: the collector
    # must see it again.
    cluster.hold()
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, ProducerConfig(required_acks=1, flush_timeout=0.05))
        sent = await client.produce(TOPIC, b"on the wire", partition=0)
        await trio.testing.wait_all_tasks_blocked()
        queued = await client.produce(TOPIC, b"still in the buffer", partition=0)
        await client.stop_producer(TOPIC)  # never acknowledged: both fail
        for receipt in (sent, queued):
            with pytest.raises(ProducerClosed):
                await receipt
            assert gc.is_tracked(receipt)
        cluster.release()


async def test_an_idle_producer_keeps_nothing_it_sent(cluster: Produced) -> None:
    # Once acknowledged, a batch is the receipts' business only: an idle partition worker,
    # its connection's writer and reader must not keep the last batch, request or response
    # (with their records and bytes) alive until the next message comes. (Not counted:
    # ProduceRequest, which the fake broker keeps its own decoded copies of.)
    kinds = (Call, WireBatch, Part, PendingResponse, ProduceResponse)
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, ProducerConfig(required_acks=1))
        await trio.testing.wait_all_tasks_blocked()
        before = alive(*kinds)
        receipts = [await client.produce(TOPIC, b"%d" % i, partition=0) for i in range(3)]
        receipts.append(await client.produce_batch(TOPIC, [(None, b"a")], partition=0))
        assert [await r for r in receipts] == [0, 1, 2, 3]
        del receipts
        await trio.testing.wait_all_tasks_blocked()
        assert alive(*kinds) == before


async def test_a_producer_idle_after_a_retry_keeps_nothing_it_sent(cluster: Produced) -> None:
    # The broker closed the idle connection (as Kafka does after connections.max.idle.ms),
    # so the next batch could not be sent and went again over a new one. The error that
    # made the worker reconnect, and through its traceback the batch it was raised over,
    # must not stay alive while the worker then idles.
    kinds = (Call, WireBatch, Part, PendingResponse, ProduceResponse)
    async with open_client(cluster.bootstrap, reconnect_cool_down=0) as client:
        await client.start_producer(TOPIC, quick(required_acks=1))
        await trio.testing.wait_all_tasks_blocked()
        before = alive(*kinds)
        assert await (await client.produce(TOPIC, b"a", partition=0)) == 0
        await cluster.fake.stop_broker(1)  # every connection closed
        await cluster.fake.start_broker(1)
        await trio.testing.wait_all_tasks_blocked()
        connections = cluster.connections
        assert await (await client.produce(TOPIC, b"b", partition=0)) == 1
        assert cluster.connections > connections  # it did go again
        await trio.testing.wait_all_tasks_blocked()
        assert alive(*kinds) == before


# ------------------------------------------------------------------------------ closing


async def test_leaving_the_block_flushes(cluster: Produced, nursery: trio.Nursery) -> None:
    cluster.hold()

    async def release_later() -> None:
        await trio.sleep(0.2)
        cluster.release()

    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, ProducerConfig(max_batch_size=50))
        receipts = [await client.produce(TOPIC, value, partition=0) for value in numbered(20)]
        nursery.start_soon(release_later)
    assert [receipt.result() for receipt in receipts] == list(range(20))
    assert cluster.values() == numbered(20)


async def test_flush_timeout_bounds_the_close(cluster: Produced) -> None:
    cluster.actions.extend([IGNORE] * 10)
    before = count_tasks()
    start = trio.current_time()
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, ProducerConfig(flush_timeout=0.3))
        receipts = [await client.produce(TOPIC, value, partition=0) for value in numbered(5)]
    assert 0.3 <= trio.current_time() - start < 5
    for receipt in receipts:
        with pytest.raises(ProducerClosed, match="flush_timeout"):
            receipt.result()
    assert count_tasks() == before


async def test_cancelling_the_block_fails_receipts_clearly(cluster: Produced) -> None:
    cluster.hold()
    before = count_tasks()
    receipts: list[DeliveryReceipt] = []
    with trio.move_on_after(0.3) as scope:
        async with open_client(cluster.bootstrap) as client:
            await client.start_producer(TOPIC)
            receipts += [await client.produce(TOPIC, value, partition=0) for value in numbered(5)]
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert count_tasks() == before
    for receipt in receipts:
        assert receipt.done()
        with pytest.raises(ProducerClosed, match="cancelled"):
            await receipt
    cluster.release()


async def test_closed_producer_refuses_messages(cluster: Produced) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC)
        producer = await client.get_producer(TOPIC, 0)
        await client.stop_producer(TOPIC)
        with pytest.raises(ProducerClosed, match="closed"):
            await producer.produce(b"late")
    with pytest.raises(ClientClosed):
        await client.start_producer(TOPIC)
    with pytest.raises(ProducerClosed):
        await producer.produce(b"later")


async def test_stop_then_start_again_continues_the_sequence(cluster: Produced) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC)
        await client.produce_sync(TOPIC, b"a", partition=0)
        await client.stop_producer(TOPIC)
        await client.start_producer(TOPIC)
        await client.produce_sync(TOPIC, b"b", partition=0)
    pid = cluster.sent[0].producer_id
    assert [(s.producer_id, s.epoch, s.base_sequence) for s in cluster.sent] == [
        (pid, 0, 0),
        (pid, 0, 1),
    ]
    assert cluster.init_producer_id_calls == 1


async def test_a_producer_stopped_with_a_batch_unanswered_leaves_a_new_epoch(
    cluster: Produced,
) -> None:
    # The flush times out with a batch on the wire, which the broker then refuses: its
    # sequence numbers are a gap. The next producer of the partition starts a new epoch at
    # 0 rather than continue after the gap into an OUT_OF_ORDER_SEQUENCE_NUMBER (with no
    # retries, that error would be what its first message fails with).
    config = ProducerConfig(flush_timeout=0.1, max_retries=0)
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, config)
        await client.produce_sync(TOPIC, b"a", partition=0)
        cluster.hold()
        lost = await client.produce(TOPIC, b"lost", partition=0)
        await trio.testing.wait_all_tasks_blocked(0.1)
        await client.stop_producer(TOPIC)
        assert isinstance(lost.exception(), ProducerClosed)
        cluster.release(NOT_ENOUGH_REPLICAS)
        await client.start_producer(TOPIC, config)
        assert await client.produce_sync(TOPIC, b"b", partition=0) == 1
    assert [(s.epoch, s.base_sequence, s.values) for s in cluster.sent] == [
        (0, 0, [b"a"]),
        (0, 1, [b"lost"]),
        (1, 0, [b"b"]),
    ]
    assert cluster.values() == [b"a", b"b"]


# ------------------------------------------------------------------------------ receipts


async def test_callbacks_run_and_a_raising_one_surfaces(cluster: Produced) -> None:
    seen: list[tuple[int, int]] = []

    def record(receipt: DeliveryReceipt) -> None:
        seen.append((receipt.partition, receipt.result()))

    def explode(receipt: DeliveryReceipt) -> None:
        raise KeyError("from a callback")

    receipts: list[DeliveryReceipt] = []

    async def run() -> None:
        async with open_client(cluster.bootstrap) as client:
            # One message per batch: the third is still waiting when the second is done.
            await client.start_producer(TOPIC, ProducerConfig(max_batch_size=10))
            first = await client.produce(TOPIC, b"a", partition=0)
            first.add_done_callback(record)
            await first
            first.add_done_callback(record)  # already done: runs at once
            assert seen == [(0, 0), (0, 0)]
            cluster.hold()
            second = await client.produce(TOPIC, b"b", partition=0)
            second.add_done_callback(explode)
            second.add_done_callback(record)
            third = await client.produce(TOPIC, b"c", partition=0)
            receipts.extend([second, third])
            await trio.testing.wait_all_tasks_blocked(0.1)
            cluster.release()
            await trio.sleep_forever()  # the callback's error cancels the block

    with pytest.raises(KeyError, match="from a callback"):
        await run()
    # The raising callback did not keep the other from running, nor the receipt from
    # completing; the worker then stopped, failing what it still held.
    assert seen == [(0, 0), (0, 0), (0, 1)]
    second, third = receipts
    assert second.result() == 1
    with pytest.raises(ProducerClosed, match="crashed") as info:
        third.result()
    assert isinstance(info.value.__cause__, KeyError)


# ------------------------------------------------------------------------------ failures


async def test_retries_exhausted_fail_with_the_brokers_error(cluster: Produced) -> None:
    cluster.actions.extend([NOT_ENOUGH_REPLICAS] * 3)
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, quick(max_retries=2))
        receipt = await client.produce(TOPIC, b"doomed", partition=0)
        with pytest.raises(NotEnoughReplicasError, match=r"orders\[0\]") as info:
            await receipt
        assert isinstance(receipt.exception(), NotEnoughReplicasError)
        assert info.value.retriable
        # The worker goes on with the next message.
        assert await client.produce_sync(TOPIC, b"next", partition=0) == 0
    assert [s.values for s in cluster.sent] == [[b"doomed"]] * 3 + [[b"next"]]
    assert cluster.values() == [b"next"]


async def test_a_retry_succeeds_within_max_retries(cluster: Produced) -> None:
    cluster.actions.extend([NOT_ENOUGH_REPLICAS] * 2)
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, quick(max_retries=2))
        assert await client.produce_sync(TOPIC, b"v", partition=0) == 0
    assert len(cluster.sent) == 3


async def test_non_retriable_error_fails_at_once(cluster: Produced) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, quick(max_retries=5))
        assert await client.produce_sync(TOPIC, b"first", partition=0) == 0
        cluster.actions.append(INVALID_RECORD)
        with pytest.raises(InvalidRecordError):
            await client.produce_sync(TOPIC, b"bad", partition=0)
        # Giving it up leaves a gap in the sequence numbers: the next message starts a new
        # epoch at 0 instead of running into an OUT_OF_ORDER_SEQUENCE_NUMBER.
        assert await client.produce_sync(TOPIC, b"good", partition=0) == 1
    assert [(s.epoch, s.base_sequence, s.values) for s in cluster.sent] == [
        (0, 0, [b"first"]),
        (0, 1, [b"bad"]),
        (1, 0, [b"good"]),
    ]


async def test_batches_behind_one_given_up_are_renumbered_not_refused(
    cluster: Produced,
) -> None:
    # Too few in-sync replicas for a while (the broker refuses before appending), with five
    # one-message batches in flight. Those out of retries fail with the broker's error, all
    # of them (not only the first): none is sent more than max_retries + 1 times. The rest
    # start a new epoch at sequence 0 instead of the numbers after the gap, and go through
    # once the replicas are back: no OUT_OF_ORDER_SEQUENCE_NUMBER the producer made itself.
    max_retries = 3
    config = quick(partition_onwire_limit=5, max_batch_size=10, max_retries=max_retries)
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, config)
        assert await client.produce_sync(TOPIC, b"pre", partition=0) == 0
        cluster.hold()
        receipts = [await client.produce(TOPIC, v, partition=0) for v in numbered(10)]
        await trio.testing.wait_all_tasks_blocked(0.1)
        # The held request, and the next 21.
        cluster.actions.extend([NOT_ENOUGH_REPLICAS] * 21)
        cluster.release(NOT_ENOUGH_REPLICAS)
        outcomes = []
        for receipt in receipts:
            with contextlib.suppress(NotEnoughReplicasError):
                await receipt
            outcomes.append(receipt.exception() or receipt.result())
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(error, NotEnoughReplicasError) for error in failed)
    assert len(failed) == 5  # m0-m4: four rounds of five refusals, then m5, m6 once more
    assert outcomes[5:] == [1, 2, 3, 4, 5]
    assert cluster.values() == [b"pre", *numbered(5, 5)]
    for value in numbered(10):
        assert sum(value in s.values for s in cluster.sent) <= max_retries + 1
    # What was pending when m0-m4 were given up went out in a new epoch, from 0.
    first_of_rest = next(s for s in cluster.sent if s.values == [b"m5"])
    assert (first_of_rest.epoch, first_of_rest.base_sequence) == (1, 0)


async def test_waiting_out_the_reconnect_cool_down_is_not_a_retry(
    cluster: Produced, loopback_clock: trio.testing.MockClock
) -> None:
    # The request times out, so its connection is closed and the broker is in the client's
    # reconnect cool-down when the retry is due (its backoff is shorter). Waiting that out
    # is not an attempt: with one retry allowed, the retry is really sent, and succeeds.
    cluster.actions.append(IGNORE)
    async with open_client(
        cluster.bootstrap, request_timeout=0.2, reconnect_cool_down=0.5
    ) as client:
        await client.start_producer(TOPIC, quick(ack_timeout=0.1, max_retries=1))
        assert await client.produce_sync(TOPIC, b"v", partition=0) == 0
    assert cluster.values() == [b"v"]
    assert [s.values for s in cluster.sent] == [[b"v"], [b"v"]]


async def test_not_leader_moves_to_the_new_leader_in_order() -> None:
    config = quick(partition_onwire_limit=5, max_batch_size=30)
    async with serving(brokers=2) as cluster, open_client(cluster.bootstrap[:1]) as client:
        await client.start_producer(TOPIC, config)
        first = [await client.produce(TOPIC, v, partition=0) for v in numbered(10)]
        assert [await r for r in first] == list(range(10))
        metadata_calls = cluster.metadata_calls
        cluster.fake.move_leader(TOPIC, 0, 2)  # broker 1 now answers NOT_LEADER_OR_FOLLOWER
        rest = [await client.produce(TOPIC, v, partition=0) for v in numbered(40, 10)]
        assert [await r for r in rest] == list(range(10, 50))
    assert cluster.values() == numbered(50)
    assert cluster.metadata_calls > metadata_calls  # the leader was looked up again
    # Broker 1 refused the first request after the move; broker 2 got the rest, in order.
    assert any(s.node == 1 and s.values[0] == b"m10" for s in cluster.sent)
    moved = [value for s in cluster.sent if s.node == 2 for value in s.values]
    assert moved == numbered(40, 10)


async def test_lost_connection_before_the_append_is_retried(cluster: Produced) -> None:
    cluster.actions.append(HANG_UP)
    async with open_client(cluster.bootstrap, reconnect_cool_down=0) as client:
        await client.start_producer(TOPIC, quick())
        assert await client.produce_sync(TOPIC, b"v", partition=0) == 0
    assert cluster.values() == [b"v"]
    assert len(cluster.sent) == 2


async def test_lost_response_after_the_append_writes_once(cluster: Produced) -> None:
    # The broker wrote the batch but the answer never came: the retry is recognised by its
    # sequence numbers and answered with the original offset, not written again.
    cluster.actions.append(APPEND_THEN_HANG_UP)
    async with open_client(cluster.bootstrap, reconnect_cool_down=0) as client:
        await client.start_producer(TOPIC, quick())
        receipts = [await client.produce(TOPIC, v, partition=0) for v in numbered(3)]
        assert [await r for r in receipts] == [0, 1, 2]
    assert cluster.values() == numbered(3)
    first, retry = cluster.sent[0], cluster.sent[1]
    assert (retry.epoch, retry.base_sequence, retry.values) == (
        first.epoch,
        first.base_sequence,
        first.values,
    )


async def test_request_timeout_closes_the_connection_and_retries(cluster: Produced) -> None:
    cluster.actions.append(IGNORE)
    async with open_client(cluster.bootstrap, request_timeout=0.2, reconnect_cool_down=0) as client:
        await client.start_producer(TOPIC, quick(ack_timeout=0.1))
        assert await client.produce_sync(TOPIC, b"v", partition=0) == 0
    assert cluster.values() == [b"v"]
    assert len(cluster.sent) == 2


async def test_too_large_batches_are_split_keeping_sequences(cluster: Produced) -> None:
    cluster.max_records_per_batch = 1
    config = ProducerConfig(max_linger=0.2, max_linger_count=4)
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, config)
        receipts = [await client.produce(TOPIC, v, partition=0) for v in numbered(4)]
        assert [await r for r in receipts] == [0, 1, 2, 3]
    assert cluster.values() == numbered(4)
    assert [(s.base_sequence, len(s.values)) for s in cluster.sent] == [
        (0, 4),  # refused: too large
        (0, 2),  # the first half, refused again
        (0, 1),
        (1, 1),
        (2, 2),  # the second half, refused again
        (2, 1),
        (3, 1),
    ]


# ------------------------------------------------------------------------------ idempotence


async def test_sequence_numbers_follow_the_records(cluster: Produced) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC)
        for size in (2, 3, 1):
            receipt = await client.produce_batch(TOPIC, [(None, b"v")] * size, partition=0)
            await receipt
    pid = cluster.sent[0].producer_id
    assert [(s.producer_id, s.epoch, s.base_sequence) for s in cluster.sent] == [
        (pid, 0, 0),
        (pid, 0, 2),
        (pid, 0, 5),
    ]


@pytest.mark.parametrize("code", [OUT_OF_ORDER, UNKNOWN_PRODUCER])
async def test_sequence_gap_bumps_the_epoch(cluster: Produced, code: Scripted) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC)
        await client.produce_sync(TOPIC, b"a", partition=0)
        cluster.actions.append(code)
        assert await client.produce_sync(TOPIC, b"b", partition=0) == 1
        assert await client.produce_sync(TOPIC, b"c", partition=0) == 2
    pid = cluster.sent[0].producer_id
    assert [(s.producer_id, s.epoch, s.base_sequence, s.values) for s in cluster.sent] == [
        (pid, 0, 0, [b"a"]),
        (pid, 0, 1, [b"b"]),  # refused
        (pid, 1, 0, [b"b"]),  # a new epoch starts at sequence 0
        (pid, 1, 1, [b"c"]),
    ]
    assert cluster.values() == [b"a", b"b", b"c"]
    assert cluster.init_producer_id_calls == 1  # the epoch is bumped locally


async def test_stale_epoch_gets_a_fresh_producer_id(cluster: Produced) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC)
        cluster.actions.append(INVALID_EPOCH)
        assert await client.produce_sync(TOPIC, b"a", partition=0) == 0
    pid = cluster.sent[0].producer_id
    assert [(s.producer_id, s.epoch, s.base_sequence) for s in cluster.sent] == [
        (pid, 0, 0),
        (pid + 1, 0, 0),
    ]
    assert cluster.init_producer_id_calls == 2


async def test_the_last_epoch_is_followed_by_a_fresh_producer_id(cluster: Produced) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC)
        await client.produce_sync(TOPIC, b"a", partition=0)
        producer = await client.get_producer(TOPIC, 0)
        assert producer._sequence is not None
        producer._sequence.epoch = 32767  # epochs are int16: there is no next one
        cluster.actions.append(OUT_OF_ORDER)
        assert await client.produce_sync(TOPIC, b"b", partition=0) == 1
    pid = cluster.sent[0].producer_id
    assert [(s.producer_id, s.epoch, s.base_sequence) for s in cluster.sent] == [
        (pid, 0, 0),
        (pid, 32767, 1),
        (pid + 1, 0, 0),
    ]


async def test_out_of_order_after_an_earlier_failure_keeps_the_epoch(
    cluster: Produced,
) -> None:
    # Two requests in flight: the first fails (retriable), so the second is out of order
    # only because the first is missing. Both go again, same epoch, same sequence numbers.
    config = quick(partition_onwire_limit=2, max_batch_size=10)
    cluster.hold()
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, config)
        a = await client.produce(TOPIC, b"a", partition=0)
        b = await client.produce(TOPIC, b"b", partition=0)
        await trio.testing.wait_all_tasks_blocked(0.1)
        cluster.actions.append(OUT_OF_ORDER)
        cluster.release(NOT_ENOUGH_REPLICAS)
        assert (await a, await b) == (0, 1)
    assert [(s.epoch, s.base_sequence, s.values) for s in cluster.sent] == [
        (0, 0, [b"a"]),
        (0, 1, [b"b"]),
        (0, 0, [b"a"]),
        (0, 1, [b"b"]),
    ]


async def test_a_loading_coordinator_does_not_use_up_retries(cluster: Produced) -> None:
    # Right after a broker starts, InitProducerId answers COORDINATOR_LOAD_IN_PROGRESS for
    # a while; that is retried on its own, not counted against the message.
    cluster.fake.fail(InitProducerIdRequest, CoordinatorLoadInProgressError, times=2)
    cluster.fake.fail(InitProducerIdRequest, CoordinatorNotAvailableError)
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, ProducerConfig(max_retries=0))
        assert await client.produce_sync(TOPIC, b"v", partition=0) == 0
    assert cluster.init_producer_id_calls == 4


async def test_a_refused_producer_id_fails_the_messages(cluster: Produced) -> None:
    cluster.fake.fail(InitProducerIdRequest, ClusterAuthorizationFailedError)
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC)
        with pytest.raises(KafkaError, match="CLUSTER_AUTHORIZATION_FAILED"):
            await client.produce_sync(TOPIC, b"v", partition=0)
    assert cluster.sent == []


async def test_idempotence_off_sends_no_producer_id(cluster: Produced) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, ProducerConfig(enable_idempotence=False))
        await client.produce_sync(TOPIC, b"v", partition=0)
    assert cluster.init_producer_id_calls == 0
    assert (cluster.sent[0].producer_id, cluster.sent[0].base_sequence) == (-1, -1)


# ------------------------------------------------------------------------------ acks, linger


@pytest.mark.parametrize("codec", list(Compression))
async def test_the_configured_codec_is_on_the_wire(cluster: Produced, codec: Compression) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, ProducerConfig(compression=codec))
        receipt = await client.produce_batch(TOPIC, [(None, b"abc" * 100)] * 5, partition=0)
        await receipt
    assert [s.compression for s in cluster.sent] == [codec]
    assert cluster.values() == [b"abc" * 100] * 5


async def test_acks_zero_completes_when_written(cluster: Produced) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, ProducerConfig(required_acks=0))
        receipts = [await client.produce(TOPIC, v, partition=0) for v in numbered(5)]
        assert [await r for r in receipts] == [-1] * 5
    # Leaving the block waited for the writes, not for answers (the broker sends none).
    assert cluster.values() == numbered(5)
    assert {s.acks for s in cluster.sent} == {0}


async def test_linger_gathers_messages_into_one_batch(cluster: Produced) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, ProducerConfig(max_linger=0.2))
        receipts = []
        for value in numbered(3):
            receipts.append(await client.produce(TOPIC, value, partition=0))
            await trio.sleep(0.01)  # let the worker run: it lingers instead of sending
        start = trio.current_time()
        await receipts[-1]
        assert trio.current_time() - start < 0.5
    assert [s.values for s in cluster.sent] == [numbered(3)]


async def test_linger_count_sends_before_the_time(cluster: Produced) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, ProducerConfig(max_linger=30, max_linger_count=2))
        receipts = []
        for value in numbered(2):
            receipts.append(await client.produce(TOPIC, value, partition=0))
            await trio.sleep(0.01)
        with trio.fail_after(5):
            assert [await r for r in receipts] == [0, 1]
    assert [s.values for s in cluster.sent] == [numbered(2)]


async def test_flush_ends_the_linger_and_waits_for_delivery(cluster: Produced) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, ProducerConfig(max_linger=30))
        producer = await client.get_producer(TOPIC, 0)
        receipts = [await producer.produce(value) for value in numbered(3)]
        with trio.fail_after(5):
            await producer.flush()
        assert [receipt.result() for receipt in receipts] == [0, 1, 2]
        # Nothing to flush: returns at once.
        with trio.fail_after(1):
            await producer.flush()
    assert [s.values for s in cluster.sent] == [numbered(3)]


async def test_produce_batch_messages_keep_their_fields(cluster: Produced) -> None:
    async with open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC)
        receipt = await client.produce_batch(
            TOPIC,
            [
                Message(b"v1", key=b"k1", headers=[("h", b"x")], timestamp=1_600_000_000_000),
                (b"k2", b"v2"),
                Message(None),
            ],
            partition=0,
        )
        assert await receipt == 0
    assert cluster.values() == [b"v1", b"v2", None]
    assert [len(s.values) for s in cluster.sent] == [3]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(plain_messages, max_size=8),
    st.lists(odd_messages, max_size=3),
    st.integers(0, 8),
    st.sampled_from([list, tuple]),
)
def test_produce_batch_is_the_same_with_and_without_the_c_path(
    plain: list[Any], odd: list[Any], at: int, container: Callable[[list[Any]], Sequence[Any]]
) -> None:
    messages = container(plain[:at] + odd + plain[at:])  # the odd ones anywhere, or none
    with_c = batch_outcome(messages, c_path=True)
    assert with_c == batch_outcome(messages, c_path=False)
    if plain and not odd:
        assert with_c.startswith("list ")  # records, not an error


@pytest.mark.parametrize("c_path", [True, False])
def test_produce_batch_takes_any_iterable(c_path: bool) -> None:
    messages = [(b"k", b"v"), Message(b"w"), (None, None)]
    expected = batch_outcome(messages, c_path=False)
    assert f"[({NOW}, b'k', b'v', ()), ({NOW}, None, b'w', ())," in expected
    assert expected.endswith(f"size {3 * producer_module._EMPTY_RECORD_SIZE + 3}")
    for given_messages in (iter(messages), (m for m in messages), deque(messages)):
        assert batch_outcome(given_messages, c_path=c_path) == expected


@pytest.mark.parametrize("c_path", [True, False])
@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ([b"k", b"v"], "expected a Message or a (key, value) tuple, not [b'k', b'v']"),
        ((b"k",), "expected a Message or a (key, value) tuple, not (b'k',)"),
        ((b"k", b"v", b"x"), "expected a Message or a (key, value) tuple, not (b'k', b'v', b'x')"),
        (None, "expected a Message or a (key, value) tuple, not None"),
        ((b"k", "text"), "value must be bytes, bytearray, memoryview or None, not str"),
        (("k", b"v"), "key must be bytes, bytearray, memoryview or None, not str"),
        (Message(5), "value must be bytes, bytearray, memoryview or None, not int"),  # type: ignore[arg-type]
        (
            Message(b"v", timestamp=-1),
            "ValueError: timestamp must be milliseconds since the epoch, from 0 to 2**63-1, not -1",
        ),
        (
            Message(b"v", timestamp=2**63),
            "ValueError: timestamp must be milliseconds since the epoch, from 0 to 2**63-1, "
            f"not {2**63}",
        ),
        (
            Message(b"v", timestamp=1.5),  # type: ignore[arg-type]
            "timestamp must be an int of milliseconds since the epoch (or None for now), not float",
        ),
        (Message(b"v", headers=[(b"h", None)]), "header 0 name must be a str, not bytes"),  # type: ignore[list-item]
        (
            Message(b"v", headers=[("a", None), ["h", None]]),  # type: ignore[list-item]
            "header 1 must be a (name, value) tuple, not ['h', None]",
        ),
        (
            Message(b"v", headers=[("a", b""), ("h", "text")]),  # type: ignore[list-item]
            "header 'h' value must be bytes, bytearray, memoryview or None, not str",
        ),
        (
            Message(b"v", headers={"h": b"x"}),  # type: ignore[arg-type]
            "headers must be a sequence of (name, value) pairs, name a str and value bytes "
            "or None, not dict (for a dict, pass list(headers.items()))",
        ),
    ],
)
def test_produce_batch_names_the_bad_message(bad: Any, error: str, c_path: bool) -> None:
    messages = [(b"k", b"v"), bad, (b"k", b"v")]
    if error.startswith("ValueError: "):
        kind, text = "ValueError", error.removeprefix("ValueError: ")
    else:
        kind, text = "TypeError", error
    assert batch_outcome(messages, c_path=c_path) == f"{kind}: message 1: {text}"


Fields = tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]


def sent_despite_changes(
    messages: list[Fields], *, wrap: list[int], batch: bool, c_path: bool
) -> list[Fields]:
    """What a producer sends for ``messages`` (key, value, headers) when every bytes field is
    given as bytes, a bytearray or a memoryview of one (``wrap``, cycled: 0, 1, 2), and every
    bytearray is overwritten right after the call has returned.

    The queued records are encoded and decoded as the worker and the broker would.
    """
    kinds = itertools.cycle(wrap)
    buffers: list[bytearray] = []

    def given(data: bytes | None) -> Any:
        kind = next(kinds)
        if data is None or kind == 0:
            return data
        buffers.append(bytearray(data))
        return buffers[-1] if kind == 1 else memoryview(buffers[-1])

    async def produce() -> list[Fields]:
        producer = PartitionProducer(cast(Any, None), TOPIC, 0, ProducerConfig(), None)
        given_messages = [
            (given(key), given(value), [(name, given(data)) for name, data in headers])
            for key, value, headers in messages
        ]
        if batch:
            await producer.produce_batch(
                [Message(value, key, headers) for key, value, headers in given_messages]
            )
        else:
            for key, value, headers in given_messages:
                await producer.produce(value, key, headers=headers)
        for data in buffers:  # the same length: a viewed bytearray cannot be resized
            data[:] = bytes(255 - byte for byte in data)
        records: list[Any] = []
        while True:
            try:
                records.extend(producer._receive_channel.receive_nowait().records)
            except trio.WouldBlock:
                break
        (decoded,) = decode_batches(encode_batch(records)).batches
        return [(r.key, r.value, list(r.headers)) for r in decoded.records()]

    with pytest.MonkeyPatch.context() as patch:
        if not c_path:
            patch.setattr(producer_module, "_c_prepare_records", None)
        return trio.run(produce)


nonempty_data = st.binary(min_size=1, max_size=6)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.none() | nonempty_data,
            st.none() | nonempty_data,
            st.lists(st.tuples(st.text(max_size=3), st.none() | nonempty_data), max_size=3),
        ),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.integers(0, 2), min_size=1, max_size=8),
    st.booleans(),
    st.booleans(),
)
def test_what_is_sent_is_what_was_passed_at_the_call(
    messages: list[Fields], wrap: list[int], batch: bool, c_path: bool
) -> None:
    assert sent_despite_changes(messages, wrap=wrap, batch=batch, c_path=c_path) == messages


@pytest.mark.parametrize("c_path", [True, False])
def test_produce_batch_checks_emptiness_and_size_on_both_paths(c_path: bool) -> None:
    empty = "ValueError: produce_batch needs at least one message"
    empties: list[Any] = [[], (), iter([])]
    for messages in empties:
        assert batch_outcome(messages, c_path=c_path) == empty
    limit = 1000
    fits = [(None, b"x" * 300)] * 2
    too_large = [(None, b"x" * 300)] * 3
    assert batch_outcome(fits, c_path=c_path, max_request_size=limit).startswith("list")
    assert batch_outcome(too_large, c_path=c_path, max_request_size=limit).startswith(
        "MessageTooLarge: "
    )
    assert batch_outcome(too_large, c_path=c_path, max_request_size=limit) == batch_outcome(
        too_large, c_path=False, max_request_size=limit
    )


@pytest.mark.parametrize("failure", [HANG_UP, APPEND_THEN_HANG_UP, NOT_ENOUGH_REPLICAS])
async def test_a_failure_with_requests_in_flight_keeps_the_order(
    cluster: Produced, failure: Scripted
) -> None:
    # Five requests in flight; the first one fails. Everything after it goes again, in
    # order, and the log holds each message once, in order.
    config = quick(partition_onwire_limit=5, max_batch_size=10)
    async with open_client(cluster.bootstrap, reconnect_cool_down=0) as client:
        await client.start_producer(TOPIC, config)
        assert await client.produce_sync(TOPIC, b"first", partition=0) == 0
        cluster.hold()
        receipts = [await client.produce(TOPIC, v, partition=0) for v in numbered(12)]
        await trio.testing.wait_all_tasks_blocked(0.1)
        cluster.release(failure)
        assert [await r for r in receipts] == list(range(1, 13))
    assert cluster.values() == [b"first", *numbered(12)]
    # The failed request went again (and so did the ones behind it).
    assert [s.values for s in cluster.sent].count([b"m0"]) == 2
