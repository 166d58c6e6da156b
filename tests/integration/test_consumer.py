"""Consuming from a real Kafka broker what librdkafka (confluent-kafka) wrote.

Every test compares what trio-brod delivers, message by message, with what the other
client produced and the offsets the broker gave it.
"""

from __future__ import annotations

import datetime
import functools
import time
from collections.abc import Sequence
from typing import Any

import pytest
import trio
import trio.testing

from tests.consumer_peers import (
    Message,
    Sent,
    delete_records,
    produce,
    random_messages,
    transactional_producer,
)
from tests.task_tree import count_tasks
from trio_brod import ConsumerConfig, MessageSet, Subscription, Timestamp, open_client
from trio_brod._config import FetchConnection
from trio_brod.consumer._fetch import fetch_request
from trio_brod.protocol import FetchRequest
from trio_brod.protocol.errors import OffsetOutOfRangeError
from trio_brod.protocol.records import Compression, RecordBatch, decode_batches
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.integration

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


async def in_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    return await trio.to_thread.run_sync(functools.partial(function, *args, **kwargs))


async def consume(subscription: Subscription, until: int) -> list[MessageSet]:
    """Message sets (acknowledged one by one) until the offset before ``until``, in 30 s."""
    sets: list[MessageSet] = []
    with trio.fail_after(30):
        async for message_set in subscription:
            sets.append(message_set)
            subscription.ack(message_set.high_offset)
            if message_set.high_offset >= until - 1:
                break
    return sets


def check_same(sets: Sequence[MessageSet], sent: Sequence[Sent]) -> None:
    """The sets hold exactly the messages sent, in order, byte for byte."""
    records = [record for message_set in sets for record in message_set]
    assert [r.offset for r in records] == [s.offset for s in sent]
    mismatched = [(r, s) for r, s in zip(records, sent, strict=True) if not s.matches(r)]
    assert not mismatched, mismatched[:3]


# ------------------------------------------------------------------ exactly what was written


async def test_100k_messages_of_every_codec_exactly(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=len(CODECS))
    per_partition = 20_000
    sent: dict[int, list[Sent]] = {}
    for partition, codec in enumerate(CODECS):
        messages = random_messages(per_partition, seed=partition)
        sent[partition] = await in_thread(
            produce, bootstrap_servers, topic, partition, messages, compression_type=codec
        )
    received: dict[int, list[MessageSet]] = {}
    async with open_client(bootstrap_servers) as client:

        async def consume_partition(partition: int) -> None:
            async with client.subscribe(topic, partition, begin_offset="earliest") as sub:
                received[partition] = await consume(sub, per_partition)

        async with trio.open_nursery() as nursery:
            for partition in range(len(CODECS)):
                nursery.start_soon(consume_partition, partition)
    for partition, codec in enumerate(CODECS):
        sets = received[partition]
        # The batches are really compressed with that codec.
        codecs = {run.batch.compression for s in sets for run in s._runs}
        assert codecs == {Compression[codec.upper()]}
        check_same(sets, sent[partition])
    assert sum(len(s) for sets in received.values() for s in sets) == 100_000


