"""kafka-python (threads): ``send()`` futures + ``flush()``; ``poll()`` to consume."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

import kafka
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

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
    }[spec["workload"]]
    result = workload(spec)
    result["version"] = kafka.__version__
    return result


def _producer(spec: Spec, **overrides: Any) -> KafkaProducer:
    options: dict[str, Any] = {
        "bootstrap_servers": spec["bootstrap"],
        "acks": "all" if spec["acks"] == -1 else spec["acks"],
        "compression_type": None if spec["compression"] == "none" else spec["compression"],
        "linger_ms": spec["linger_ms"],
        "batch_size": spec["batch_bytes"],
        "enable_idempotence": spec["acks"] == -1,
    }
    options.update(overrides)
    return KafkaProducer(**options)


def settings(spec: Spec) -> str:
    return (
        f"acks={spec['acks']} compression_type={spec['compression']} "
        f"batch_size={spec['batch_bytes']} linger_ms={spec['linger_ms']} "
        f"enable_idempotence={spec['acks'] == -1} max_in_flight=5 (default)"
    )


class _Acks:
    """Counts callbacks (they run in kafka-python's sender thread)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.acked = 0
        self.failed = 0
        self.first_error: BaseException | None = None
        self._lock = threading.Lock()

    def ok(self, _metadata: Any) -> None:
        with self._lock:
            self.acked += 1

    def error(self, exc: BaseException) -> None:
        with self._lock:
            self.failed += 1
            self.first_error = self.first_error or exc

    def check(self) -> None:
        if self.failed:
            raise BenchError(f"{self.failed} records failed: {self.first_error!r}")
        check_count("acknowledged records", self.acked, self.target)


def _produce_messages(
    producer: KafkaProducer, topic: str, count: int, partitions: int, spread: bool
) -> Result:
    keys, values = payload_pool()
    acks = _Acks(count)
    ok, error = acks.ok, acks.error
    send = producer.send
    meter = Meter()
    if spread:
        for i in range(count):
            j = i & 1023
            send(topic, values[j], key=keys[j], partition=i % partitions).add_callback(
                ok
            ).add_errback(error)
    else:
        for i in range(count):
            j = i & 1023
            send(topic, values[j], key=keys[j]).add_callback(ok).add_errback(error)
    producer.flush()
    deadline = time.monotonic() + 10
    while acks.acked + acks.failed < count and time.monotonic() < deadline:
        time.sleep(0.001)
    acks.check()
    return meter.stop(count, count * RECORD_PAYLOAD)


def _produce(spec: Spec) -> Result:
    topic = spec["topic"]
    keys, values = payload_pool()
    producer = _producer(spec)
    try:
        partitions = spec["partitions"]
        for partition in range(partitions):
            producer.send(topic, values[0], key=keys[0], partition=partition).get(timeout=30)
        result = _produce_messages(producer, topic, spec["messages"], partitions, False)
    finally:
        producer.close()
    result["warmup_messages"] = partitions
    result["settings"] = settings(spec) + " send() per message, default partitioner"
    return result


def _consumer(spec: Spec) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=spec["bootstrap"],
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


def _consume_all(consumer: KafkaConsumer, topic: str, partitions: int, expected: int) -> Result:
    consumer.partitions_for_topic(topic)  # connected, with metadata, before the clock
    assignment = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(assignment)
    consumer.seek_to_beginning(*assignment)
    n = size = 0
    idle = 0
    meter = Meter()
    while n < expected:
        batches = consumer.poll(timeout_ms=1000, max_records=_FETCH_RECORDS)
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


def _consume(spec: Spec) -> Result:
    consumer = _consumer(spec)
    try:
        result = _consume_all(consumer, spec["topic"], spec["partitions"], spec["messages"])
    finally:
        consumer.close()
    result["settings"] = (
        f"assign()+seek_to_beginning(), poll(max_records={_FETCH_RECORDS}), defaults "
        "(max_partition_fetch_bytes=1MiB, fetch_max_bytes=50MiB)"
    )
    return result


def _latency(spec: Spec) -> Result:
    topic = spec["topic"]
    rate, warmup, duration = spec["rate"], spec["warmup"], spec["duration"]
    total = int((warmup + duration) * rate)
    warm = int(warmup * rate)
    keys, values = payload_pool()
    acks = _Acks(total)
    producer = _producer(spec, linger_ms=0, compression_type=None)
    consumer = KafkaConsumer(
        bootstrap_servers=spec["bootstrap"], group_id=None, enable_auto_commit=False
    )
    samples: list[int] = []
    received = [0]
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_end(tp)
        start = consumer.position(tp)
        failure: list[BaseException] = []

        def consume() -> None:
            try:
                deadline = None
                while received[0] < total:
                    batches = consumer.poll(timeout_ms=100, max_records=_FETCH_RECORDS)
                    for records in batches.values():
                        for record in records:
                            elapsed = latency_ns(record.value)
                            if record.offset - start >= warm:
                                samples.append(elapsed)
                            received[0] += 1
                    if producer_done.is_set():
                        deadline = deadline or time.monotonic() + 30
                        if time.monotonic() > deadline:
                            return
            except BaseException as exc:
                failure.append(exc)

        producer_done = threading.Event()
        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        schedule = RateSchedule(rate, total)
        ok, error = acks.ok, acks.error
        cpu = Meter()
        while not schedule.done:
            for _ in range(schedule.due()):
                producer.send(
                    topic, stamped_value(values[schedule.sent & 1023]), key=keys[0], partition=0
                ).add_callback(ok).add_errback(error)
                schedule.sent += 1
            time.sleep(schedule.seconds_to_next())
        producer.flush()
        producer_done.set()
        thread.join()
        result = cpu.stop(total, total * RECORD_PAYLOAD)
        if failure:
            raise failure[0]
        acks.check()
    finally:
        consumer.close()
        producer.close()
    check_count("records received", received[0], total)
    result["latency"] = percentiles(samples)
    result["settings"] = f"acks={spec['acks']} linger_ms=0; consumer poll() in a thread"
    return result


def _partitions(spec: Spec) -> Result:
    topic = spec["topic"]
    count = spec["partitions"]
    producer = _producer(spec)
    consumer = _consumer(spec)
    try:
        producer.partitions_for(topic)
        gc.collect()
        time.sleep(0.2)
        before = rss_bytes()
        assignment = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(assignment)
        consumer.seek_to_beginning(*assignment)
        consumer.poll(timeout_ms=int(spec["settle"] * 1000))
        gc.collect()
        after = rss_bytes()
        produced = _produce_messages(producer, topic, spec["messages"], count, True)
        consumer.unsubscribe()
        consumed = _consume_all(consumer, topic, count, spec["messages"])
    finally:
        consumer.close()
        producer.close()
    return {
        "idle": {
            "rss_before": before,
            "rss_after": after,
            "per_partition": (after - before) / count,
            "what": "consumer assign()ed to every partition (producer state is lazy)",
        },
        "produce": produced,
        "consume": consumed,
        "settings": settings(spec) + ", round-robin partition=i % P; assign()+poll()",
    }
