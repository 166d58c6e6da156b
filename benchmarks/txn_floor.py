"""The broker's floor for back-to-back transactions: raw requests, no client around them.

Run: ``python benchmarks/txn_floor.py`` (starts a local Kafka; ``--bootstrap HOST:PORT`` to
use a running one), ``--protocol 1`` or ``2`` (transactions v1 or v2), ``--transactions
300``.

Each transaction is what the ``txn_produce`` workload's are (1,000 records of 100 bytes
over 8 partitions), sent as cheaply as any client could: one request at a time on one
connection, the records encoded once beforehand, no partitioner, no buffering.

* v1: AddPartitionsToTxn for the 8 partitions (retried 1 ms after each
  CONCURRENT_TRANSACTIONS: the coordinator is still writing the previous transaction's
  markers), one Produce v9 with 8 batches of 125 records, EndTxn v3.
* v2 (KIP-890): one Produce v12 (the broker adds the partitions itself), EndTxn v5, whose
  answer carries the epoch of the next transaction.

What it prints, transactions per second times 1,000 records, bounds what a client can
reach on this broker: a client does all this and its own work too. Compare it with the
``txn_produce`` rows of ``benchmarks/run.py`` (aiokafka's in particular) from the same
machine.
"""

from __future__ import annotations

import argparse
import time
import uuid

import trio

import trio_brod
from trio_brod.admin import NewTopic, create_topics
from trio_brod.protocol import (
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    FindCoordinatorRequest,
    InitProducerIdRequest,
    ProduceRequest,
)
from trio_brod.protocol.errors import ConcurrentTransactionsError
from trio_brod.protocol.records import encode_batch
from trio_brod.testing import kafka_cluster

PARTITIONS = 8
PER_PARTITION = 125  # 1,000 records per transaction


async def _until_ok(send: object) -> object:
    """Send until the broker stops answering with a retriable error (it is warming up)."""
    for _ in range(200):
        response = await send()  # type: ignore[operator]
        if response.error_code == 0:
            return response
        await trio.sleep(0.05)
    raise RuntimeError(f"still refused: {response!r}")


async def floor(bootstrap: list[str], protocol: int, count: int) -> None:
    topic, tid = f"floor-{uuid.uuid4().hex[:6]}", f"floor-{uuid.uuid4().hex[:6]}"
    async with trio_brod.open_client(bootstrap) as client:
        await create_topics(client, [NewTopic(topic, PARTITIONS)])
        await trio.sleep(2)  # leaders elected
        conn = await client.get_leader_connection(topic, 0)  # one broker: the coordinator too
        await _until_ok(lambda: conn.request(FindCoordinatorRequest(key=tid, key_type=1), 3))
        init = await _until_ok(
            lambda: conn.request(
                InitProducerIdRequest(transactional_id=tid, transaction_timeout_ms=60_000),
                5 if protocol == 2 else 4,
            )
        )
        pid, epoch = init.producer_id, init.producer_epoch  # type: ignore[attr-defined]
        records = [(0, b"k%03d" % i, b"v" * 100, ()) for i in range(PER_PARTITION)]
        sequences = [0] * PARTITIONS
        retries = 0
        start = time.perf_counter()
        for n in range(-10, count):  # ten to warm up
            if n == 0:
                start, retries = time.perf_counter(), 0
            while protocol == 1:
                add = await conn.request(
                    AddPartitionsToTxnRequest(
                        v3_and_below_transactional_id=tid,
                        v3_and_below_producer_id=pid,
                        v3_and_below_producer_epoch=epoch,
                        v3_and_below_topics=[
                            AddPartitionsToTxnRequest.AddPartitionsToTxnTopic(
                                name=topic, partitions=list(range(PARTITIONS))
                            )
                        ],
                    ),
                    3,
                )
                codes = {
                    p.partition_error_code
                    for t in add.results_by_topic_v3_and_below
                    for p in t.results_by_partition
                }
                if codes == {0}:
                    break
                if codes != {ConcurrentTransactionsError.code}:
                    raise RuntimeError(f"AddPartitionsToTxn: {add!r}")
                retries += 1
                await trio.sleep(0.001)
            data = []
            for p in range(PARTITIONS):
                batch = encode_batch(
                    records,
                    producer_id=pid,
                    producer_epoch=epoch,
                    base_sequence=sequences[p],
                    is_transactional=True,
                )
                data.append(ProduceRequest.PartitionProduceData(index=p, records=batch))
                sequences[p] += PER_PARTITION
            produced = await conn.request(
                ProduceRequest(
                    transactional_id=tid,
                    acks=-1,
                    timeout_ms=30_000,
                    topic_data=[ProduceRequest.TopicProduceData(name=topic, partition_data=data)],
                ),
                12 if protocol == 2 else 9,
            )
            for answer in produced.responses[0].partition_responses:
                if answer.error_code:
                    raise RuntimeError(f"Produce: {answer!r}")
            while True:
                end = await conn.request(
                    EndTxnRequest(
                        transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=True
                    ),
                    5 if protocol == 2 else 3,
                )
                if end.error_code != ConcurrentTransactionsError.code:
                    break
                retries += 1
                await trio.sleep(0.001)
            if end.error_code:
                raise RuntimeError(f"EndTxn: {end!r}")
            if protocol == 2:  # a new epoch per transaction, sequences from 0
                pid, epoch, sequences = end.producer_id, end.producer_epoch, [0] * PARTITIONS
        elapsed = time.perf_counter() - start
    print(
        f"transactions v{protocol}: {count} transactions of {PARTITIONS * PER_PARTITION:,} "
        f"records in {elapsed:.2f} s, {elapsed / count * 1000:.2f} ms each: "
        f"{count * PARTITIONS * PER_PARTITION / elapsed:,.0f} records/s "
        f"({retries} CONCURRENT_TRANSACTIONS retries)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="HOST:PORT of a running broker")
    parser.add_argument("--protocol", type=int, choices=(1, 2), action="append")
    parser.add_argument("--transactions", type=int, default=300)
    args = parser.parse_args()
    protocols = args.protocol or [1, 2]
    if args.bootstrap:
        for protocol in protocols:
            await floor([args.bootstrap], protocol, args.transactions)
        return
    async with kafka_cluster(brokers=1) as cluster:
        for protocol in protocols:
            await floor(cluster.bootstrap_servers, protocol, args.transactions)


if __name__ == "__main__":
    trio.run(main)
