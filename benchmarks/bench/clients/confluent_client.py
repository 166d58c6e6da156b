"""confluent-kafka (librdkafka, C): ``produce()`` + ``poll(0)`` + ``flush()`` and
``produce_batch()`` rows; ``consume(num_messages=...)`` to consume."""

from __future__ import annotations

import gc
import threading
import time
import uuid
from typing import Any

import confluent_kafka
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bench import groups
from bench.clients import confluent_txn
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
        "fill": _fill,
        "group": _group,
        "rebalance": _rebalance,
        "txn_produce": confluent_txn.txn_produce,
    }[spec["workload"]]
    result = workload(spec)
    result["version"] = confluent_kafka.version()[0]
    result["librdkafka"] = confluent_kafka.libversion()[0]
    return result


def _producer(spec: Spec, **overrides: Any) -> Producer:
    config: dict[str, Any] = {
        "bootstrap.servers": spec["bootstrap"],
        "acks": "all" if spec["acks"] == -1 else str(spec["acks"]),
        "compression.type": spec["compression"],
        "linger.ms": spec["linger_ms"],
        "batch.size": spec["batch_bytes"],
        "enable.idempotence": spec["acks"] == -1,
        # Java's partitioner, as the other clients use (librdkafka's default is CRC32).
        "partitioner": "murmur2_random",
    }
    config.update(overrides)
    return Producer(config)


def settings(spec: Spec) -> str:
    return (
        f"acks={spec['acks']} compression.type={spec['compression']} "
        f"batch.size={spec['batch_bytes']} linger.ms={spec['linger_ms']} "
        f"enable.idempotence={spec['acks'] == -1} partitioner=murmur2_random"
    )


