"""Other clients through the in-process fake Kafka: kcat, confluent-kafka (librdkafka) and
aiokafka.

These run on the real clock (the other clients have their own timers) and need no real
Kafka: the fake listens on loopback, so they belong with the unit tests.
"""

from __future__ import annotations

import asyncio
import time

import aiokafka
import confluent_kafka
import trio

from trio_brod import open_client
from trio_brod.testing import fake_kafka


async def kcat(*args: str, stdin: bytes = b"") -> bytes:
    result = await trio.run_process(
        ["kcat", *args], stdin=stdin, capture_stdout=True, capture_stderr=True
    )
    return result.stdout


async def test_kcat_produces_and_consumes_through_the_fake() -> None:
    async with fake_kafka(brokers=2) as fake:
        fake.create_topic("lines", partitions=2)
        bootstrap = ",".join(fake.bootstrap_servers)
        lines = b"".join(b"k%d:v%d\n" % (i, i) for i in range(20))
        with trio.fail_after(120):
            await kcat("-b", bootstrap, "-P", "-t", "lines", "-p", "1", "-K", ":", stdin=lines)
            out = await kcat(
                "-b", bootstrap, "-C", "-t", "lines", "-p", "1", "-o", "beginning", "-e",
                "-f", "%o %k %s\n",
            )  # fmt: skip
        assert out.decode().splitlines() == [f"{i} k{i} v{i}" for i in range(20)]
        # What kcat wrote, trio-brod reads.
        async with (
            open_client(fake.bootstrap_servers) as client,
            client.subscribe("lines", 1, begin_offset="earliest") as sub,
        ):
            async for message_set in sub:
                assert message_set.messages[0].key == b"k0"
                break
        # And kcat sees the fake's metadata.
        listing = await kcat("-b", bootstrap, "-L", "-t", "lines")
        assert b"2 partitions" in listing


def librdkafka_round_trip(bootstrap: str, topic: str, count: int) -> list[tuple]:
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    for i in range(count):
        producer.produce(topic, value=b"v%d" % i, key=b"k%d" % i, partition=i % 2)
    assert producer.flush(30) == 0
    got = []
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "interop", "enable.auto.commit": False}
    )
    try:
        consumer.assign(
            [
                confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                for p in (0, 1)
            ]
        )
        deadline = time.monotonic() + 60  # generous: CI machines are busy
        while len(got) < count and time.monotonic() < deadline:
            message = consumer.poll(0.1)
            if message is None:
                continue
            assert message.error() is None, message.error()
            got.append((message.partition(), message.offset(), message.key(), message.value()))
    finally:
        consumer.close()
    return got


async def test_librdkafka_produces_and_consumes_through_the_fake() -> None:
    async with fake_kafka(brokers=1) as fake:
        fake.create_topic("rd", partitions=2)
        with trio.fail_after(120):
            got = await trio.to_thread.run_sync(
                librdkafka_round_trip, ",".join(fake.bootstrap_servers), "rd", 40
            )
        expected = {
            (i % 2, i // 2, b"k%d" % i, b"v%d" % i) for i in range(40)
        }  # per partition in order
        assert set(got) == expected
        assert [g for g in got if g[0] == 0] == sorted(g for g in got if g[0] == 0)
        assert fake.log("rd", 0).high_watermark == fake.log("rd", 1).high_watermark == 20
        # The idempotent producer's batches carry a producer id the fake handed out.
        assert all(b.producer_id >= 0 for b in fake.log("rd", 0).batches)


async def aiokafka_round_trip(bootstrap: str, topic: str, count: int) -> list[tuple]:
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, b"v%d" % i, key=b"k%d" % i, partition=0)
    finally:
        await producer.stop()
    consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = aiokafka.TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        got: list[tuple] = []
        deadline = time.monotonic() + 60
        while len(got) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(partition, timeout_ms=200)
            got += [(m.offset, m.key, m.value) for m in batch.get(partition, [])]
        return got
    finally:
        await consumer.stop()


async def test_aiokafka_produces_and_consumes_through_the_fake() -> None:
    async with fake_kafka() as fake:
        fake.create_topic("aio")
        bootstrap = ",".join(fake.bootstrap_servers)
        with trio.fail_after(120):
            got = await trio.to_thread.run_sync(
                lambda: asyncio.run(aiokafka_round_trip(bootstrap, "aio", 10))
            )
        assert got == [(i, b"k%d" % i, b"v%d" % i) for i in range(10)]
