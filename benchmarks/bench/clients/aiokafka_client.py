"""aiokafka (asyncio): ``send()`` futures and ``send_batch()`` rows; ``getmany()`` to consume."""

from __future__ import annotations

import asyncio
import functools
import gc
import time
import uuid
from typing import Any

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench import groups
from bench.clients import aiokafka_txn
from bench.common import (
    RECORD_PAYLOAD,
    BenchError,
    Meter,
    RateSchedule,
    Result,
    Spec,
    check_count,
    latency_ns,
    payload_pool,
    percentiles,
    rss_bytes,
    stamped_value,
)

_FETCH_RECORDS = 10_000


def run(spec: Spec) -> Result:
    workload = {
        "produce": _produce,
        "consume": _consume,
        "latency": _latency,
        "partitions": _partitions,
        "group": _group,
        "rebalance": _rebalance,
        "txn_produce": aiokafka_txn.txn_produce,
        "txn_process": aiokafka_txn.txn_process,
    }[spec["workload"]]
    result: Result = asyncio.run(workload(spec))
    result["version"] = aiokafka.__version__
    return result


def _producer(spec: Spec, **overrides: Any) -> AIOKafkaProducer:
    options: dict[str, Any] = {
        "bootstrap_servers": spec["bootstrap"],
        "acks": "all" if spec["acks"] == -1 else spec["acks"],
        "compression_type": None if spec["compression"] == "none" else spec["compression"],
        "linger_ms": spec["linger_ms"],
        "max_batch_size": spec["batch_bytes"],
        "enable_idempotence": spec["acks"] == -1,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def settings(spec: Spec) -> str:
    return (
        f"acks={spec['acks']} compression_type={spec['compression']} "
        f"max_batch_size={spec['batch_bytes']} linger_ms={spec['linger_ms']} "
        f"enable_idempotence={spec['acks'] == -1}"
    )


class _Acks:
    def __init__(self, target: int) -> None:
        self.target = target
        self.acked = 0
        self.failed = 0
        self.first_error: BaseException | None = None

    def on_done(self, future: asyncio.Future[Any], count: int = 1) -> None:
        error = future.exception()
        if error is None:
            self.acked += count
        else:
            self.failed += count
            self.first_error = self.first_error or error

    def check(self) -> None:
        if self.failed:
            raise BenchError(f"{self.failed} records failed: {self.first_error!r}")
        check_count("acknowledged records", self.acked, self.target)


async def _produce_messages(
    producer: AIOKafkaProducer, spec: Spec, topic: str, count: int, partitions: int, spread: bool
) -> Result:
    keys, values = payload_pool()
    acks = _Acks(count)
    meter = Meter()
    if spec["variant"] == "batch":
        # The documented batch API: fill a BatchBuilder until it is full, then send_batch.
        sent = 0
        call = 0
        pending: list[asyncio.Future[Any]] = []
        while sent < count:
            batch = producer.create_batch()
            n = 0
            while sent + n < count:
                j = (sent + n) & 1023
                if batch.append(key=keys[j], value=values[j], timestamp=None) is None:
                    break
                n += 1
            future = await producer.send_batch(batch, topic, partition=call % partitions)
            future.add_done_callback(lambda f, n=n: acks.on_done(f, n))
            pending.append(future)
            sent += n
            call += 1
        await asyncio.gather(*pending, return_exceptions=True)
    else:
        send = producer.send
        on_done = acks.on_done
        if spread:
            for i in range(count):
                j = i & 1023
                future = await send(topic, values[j], key=keys[j], partition=i % partitions)
                future.add_done_callback(on_done)
        else:
            for i in range(count):
                j = i & 1023
                future = await send(topic, values[j], key=keys[j])
                future.add_done_callback(on_done)
        await producer.flush()
    # Done callbacks run on the next loop iterations.
    for _ in range(3):
        await asyncio.sleep(0)
    acks.check()
    return meter.stop(count, count * RECORD_PAYLOAD)


async def _warm_up(producer: AIOKafkaProducer, topic: str, partitions: int) -> int:
    keys, values = payload_pool()
    for partition in range(partitions):
        await (await producer.send(topic, values[0], key=keys[0], partition=partition))
    return partitions


async def _produce(spec: Spec) -> Result:
    topic = spec["topic"]
    producer = _producer(spec)
    await producer.start()
    try:
        partitions = spec["partitions"]
        warm = await _warm_up(producer, topic, partitions)
        result = await _produce_messages(producer, spec, topic, spec["messages"], partitions, False)
    finally:
        await producer.stop()
    result["warmup_messages"] = warm
    result["settings"] = settings(spec) + (
        " create_batch()+send_batch(), partition round-robin"
        if spec["variant"] == "batch"
        else " send() per message, default partitioner"
    )
    return result


def _consumer(spec: Spec) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=spec["bootstrap"],
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def _consume_all(
    consumer: AIOKafkaConsumer, topic: str, partitions: int, expected: int
) -> Result:
    assignment = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(assignment)
    await consumer.seek_to_beginning(*assignment)
    n = size = 0
    meter = Meter()
    idle = 0
    while n < expected:
        batches = await consumer.getmany(timeout_ms=1000, max_records=_FETCH_RECORDS)
        if not batches:
            idle += 1
            if idle > 30:
                raise BenchError(f"no records for 30 s after {n} of {expected}")
            continue
        idle = 0
        for records in batches.values():
            for record in records:
                n += 1
                size += len(record.value) + len(record.key)
    result = meter.stop(n, size)
    check_count("consumed records", n, expected)
    return result


async def _consume(spec: Spec) -> Result:
    consumer = _consumer(spec)
    await consumer.start()
    try:
        result = await _consume_all(consumer, spec["topic"], spec["partitions"], spec["messages"])
    finally:
        await consumer.stop()
    result["settings"] = (
        f"assign()+seek_to_beginning(), getmany(max_records={_FETCH_RECORDS}), defaults "
        "(max_partition_fetch_bytes=1MiB, fetch_max_bytes=50MiB)"
    )
    return result


async def _latency(spec: Spec) -> Result:
    topic = spec["topic"]
    rate, warmup, duration = spec["rate"], spec["warmup"], spec["duration"]
    total = int((warmup + duration) * rate)
    warm = int(warmup * rate)
    keys, values = payload_pool()
    acks = _Acks(total)
    producer = _producer(spec, linger_ms=0, compression_type=None)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=spec["bootstrap"], group_id=None, enable_auto_commit=False
    )
    await producer.start()
    await consumer.start()
    samples: list[int] = []
    received = 0
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        start = await consumer.position(tp)

        async def consume() -> None:
            nonlocal received
            while received < total:
                batches = await consumer.getmany(timeout_ms=100, max_records=_FETCH_RECORDS)
                for records in batches.values():
                    for record in records:
                        elapsed = latency_ns(record.value)
                        if record.offset - start >= warm:
                            samples.append(elapsed)
                        received += 1

        consumer_task = asyncio.create_task(consume())
        schedule = RateSchedule(rate, total)
        cpu = Meter()
        while not schedule.done:
            for _ in range(schedule.due()):
                future = await producer.send(
                    topic, stamped_value(values[schedule.sent & 1023]), key=keys[0], partition=0
                )
                future.add_done_callback(acks.on_done)
                schedule.sent += 1
            await asyncio.sleep(schedule.seconds_to_next())
        await producer.flush()
        await asyncio.wait_for(consumer_task, 30)
        result = cpu.stop(total, total * RECORD_PAYLOAD)
        await asyncio.sleep(0)
        acks.check()
    finally:
        await consumer.stop()
        await producer.stop()
    check_count("records received", received, total)
    result["latency"] = percentiles(samples)
    result["settings"] = f"acks={spec['acks']} linger_ms=0, getmany(timeout_ms=100)"
    return result