class _Acks:
    """Counts delivery reports (served by poll()/flush() in the calling thread)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.acked = 0
        self.failed = 0
        self.first_error: Any = None

    def on_delivery(self, error: Any, _message: Any) -> None:
        if error is None:
            self.acked += 1
        else:
            self.failed += 1
            self.first_error = self.first_error or error

    def check(self) -> None:
        if self.failed:
            raise BenchError(f"{self.failed} records failed: {self.first_error!r}")
        check_count("acknowledged records", self.acked, self.target)


def _produce_messages(
    producer: Producer, spec: Spec, topic: str, count: int, partitions: int, spread: bool
) -> Result:
    keys, values = payload_pool()
    acks = _Acks(count)
    on_delivery = acks.on_delivery
    produce, poll = producer.produce, producer.poll
    meter = Meter()
    if spec["variant"] == "batch":
        messages = [{"key": k, "value": v} for k, v in zip(keys, values, strict=True)]
        messages += messages
        size = spec["call_size"]
        sent = call = 0
        while sent < count:
            n = min(size, count - sent)
            start = sent % len(keys)
            # produce_batch mutates the dicts (adds _error on failure): give it fresh ones.
            batch = [dict(m) for m in messages[start : start + n]]
            while True:
                queued = producer.produce_batch(
                    topic, batch, partition=call % partitions, on_delivery=on_delivery
                )
                if queued == len(batch):
                    break
                # A full queue: the rest of the batch was refused; serve reports, retry it.
                batch = [dict(m) for m in batch if "_error" in m]
                for m in batch:
                    m.pop("_error", None)
                poll(0.005)
            poll(0)
            sent += n
            call += 1
    else:
        for i in range(count):
            j = i & 1023
            while True:
                try:
                    if spread:
                        produce(
                            topic,
                            values[j],
                            keys[j],
                            partition=i % partitions,
                            on_delivery=on_delivery,
                        )
                    else:
                        produce(topic, values[j], keys[j], on_delivery=on_delivery)
                    break
                except BufferError:  # the documented back-pressure: serve reports, retry
                    poll(0.005)
            poll(0)
    remaining = producer.flush(60)
    if remaining:
        raise BenchError(f"{remaining} records still queued after flush(60)")
    acks.check()
    return meter.stop(count, count * RECORD_PAYLOAD)


def _produce(spec: Spec) -> Result:
    topic = spec["topic"]
    keys, values = payload_pool()
    producer = _producer(spec)
    partitions = spec["partitions"]
    warm = _Acks(partitions)
    for partition in range(partitions):
        producer.produce(
            topic, values[0], keys[0], partition=partition, on_delivery=warm.on_delivery
        )
    producer.flush(30)
    warm.check()
    result = _produce_messages(producer, spec, topic, spec["messages"], partitions, False)
    result["warmup_messages"] = partitions
    result["settings"] = settings(spec) + (
        f" produce_batch({spec['call_size']} msgs, partition round-robin)+poll(0)"
        if spec["variant"] == "batch"
        else " produce()+poll(0) per message, flush()"
    )
    return result


def _fill(spec: Spec) -> Result:
    """Fill a topic for the consume workload (untimed as a benchmark)."""
    producer = _producer(spec)
    result = _produce_messages(
        producer, spec, spec["topic"], spec["messages"], spec["partitions"], False
    )
    result["settings"] = settings(spec)
    return result


def _consumer(spec: Spec, **overrides: Any) -> Consumer:
    config: dict[str, Any] = {
        "bootstrap.servers": spec["bootstrap"],
        # Required by the Consumer even with assign(); nothing is committed.
        "group.id": f"bench-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    config.update(overrides)
    return Consumer(config)


def _consume_all(consumer: Consumer, topic: str, partitions: int, expected: int) -> Result:
    consumer.list_topics(topic, timeout=10)  # connected, with metadata, before the clock
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    n = size = 0
    idle = 0
    meter = Meter()
    while n < expected:
        # consume() returns when it has num_messages or at the timeout: never ask for more
        # than are left, or the last call would wait out its timeout.
        messages = consumer.consume(num_messages=min(_FETCH_RECORDS, expected - n), timeout=1.0)
        if not messages:
            idle += 1
            if idle > 30:
                raise BenchError(f"no records for 30 s after {n} of {expected}")
            continue
        idle = 0
        for message in messages:
            if message.error() is not None:
                raise BenchError(f"consume error: {message.error()}")
            n += 1
            size += len(message.value()) + len(message.key())  # type: ignore[arg-type]
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
        f"assign(OFFSET_BEGINNING), consume(num_messages={_FETCH_RECORDS}), defaults "
        "(fetch.max.bytes=50MiB, queued.max.messages.kbytes=64MiB)"
    )
    return result


def _latency(spec: Spec) -> Result:
    topic = spec["topic"]
    rate, warmup, duration = spec["rate"], spec["warmup"], spec["duration"]
    total = int((warmup + duration) * rate)
    warm = int(warmup * rate)
    keys, values = payload_pool()
    acks = _Acks(total)
    # One request in flight, as trio-brod (partition_onwire_limit=1) and aiokafka have: with
    # linger.ms=0 and librdkafka's default of 1,000,000 in flight, every message becomes a
    # request of its own, and at 5,000/s the broker on this machine falls seconds behind.
    producer = _producer(spec, **{"linger.ms": 0, "compression.type": "none", "max.in.flight": 1})
    consumer = _consumer(spec, **{"fetch.wait.max.ms": 100})
    samples: list[int] = []
    received = [0]
    failure: list[BaseException] = []
    # Start at the end as it is now: resolving OFFSET_END inside librdkafka happens after
    # its first fetch starts, which can miss the first messages sent.
    _low, start = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.assign([TopicPartition(topic, 0, start)])
    ready = threading.Event()

    def consume() -> None:
        try:
            deadline = None
            while received[0] < total:
                # poll() hands over a message as soon as there is one; consume(n, timeout)
                # waits for n messages or the timeout.
                message = consumer.poll(0.1)
                ready.set()
                if message is not None:
                    if message.error() is not None:
                        raise BenchError(f"consume error: {message.error()}")
                    elapsed = latency_ns(message.value())  # type: ignore[arg-type]
                    if message.offset() - start >= warm:  # type: ignore[operator]
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
    ready.wait(10)
    schedule = RateSchedule(rate, total)
    cpu = Meter()
    while not schedule.done:
        for _ in range(schedule.due()):
            producer.produce(
                topic,
                stamped_value(values[schedule.sent & 1023]),
                keys[0],
                partition=0,
                on_delivery=acks.on_delivery,
            )
            schedule.sent += 1
        producer.poll(0)
        time.sleep(schedule.seconds_to_next())
    producer.flush(30)
    producer_done.set()
    thread.join()
    result = cpu.stop(total, total * RECORD_PAYLOAD)
    consumer.close()
    if failure:
        raise failure[0]
    acks.check()
    check_count("records received", received[0], total)
    result["latency"] = percentiles(samples)
    result["settings"] = (
        f"acks={spec['acks']} linger.ms=0 max.in.flight=1; consumer poll(0.1) in a thread, "
        "fetch.wait.max.ms=100"
    )
    return result


def _partitions(spec: Spec) -> Result:
    topic = spec["topic"]
    count = spec["partitions"]
    producer = _producer(spec)
    consumer = _consumer(spec)
    try:
        producer.list_topics(topic, timeout=10)
        gc.collect()
        time.sleep(0.2)
        before = rss_bytes()
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(count)])
        consumer.consume(num_messages=1, timeout=spec["settle"])
        after = rss_bytes()
        produced = _produce_messages(producer, spec, topic, spec["messages"], count, True)
        consumer.unassign()
        consumed = _consume_all(consumer, topic, count, spec["messages"])
    finally:
        consumer.close()
    return {
        "idle": {
            "rss_before": before,
            "rss_after": after,
            "per_partition": (after - before) / count,
            "what": "consumer assign()ed to every partition (producer state is lazy)",
        },
        "produce": produced,
        "consume": consumed,
        "settings": settings(spec) + ", round-robin partition=i % P; assign()+consume()",
    }


def _group_consumer(spec: Spec, group_id: str, **overrides: Any) -> Consumer:
    return _consumer(
        spec,
        **{
            "group.id": group_id,
            "enable.auto.commit": True,
            "session.timeout.ms": int(groups.SESSION_TIMEOUT_S * 1000),
            "heartbeat.interval.ms": int(groups.HEARTBEAT_S * 1000),
            **overrides,
        },
    )


def _group(spec: Spec) -> Result:
    """One member of a fresh group: subscribe(), consume() until the end."""
    expected = spec["messages"]
    # Timed from the start, join included (join_s says how much).
    meter = Meter()
    started = time.perf_counter()
    consumer = _group_consumer(spec, f"bench-group-{uuid.uuid4().hex[:8]}")
    n = size = 0
    joined = 0.0
    try:
        consumer.subscribe([spec["topic"]])
        idle = 0
        while n < expected:
            messages = consumer.consume(num_messages=min(_FETCH_RECORDS, expected - n), timeout=1.0)
            if not messages:
                idle += 1
                if idle > 60:
                    raise BenchError(f"no records for 60 s after {n} of {expected}")
                continue
            if not joined:
                joined = time.perf_counter() - started
            idle = 0
            for message in messages:
                if message.error() is not None:
                    raise BenchError(f"consume error: {message.error()}")
                n += 1
                size += len(message.value()) + len(message.key())  # type: ignore[arg-type]
        result = meter.stop(n, size)
    finally:
        consumer.close()
    check_count("consumed records", n, expected)
    result["join_s"] = joined
    result["settings"] = (
        f"subscribe() (group.id), consume(num_messages={_FETCH_RECORDS}), auto commit, "
        "default assignors (range,roundrobin)"
    )
    return result


def _rebalance(spec: Spec) -> Result:
    """A second and a third member join a consuming group (see bench.groups)."""
    topic = spec["topic"]
    partitions = groups.REBALANCE_PARTITIONS
    timeline = groups.Timeline(partitions)
    group_id = f"bench-rebalance-{uuid.uuid4().hex[:8]}"
    keys, values = payload_pool()
    acked = [0] * partitions
    failed: list[Any] = []
    stop_members = threading.Event()
    member_errors: list[BaseException] = []

    def on_delivery(error: Any, message: Any) -> None:
        if error is None:
            acked[message.partition()] += 1
        else:
            failed.append(error)

    kip848 = spec.get("group_protocol") == "consumer"

    def member(index: int) -> None:
        if kip848:
            # The broker assigns and times the session: librdkafka refuses the classic
            # assignor and timing properties with group.protocol=consumer.
            consumer = _consumer(
                spec,
                **{"group.id": group_id, "enable.auto.commit": True, "group.protocol": "consumer"},
            )
        else:
            consumer = _group_consumer(
                spec, group_id, **{"partition.assignment.strategy": "cooperative-sticky"}
            )
        try:
            consumer.subscribe([topic])
            while not stop_members.is_set():
                by_partition: dict[int, list[int]] = {}
                for message in consumer.consume(num_messages=_FETCH_RECORDS, timeout=0.1):
                    if message.error() is not None:
                        raise BenchError(f"consume error: {message.error()}")
                    by_partition.setdefault(message.partition(), []).append(message.offset())
                for partition, offsets in by_partition.items():
                    timeline.consumed(index, partition, offsets)
        except BaseException as exc:
            member_errors.append(exc)
        finally:
            consumer.close()

    producer = Producer({"bootstrap.servers": spec["bootstrap"], "acks": "1", "linger.ms": 5})
    producing = threading.Event()

    def produce() -> None:
        schedule = RateSchedule(spec["rate"], 10**12)
        i = 0
        while not producing.is_set():
            for _ in range(schedule.due()):
                producer.produce(
                    topic,
                    values[i & 1023],
                    keys[i & 1023],
                    partition=i % partitions,
                    on_delivery=on_delivery,
                )
                i += 1
                schedule.sent += 1
            producer.poll(0)
            time.sleep(schedule.seconds_to_next())
        producer.flush(30)

    def check_members() -> None:
        if member_errors:
            raise member_errors[0]

    threads = [threading.Thread(target=produce, daemon=True)]
    threads.append(threading.Thread(target=member, args=(0,), daemon=True))
    for thread in threads:
        thread.start()
    joins = []
    try:
        deadline = time.perf_counter() + 60
        while not timeline.all_consuming():
            check_members()
            if time.perf_counter() > deadline:
                raise BenchError("the first member consumed nothing")
            time.sleep(0.01)
        time.sleep(spec["settle"])
        for index in range(1, groups.MEMBERS):
            joined_at = time.perf_counter()
            thread = threading.Thread(target=member, args=(index,), daemon=True)
            threads.append(thread)
            thread.start()
            recovered = groups.wait_recovered(timeline, index, time.perf_counter() + 60)
            time.sleep(spec["settle"])
            check_members()
            joins.append(timeline.join_report(index, joined_at, recovered))
        producing.set()
        threads[0].join()
        deadline = time.perf_counter() + 60
        while timeline.distinct() < sum(acked):
            check_members()
            if time.perf_counter() > deadline:
                raise BenchError("the members did not drain the topic")
            time.sleep(0.05)
    finally:
        producing.set()
        stop_members.set()
        for thread in threads:
            thread.join(30)
    check_members()
    if failed:
        raise BenchError(f"{len(failed)} records failed: {failed[0]!r}")
    result = timeline.check_complete(acked)
    result["joins"] = joins
    how = (
        "group.protocol=consumer (KIP-848), the broker's uniform assignor"
        if kip848
        else "cooperative-sticky"
    )
    result["settings"] = (
        f"subscribe() per member (its own Consumer, consume() in a thread), {how}, "
        f"session {groups.SESSION_TIMEOUT_S:g} s, heartbeat {groups.HEARTBEAT_S:g} s; "
        f"{spec['rate']} msgs/s produced round-robin"
    )
    return result