async def test_counting_decodes_no_records(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic()
    # Batches of up to 10,000 messages, more than the default prefetch_count of 1000:
    # the window splits them, and splitting must not decode either.
    await in_thread(
        produce,
        bootstrap_servers,
        topic,
        0,
        (Message(b"%d" % i) for i in range(30_000)),
        compression_type="lz4",
        linger_ms=200,
    )
    batches: list[RecordBatch] = []
    count = 0
    async with (
        open_client(bootstrap_servers) as client,
        client.subscribe(topic, 0, begin_offset=7) as sub,
    ):
        with trio.fail_after(30):
            async for message_set in sub:
                count += len(message_set)
                batches += [run.batch for run in message_set._runs]
                sub.ack(message_set.high_offset)
                if message_set.high_offset == 29_999:
                    break
    assert count == 30_000 - 7
    assert max(batch.record_count for batch in batches) > 1000  # some batch was split
    # RecordBatch caches decoded records; None: never decoded, never even decompressed.
    assert all(batch._records is None for batch in batches)


# ------------------------------------------------------------------ transactions


@pytest.mark.compat
async def test_read_committed_hides_aborted_transactions(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic()
    producer = await in_thread(
        transactional_producer, bootstrap_servers, f"{topic}-tx", compression_type="zstd"
    )

    def transaction(values: list[bytes], commit: bool) -> None:
        producer.begin_transaction()
        for value in values:
            producer.produce(topic, value=value, partition=0)
        producer.flush(30)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)

    await in_thread(transaction, [b"aborted-%d" % i for i in range(50)], False)
    await in_thread(transaction, [b"committed-%d" % i for i in range(30)], True)
    await in_thread(transaction, [b"aborted-again-%d" % i for i in range(5)], False)
    await in_thread(transaction, [b"last-%d" % i for i in range(3)], True)
    # 88 data records and 4 markers.
    async with open_client(bootstrap_servers) as client:
        # commit_transaction returns once the coordinator decided; it writes the markers
        # to the partition after that, so the last one may still be on its way.
        with trio.fail_after(30):
            end = await client.resolve_offset(topic, 0, "latest")
            while end < 92:
                await trio.sleep(0.05)
                end = await client.resolve_offset(topic, 0, "latest")
        assert end == 92
        async with client.subscribe(topic, 0, begin_offset="earliest") as sub:
            committed = await consume(sub, end - 1)  # the last offset is a marker
        values = [m.value for s in committed for m in s]
        expected = [b"committed-%d" % i for i in range(30)] + [b"last-%d" % i for i in range(3)]
        assert values == expected
        async with client.subscribe(
            topic, 0, begin_offset="earliest", isolation_level="read_uncommitted"
        ) as sub:
            everything = await consume(sub, end - 1)
        offsets = [m.offset for s in everything for m in s]
        assert len(offsets) == 88
        # The markers' offsets (50, 81, 87, 91) are never messages.
        assert sorted(set(range(92)) - set(offsets)) == [50, 81, 87, 91]
        assert {m.value.split(b"-")[0] for s in everything for m in s if m.value} == {
            b"aborted",
            b"committed",
            b"last",
        }
        # One-off fetches filter the same way.
        fetched = await client.fetch(topic, 0, 0)
        assert [m.value for m in fetched] == expected


@pytest.mark.compat
async def test_read_committed_stops_at_the_last_stable_offset(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic()
    await in_thread(produce, bootstrap_servers, topic, 0, [Message(b"plain")])
    producer = await in_thread(transactional_producer, bootstrap_servers, f"{topic}-tx")

    def open_transaction() -> None:
        producer.begin_transaction()
        for i in range(10):
            producer.produce(topic, value=b"pending-%d" % i, partition=0)
        producer.flush(30)

    await in_thread(open_transaction)
    async with open_client(bootstrap_servers) as client:
        assert await client.resolve_offset(topic, 0, "latest") == 11
        stable = await client.resolve_offset(topic, 0, "latest", isolation_level="read_committed")
        assert stable == 1
        async with client.subscribe(topic, 0, begin_offset="earliest", max_wait_time=0.2) as sub:
            with trio.fail_after(10):
                first = await sub.receive()
            assert [m.value for m in first] == [b"plain"]
            assert first.high_watermark == 1  # read_committed: the last stable offset
            with trio.move_on_after(1.5):
                await sub.receive()
                pytest.fail("delivered data of an open transaction")
            sub.ack(first.high_offset)
            await in_thread(producer.commit_transaction, 30)
            with trio.fail_after(10):
                then = await sub.receive()
        assert [m.value for m in then] == [b"pending-%d" % i for i in range(10)]


# ------------------------------------------------------------------ back-pressure


async def test_no_more_than_the_prefetch_window_before_acks(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic()
    await in_thread(
        produce, bootstrap_servers, topic, 0, [Message(b"x" * 100) for _ in range(1000)]
    )

    async def until_quiet(sub: Subscription, *, expect_some: bool = True) -> list[MessageSet]:
        """What arrives until nothing more comes for half a second."""
        sets = []
        if expect_some:
            with trio.fail_after(10):
                sets.append(await sub.receive())
        while True:
            with trio.move_on_after(0.5):
                sets.append(await sub.receive())
                continue
            return sets

    async with open_client(bootstrap_servers) as client:
        # By count.
        async with client.subscribe(topic, 0, begin_offset="earliest", prefetch_count=70) as sub:
            sets = await until_quiet(sub)
            assert sum(len(s) for s in sets) == 70
            assert sub.unacked_count == 70
            sub.ack(sets[-1].high_offset - 10)  # not to the end of the last set: no room
            assert await until_quiet(sub, expect_some=False) == []
            sub.ack(sets[-1].high_offset)
            more = await until_quiet(sub)
            assert sum(len(s) for s in more) == 70
            assert more[0].first_offset == 70
        # By bytes: ~170 bytes of batch per message here.
        async with client.subscribe(
            topic, 0, begin_offset="earliest", prefetch_count=10**6, prefetch_bytes=5000
        ) as sub:
            sets = await until_quiet(sub)
            delivered = sum(s.size for s in sets)
            assert 5000 - 200 < delivered <= 5000
            assert sub.unacked_bytes == delivered
            for message_set in sets:
                sub.ack(message_set.high_offset)
            more = await until_quiet(sub)
            assert 5000 - 200 < sum(s.size for s in more) <= 5000
            assert more[0].first_offset == sets[-1].high_offset + 1


# ------------------------------------------------------------------ sizes


async def test_fetch_responses_that_cut_the_last_batch(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic()
    sent: list[Sent] = []
    for seed, codec in ((100, "none"), (101, "gzip")):  # batches of at most ~6 KB
        sent += await in_thread(
            produce,
            bootstrap_servers,
            topic,
            0,
            random_messages(500, seed=seed, max_size=200),
            compression_type=codec,
            batch_size=6000,
            linger_ms=50,
        )
    max_bytes = 9000
    async with open_client(bootstrap_servers) as client:
        # The broker does cut batches with this max_bytes (seen on the wire).
        connection = await client.get_leader_connection(topic, 0)
        topic_id = await client.metadata.topic_id(topic)
        request = fetch_request(topic, topic_id, 0, 0, max_bytes, ConsumerConfig(), 0)
        version = connection.best_version(FetchRequest, min_version=4)
        response = await connection.request(request, version)
        raw = response.responses[0].partitions[0].records
        assert decode_batches(raw).truncated
        async with client.subscribe(
            topic, 0, begin_offset="earliest", max_bytes=max_bytes, prefetch_count=77
        ) as sub:
            sets = await consume(sub, len(sent))
    check_same(sets, sent)


async def test_a_message_larger_than_max_bytes(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(config={"max.message.bytes": "3000000"})
    big = bytes(range(256)) * 8192  # 2 MiB
    messages = [Message(b"before"), Message(big, b"big"), Message(b"after")]
    sent = await in_thread(
        produce, bootstrap_servers, topic, 0, messages, message_max_bytes=3_000_000, linger_ms=0
    )
    async with open_client(bootstrap_servers) as client:
        async with client.subscribe(
            topic, 0, begin_offset="earliest", max_bytes=64 * 1024, prefetch_bytes=64 * 1024
        ) as sub:
            sets = await consume(sub, 3)
        check_same(sets, sent)
        assert [len(s) for s in sets] == [1, 1, 1]  # the large one alone (window of 64 KiB)
        fetched = await client.fetch(topic, 0, 1, max_bytes=64 * 1024)
        assert next(iter(fetched)).value == big


# ------------------------------------------------------------------ offsets


@pytest.mark.compat
async def test_begin_offsets_and_resolve_offset(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic()
    base = int(time.time() * 1000) - 3_600_000  # brokers refuse timestamps far ahead
    messages = [Message(b"%d" % i, timestamp=base + 1000 * i) for i in range(20)]
    await in_thread(produce, bootstrap_servers, topic, 0, messages)
    async with open_client(bootstrap_servers) as client:
        assert await client.resolve_offset(topic, 0, "earliest") == 0
        assert await client.resolve_offset(topic, 0, "latest") == 20
        assert await client.resolve_offset(topic, 0, base + 4500) == 5
        assert await client.resolve_offset(topic, 0, Timestamp(base + 5000)) == 5
        moment = datetime.datetime.fromtimestamp((base + 7000) / 1000, datetime.UTC)
        assert await client.resolve_offset(topic, 0, moment) == 7
        assert await client.resolve_offset(topic, 0, base + 10**9) == 20  # after the last

        async def first_offset(**options: Any) -> int:
            async with client.subscribe(topic, 0, **options) as sub:
                with trio.fail_after(10):
                    return (await sub.receive()).messages[0].offset

        assert await first_offset(begin_offset="earliest") == 0
        assert await first_offset(begin_offset=13) == 13
        assert await first_offset(begin_offset=Timestamp(base + 8001)) == 9
        assert await first_offset(begin_offset=moment) == 7
        async with client.subscribe(topic, 0, begin_offset="latest", max_wait_time=0.5) as sub:
            with trio.move_on_after(1):
                await sub.receive()
                pytest.fail("latest delivered old messages")
            await in_thread(produce, bootstrap_servers, topic, 0, [Message(b"new")])
            with trio.fail_after(10):
                assert [m.value for m in await sub.receive()] == [b"new"]


@pytest.mark.compat
async def test_offset_reset_policies(make_topic: MakeTopic, bootstrap_servers: list[str]) -> None:
    topic = make_topic()
    await in_thread(produce, bootstrap_servers, topic, 0, [Message(b"%d" % i) for i in range(30)])
    assert await in_thread(delete_records, bootstrap_servers, topic, 0, 10) == 10
    async with open_client(bootstrap_servers) as client:
        assert await client.resolve_offset(topic, 0, "earliest") == 10
        for begin in (3, 500):  # before the log start, after its end
            async with client.subscribe(topic, 0, begin_offset=begin) as sub:
                with trio.fail_after(10), pytest.raises(OffsetOutOfRangeError) as info:
                    await sub.receive()
                assert info.value.context["offset"] == begin
        async with client.subscribe(
            topic, 0, begin_offset=3, offset_reset_policy="reset_to_earliest"
        ) as sub:
            with trio.fail_after(10):
                assert (await sub.receive()).messages[0].offset == 10
        async with client.subscribe(
            topic, 0, begin_offset=500, offset_reset_policy="reset_to_latest", max_wait_time=0.5
        ) as sub:
            with trio.move_on_after(1):
                await sub.receive()
                pytest.fail("reset_to_latest delivered old messages")
            await in_thread(produce, bootstrap_servers, topic, 0, [Message(b"new")])
            with trio.fail_after(10):
                assert [(m.offset, m.value) for m in await sub.receive()] == [(30, b"new")]
        with pytest.raises(OffsetOutOfRangeError):
            await client.fetch(topic, 0, 3)


async def test_one_off_fetch(make_topic: MakeTopic, bootstrap_servers: list[str]) -> None:
    topic = make_topic()
    sent = await in_thread(
        produce, bootstrap_servers, topic, 0, random_messages(500, seed=7), linger_ms=0
    )
    async with open_client(bootstrap_servers) as client:
        offset, fetched = 0, []
        while offset < 500:
            message_set = await client.fetch(topic, 0, offset, max_bytes=2000)
            assert message_set.high_watermark == 500
            fetched.append(message_set)
            offset = message_set.next_offset
        check_same(fetched, sent)
        empty = await client.fetch(topic, 0, 500, max_wait_time=0.1)
        assert len(empty) == 0
        assert empty.next_offset == 500


# ------------------------------------------------------------------ lifecycle


async def test_subscriptions_stop_their_fetchers_and_leak_no_task(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=2)
    await in_thread(produce, bootstrap_servers, topic, 0, [Message(b"a"), Message(b"b")])
    before_client = count_tasks()
    async with open_client(bootstrap_servers) as client:
        # brod's design: each worker has a connection of its own, closed with its
        # subscription (the default, shared lanes, is in test_merging.py).
        await client.start_consumer(topic, ConsumerConfig(fetch_connection="partition"))
        await trio.testing.wait_all_tasks_blocked()
        idle = count_tasks()
        async with client.subscribe(topic, 0, begin_offset="earliest") as sub:
            with pytest.raises(trio.BusyResourceError, match=r"\[0\] already has a subscriber"):
                async with client.subscribe(topic, 0):
                    pass  # pragma: no cover
            async with client.subscribe(topic, 1) as other:  # another partition is fine
                assert other.partition == 1
            await consume(sub, 2)
            # The worker now waits in a long poll (max_wait_time 10 s) on its connection.
            assert count_tasks() > idle
        # Leaving cancelled that fetch at once and closed the worker's connection; the two
        # workers' tasks, started by their first subscribers, are left, idle.
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        assert count_tasks() == idle + 2
        async with client.subscribe(topic, 0) as sub:  # continues after the last ack
            await in_thread(produce, bootstrap_servers, topic, 0, [Message(b"c")])
            with trio.fail_after(10):
                assert [m.value for m in await sub.receive()] == [b"c"]
    assert count_tasks() == before_client


async def test_subscribers_that_leave_at_once_hand_their_start_on(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic()
    base = int(time.time() * 1000) - 3_600_000
    messages = [Message(b"%d" % i, timestamp=base + 1000 * i) for i in range(20)]
    await in_thread(produce, bootstrap_servers, topic, 0, messages)
    async with open_client(bootstrap_servers) as client:
        for begin, expected in (("earliest", 0), (13, 13), (Timestamp(base + 8001), 9)):
            await client.stop_consumer(topic)  # a fresh consumer: its default is "latest"
            for _ in range(5):  # subscribe/cancel loop, nothing acknowledged
                async with client.subscribe(topic, 0, begin_offset=begin):
                    pass  # left before the worker resolved the start
                async with client.subscribe(topic, 0) as sub:
                    with trio.move_on_after(0.001):  # left while it is (maybe) resolved
                        await sub.receive()
            async with client.subscribe(topic, 0) as sub:
                with trio.fail_after(10):
                    assert (await sub.receive()).messages[0].offset == expected


@pytest.mark.parametrize("fetch_connection", ["shared", "broker", "partition"])
async def test_subscribe_and_cancel_loops_leave_no_pile_of_long_polls(
    make_topic: MakeTopic, bootstrap_servers: list[str], fetch_connection: FetchConnection
) -> None:
    topic = make_topic()
    await in_thread(produce, bootstrap_servers, topic, 0, [Message(b"%d" % i) for i in range(10)])
    async with open_client(bootstrap_servers) as client:
        await client.start_consumer(
            topic,
            ConsumerConfig(fetch_connection=fetch_connection, max_wait_time=5),
        )
        shared = await client.get_leader_connection(topic, 0)
        written = shared.requests_written
        cycles = 20
        for _ in range(cycles):  # caught up: each is cancelled in a 5 s long poll
            async with client.subscribe(topic, 0, begin_offset=10) as sub:
                with trio.move_on_after(0.01):
                    await sub.receive()
                    pytest.fail("nothing was written after offset 10")
        if fetch_connection == "shared":
            # The first long poll went out; those of the subscriptions that left while it
            # was in flight were never written, so nothing waits behind 20 of them.
            assert shared.requests_written - written <= 3
        await in_thread(produce, bootstrap_servers, topic, 0, [Message(b"new")])
        with trio.fail_after(30):
            assert await client.resolve_offset(topic, 0, "latest") == 11
            async with client.subscribe(topic, 0) as sub:  # where the last one started
                assert [(m.offset, m.value) for m in await sub.receive()] == [(10, b"new")]


async def test_stop_consumer_ends_a_running_subscription(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic()
    async with open_client(bootstrap_servers) as client:
        done = trio.Event()

        async def subscriber() -> None:
            async with client.subscribe(topic, 0) as sub:
                async for _ in sub:
                    pass  # pragma: no cover
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(subscriber)
            await trio.testing.wait_all_tasks_blocked(cushion=0.2)
            await client.stop_consumer(topic)
            with trio.fail_after(5):
                await done.wait()


@pytest.mark.compat
async def test_what_kcat_writes(make_topic: MakeTopic, bootstrap_servers: list[str]) -> None:
    topic = make_topic()
    lines = [f"key-{i}:value-{i}-" + "z" * (i % 50) for i in range(2000)]
    where = ["-b", ",".join(bootstrap_servers), "-t", topic, "-p", "0"]
    # librdkafka sends a batch uncompressed when compressing would not make it smaller, as
    # for a batch of a few short lines, which its 5 ms linger makes when kcat is slowed
    # down; 250 ms puts the lines into large batches, each of them really zstd.
    how = ["-K:", "-H", "trace=abc", "-H", "team=consumers", "-z", "zstd"]
    how += ["-X", "linger.ms=250"]
    await trio.run_process(["kcat", "-P", *where, *how], stdin="\n".join(lines).encode() + b"\n")
    async with (
        open_client(bootstrap_servers) as client,
        client.subscribe(topic, 0, begin_offset="earliest") as sub,
    ):
        sets = await consume(sub, len(lines))
    records = [record for message_set in sets for record in message_set]
    assert [(r.key, r.value) for r in records] == [
        tuple(line.encode().split(b":", 1)) for line in lines
    ]
    assert {r.headers for r in records} == {(("trace", b"abc"), ("team", b"consumers"))}
    assert {run.batch.compression for s in sets for run in s._runs} == {Compression.ZSTD}