async def _partitions(spec: Spec) -> Result:
    topic = spec["topic"]
    count = spec["partitions"]
    producer = _producer(spec)
    consumer = _consumer(spec)
    await producer.start()
    await consumer.start()
    try:
        await producer.partitions_for(topic)
        gc.collect()
        await asyncio.sleep(0.2)
        before = rss_bytes()
        # Idle: the consumer assigned every partition (it fetches, finds nothing).
        consumer.assign([TopicPartition(topic, p) for p in range(count)])
        await consumer.seek_to_beginning()
        await consumer.getmany(timeout_ms=int(spec["settle"] * 1000))
        gc.collect()
        after = rss_bytes()
        produced = await _produce_messages(producer, spec, topic, spec["messages"], count, True)
        consumer.unsubscribe()
        consumed = await _consume_all(consumer, topic, count, spec["messages"])
    finally:
        await consumer.stop()
        await producer.stop()
    return {
        "idle": {
            "rss_before": before,
            "rss_after": after,
            "per_partition": (after - before) / count,
            "what": "consumer assign()ed to every partition (producer state is lazy)",
        },
        "produce": produced,
        "consume": consumed,
        "settings": settings(spec) + ", round-robin partition=i % P; assign()+getmany()",
    }


def _group_consumer(spec: Spec, group_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        spec["topic"],
        bootstrap_servers=spec["bootstrap"],
        group_id=group_id,
        auto_offset_reset="earliest",
        session_timeout_ms=int(groups.SESSION_TIMEOUT_S * 1000),
        heartbeat_interval_ms=int(groups.HEARTBEAT_S * 1000),
    )


