"""trio-brod's transaction workloads (see :mod:`bench.transactions`)."""

from __future__ import annotations

import uuid

import trio

import trio_brod
from bench import transactions
from bench.common import RECORD_PAYLOAD, Meter, Result, Spec, check_count, payload_pool


def _config(spec: Spec) -> trio_brod.TransactionConfig:
    producer = trio_brod.ProducerConfig(
        max_batch_size=spec["batch_bytes"], partition_onwire_limit=spec.get("onwire", 5)
    )
    return trio_brod.TransactionConfig(
        transaction_timeout=transactions.TXN_TIMEOUT_S, producer_config=producer
    )


async def txn_produce(spec: Spec) -> Result:
    topic, count, size = spec["topic"], spec["messages"], transactions.TXN_SIZE
    keys, values = payload_pool()
    async with (
        trio_brod.open_client([spec["bootstrap"]], client_id="bench") as client,
        client.transactional_producer(
            f"bench-tx-{uuid.uuid4().hex[:8]}", config=_config(spec)
        ) as tp,
    ):
        async with tp.transaction() as txn:  # warm up: connections, partitions' producers
            for partition in range(await client.get_partitions_count(topic)):
                await txn.produce(topic, values[0], keys[0], partition=partition)
        meter = Meter()
        sent = 0
        while sent < count:
            async with tp.transaction() as txn:
                produce = txn.produce
                for i in range(sent, min(sent + size, count)):
                    j = i & 1023
                    await produce(topic, values[j], keys[j])
            sent = min(sent + size, count)
        result = meter.stop(count, count * RECORD_PAYLOAD)
    result["transactions"] = -(-count // size)
    result["settings"] = (
        f"transactional_producer, {size} produce() calls per transaction, "
        f"max_batch_size={spec['batch_bytes']}, onwire 5"
    )
    return result


async def txn_process(spec: Spec) -> Result:
    source, sink, expected = spec["topic"], spec["output"], spec["messages"]
    counts = [0, 0]

    async def process(txn: trio_brod.Transaction, message_set: trio_brod.MessageSet) -> None:
        produce = txn.produce
        n = size = 0
        for record in message_set:
            await produce(sink, record.value, record.key)
            n += 1
            size += len(record.value) + len(record.key)
        counts[0] += n
        counts[1] += size

    meter = Meter()
    async with (
        trio_brod.open_client([spec["bootstrap"]], client_id="bench") as client,
        trio_brod.open_transaction_processor(
            client,
            f"bench-eos-{uuid.uuid4().hex[:8]}",
            [source],
            process,
            transactional_id=f"bench-eos-{uuid.uuid4().hex[:8]}",
            consumer_config=trio_brod.ConsumerConfig(
                begin_offset="earliest",
                prefetch_count=spec["tb_prefetch_count"],
                prefetch_bytes=spec["tb_prefetch_bytes"],
            ),
            config=_config(spec),
        ) as processor,
    ):
        # Done when the committed transactions hold every input message.
        with trio.fail_after(spec["timeout"]):
            while processor.messages < expected:  # noqa: ASYNC110 (the processor's tasks)
                await trio.sleep(0.005)
        result = meter.stop(counts[0], counts[1])
        result["transactions"] = processor.transactions
        result["aborted"] = processor.aborted
    check_count("processed records (an aborted transaction was redone)", counts[0], expected)
    result["settings"] = (
        "open_transaction_processor(), one member, message sets of all partitions batched "
        f"into each transaction; {result['transactions']} transactions"
    )
    return result
