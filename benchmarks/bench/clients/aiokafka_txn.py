"""aiokafka's transaction workloads (see :mod:`bench.transactions`)."""

from __future__ import annotations

import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench import transactions
from bench.common import RECORD_PAYLOAD, BenchError, Meter, Result, Spec, check_count, payload_pool

_FETCH_RECORDS = 10_000


def _producer(spec: Spec) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=spec["bootstrap"],
        transactional_id=f"bench-tx-{uuid.uuid4().hex[:8]}",
        enable_idempotence=True,
        acks="all",
        linger_ms=spec["linger_ms"],
        max_batch_size=spec["batch_bytes"],
        transaction_timeout_ms=transactions.TXN_TIMEOUT_S * 1000,
    )


async def txn_produce(spec: Spec) -> Result:
    topic, count, size = spec["topic"], spec["messages"], transactions.TXN_SIZE
    keys, values = payload_pool()
    producer = _producer(spec)
    await producer.start()
    try:
        async with producer.transaction():
            for partition in range(transactions.PRODUCE_PARTITIONS):
                await producer.send(topic, values[0], keys[0], partition=partition)
        meter = Meter()
        sent = 0
        while sent < count:
            async with producer.transaction():
                send = producer.send
                for i in range(sent, min(sent + size, count)):
                    j = i & 1023
                    await send(topic, values[j], keys[j])
            sent = min(sent + size, count)
        result = meter.stop(count, count * RECORD_PAYLOAD)
        result["transactions"] = -(-count // size)
    finally:
        await producer.stop()
    result["settings"] = (
        f"transactional AIOKafkaProducer, {size} send() per transaction, "
        f"linger_ms={spec['linger_ms']} max_batch_size={spec['batch_bytes']}"
    )
    return result


async def txn_process(spec: Spec) -> Result:
    source, sink, expected = spec["topic"], spec["output"], spec["messages"]
    group = f"bench-eos-{uuid.uuid4().hex[:8]}"
    meter = Meter()
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=spec["bootstrap"],
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = _producer(spec)
    await consumer.start()
    await producer.start()
    n = size = transactions_done = 0
    try:
        while n < expected:
            if meter.wall + spec["timeout"] < time.perf_counter():
                raise BenchError(f"processed {n} of {expected}")
            batches = await consumer.getmany(timeout_ms=1000, max_records=_FETCH_RECORDS)
            if not batches:
                continue
            async with producer.transaction():
                offsets: dict[TopicPartition, int] = {}
                for tp, records in batches.items():
                    for record in records:
                        await producer.send(sink, record.value, record.key)
                        n += 1
                        size += len(record.value) + len(record.key)
                    offsets[tp] = records[-1].offset + 1
                await producer.send_offsets_to_transaction(offsets, group)
            transactions_done += 1
        result = meter.stop(n, size)
    finally:
        await producer.stop()
        await consumer.stop()
    check_count("processed records", n, expected)
    result["transactions"] = transactions_done
    result["settings"] = (
        "getmany(max_records=10000) + producer.transaction(): send() each record, "
        f"send_offsets_to_transaction(); {transactions_done} transactions"
    )
    return result