async def _group(spec: Spec) -> Result:
    """One member of a fresh group: subscribe(), getmany() until the end."""
    expected = spec["messages"]
    # Timed from the start, join included (join_s says how much).
    meter = Meter()
    started = time.perf_counter()
    consumer = _group_consumer(spec, f"bench-group-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    n = size = 0
    joined = 0.0
    try:
        idle = 0
        while n < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=_FETCH_RECORDS)
            if not batches:
                idle += 1
                if idle > 60:
                    raise BenchError(f"no records for 60 s after {n} of {expected}")
                continue
            if not joined:
                joined = time.perf_counter() - started
            idle = 0
            for records in batches.values():
                for record in records:
                    n += 1
                    size += len(record.value) + len(record.key)
        result = meter.stop(n, size)
    finally:
        await consumer.stop()
    check_count("consumed records", n, expected)
    result["join_s"] = joined
    result["settings"] = (
        f"subscribe() (group_id), getmany(max_records={_FETCH_RECORDS}), "
        "auto commit (5 s), range assignor (eager), defaults otherwise"
    )
    return result


async def _rebalance(spec: Spec) -> Result:
    """A second and a third member join a consuming group (see bench.groups)."""
    topic = spec["topic"]
    partitions = groups.REBALANCE_PARTITIONS
    timeline = groups.Timeline(partitions)
    group_id = f"bench-rebalance-{uuid.uuid4().hex[:8]}"
    keys, values = payload_pool()
    acked = [0] * partitions
    sent = [0]
    failed: list[BaseException] = []
    stop_members = asyncio.Event()
    producing = asyncio.Event()

    def on_done(partition: int, future: asyncio.Future[Any]) -> None:
        if future.exception() is None:
            acked[partition] += 1
        else:
            failed.append(future.exception())  # type: ignore[arg-type]

    async def member(index: int) -> None:
        consumer = _group_consumer(spec, group_id)
        await consumer.start()
        try:
            while not stop_members.is_set():
                batches = await consumer.getmany(timeout_ms=100, max_records=_FETCH_RECORDS)
                for tp, records in batches.items():
                    timeline.consumed(index, tp.partition, [r.offset for r in records])
        finally:
            await consumer.stop()

    async def wait_for(check: Any) -> Any:
        deadline = time.perf_counter() + 60
        while not (answer := check()):
            if time.perf_counter() > deadline:
                raise BenchError("the group did not consume everything again")
            await asyncio.sleep(0.01)
        return answer

    def drained() -> bool:
        return sum(acked) + len(failed) >= sent[0] and timeline.distinct() >= sum(acked)

    producer = AIOKafkaProducer(bootstrap_servers=spec["bootstrap"], acks=1, linger_ms=5)
    await producer.start()

    async def produce() -> None:
        schedule = RateSchedule(spec["rate"], 10**12)
        i = 0
        while not producing.is_set():
            for _ in range(schedule.due()):
                p = i % partitions
                future = await producer.send(
                    topic, values[i & 1023], key=keys[i & 1023], partition=p
                )
                future.add_done_callback(functools.partial(on_done, p))
                i += 1
                sent[0] += 1
                schedule.sent += 1
            await asyncio.sleep(schedule.seconds_to_next())

    joins = []
    tasks = [asyncio.create_task(produce()), asyncio.create_task(member(0))]
    try:
        await wait_for(timeline.all_consuming)
        await asyncio.sleep(spec["settle"])
        for index in range(1, groups.MEMBERS):
            joined_at = time.perf_counter()
            tasks.append(asyncio.create_task(member(index)))
            recovered = await wait_for(functools.partial(timeline.recovered_at, index))
            await asyncio.sleep(spec["settle"])
            joins.append(timeline.join_report(index, joined_at, recovered))
        producing.set()
        await producer.flush()
        await wait_for(drained)
        stop_members.set()
        await asyncio.gather(*tasks)
    finally:
        producing.set()
        stop_members.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
    if failed:
        raise BenchError(f"{len(failed)} records failed: {failed[0]!r}")
    result = timeline.check_complete(acked)
    result["joins"] = joins
    result["settings"] = (
        "subscribe() per member (its own AIOKafkaConsumer), range assignor (eager), "
        f"session {groups.SESSION_TIMEOUT_S:g} s, heartbeat {groups.HEARTBEAT_S:g} s; "
        f"{spec['rate']} msgs/s produced round-robin"
    )
    return result
