"""confluent-kafka's transactional produce workload (see :mod:`bench.transactions`)."""

from __future__ import annotations

import uuid

from confluent_kafka import Producer

from bench import transactions
from bench.common import RECORD_PAYLOAD, Meter, Result, Spec, payload_pool


def txn_produce(spec: Spec) -> Result:
    topic, count, size = spec["topic"], spec["messages"], transactions.TXN_SIZE
    keys, values = payload_pool()
    producer = Producer(
        {
            "bootstrap.servers": spec["bootstrap"],
            "transactional.id": f"bench-tx-{uuid.uuid4().hex[:8]}",
            "linger.ms": spec["linger_ms"],
            "batch.size": spec["batch_bytes"],
            "transaction.timeout.ms": transactions.TXN_TIMEOUT_S * 1000,
            "partitioner": "murmur2_random",
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for partition in range(transactions.PRODUCE_PARTITIONS):
        producer.produce(topic, values[0], keys[0], partition=partition)
    producer.commit_transaction(30)
    meter = Meter()
    sent = 0
    while sent < count:
        producer.begin_transaction()
        produce, poll = producer.produce, producer.poll
        for i in range(sent, min(sent + size, count)):
            j = i & 1023
            while True:
                try:
                    produce(topic, values[j], keys[j])
                    break
                except BufferError:
                    poll(0.01)
            poll(0)
        producer.commit_transaction(spec["timeout"])
        sent = min(sent + size, count)
    result = meter.stop(count, count * RECORD_PAYLOAD)
    result["transactions"] = -(-count // size)
    result["settings"] = (
        f"transactional Producer, {size} produce() + poll(0) per transaction, "
        f"linger.ms={spec['linger_ms']} batch.size={spec['batch_bytes']}"
    )
    return result
