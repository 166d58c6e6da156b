"""trio-brod: ``client.produce`` (one call per message) and ``client.produce_batch`` rows,
per-partition subscriptions for consuming."""

from __future__ import annotations

import functools
import gc
import time
import uuid
from typing import Any

import trio

import trio_brod
from bench import groups
from bench.clients import triobrod_txn
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


def _observe(how: str | None) -> None:
    """The rows that measure observing's cost (trio_brod.observe): with OpenTelemetry's SDK
    metrics on, or with no hook at all. The other rows run as installed: with
    opentelemetry-api present (the dev extra), its hook is registered, with no provider."""
    from trio_brod import observe

    if how == "off":
        observe.state.hooks = ()
    elif how == "sdk":
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def run(spec: Spec) -> Result:
    _observe(spec.get("observe"))
    workload = {
        "produce": _produce,
        "consume": _consume,
        "latency": _latency,
        "partitions": _partitions,
        "group": _group,
        "rebalance": _rebalance,
        "txn_produce": triobrod_txn.txn_produce,
        "txn_process": triobrod_txn.txn_process,
    }[spec["workload"]]
    result: Result = trio.run(workload, spec)
    result["version"] = trio_brod.__version__
    return result


def producer_config(spec: Spec) -> trio_brod.ProducerConfig:
    return trio_brod.ProducerConfig(
        required_acks=spec["acks"],
        compression=spec["compression"],
        max_linger=spec["linger_ms"] / 1000,
        max_batch_size=spec["batch_bytes"],
        partition_onwire_limit=spec.get("onwire", 5),
    )


def settings(spec: Spec) -> str:
    return (
        f"acks={spec['acks']} compression={spec['compression']} "
        f"max_batch_size={spec['batch_bytes']} max_linger={spec['linger_ms']}ms "
        f"partition_onwire_limit={spec.get('onwire', 5)} idempotence={spec['acks'] == -1}"
    )


def _fetch_connection(spec: Spec) -> dict[str, str]:
    """The row's ``fetch_connection`` (the default, a fetcher per broker, unless it says)."""
    return {"fetch_connection": spec.get("fetch_connection", "broker")}


def consumer_config(spec: Spec) -> trio_brod.ConsumerConfig:
    """The consumer config of the row: the prefetch window and ``fetch_connection``."""
    return trio_brod.ConsumerConfig(**consume_options(spec), **_fetch_connection(spec))


def consume_options(spec: Spec) -> dict[str, Any]:
    return {
        "prefetch_count": spec["tb_prefetch_count"],
        "prefetch_bytes": spec["tb_prefetch_bytes"],
        "isolation_level": "read_uncommitted",
    }


class _Acks:
    """Counts acknowledged records from receipt callbacks; wakes the waiter at the target."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.acked = 0
        self.failed = 0
        self.first_error: BaseException | None = None
        self.done = trio.Event()

    def on_done(self, receipt: trio_brod.DeliveryReceipt, count: int = 1) -> None:
        error = receipt.exception()
        if error is None:
            self.acked += count
        else:
            self.failed += count
            self.first_error = self.first_error or error
        if self.acked + self.failed >= self.target:
            self.done.set()

    async def wait(self) -> None:
        if self.acked + self.failed < self.target:
            await self.done.wait()
        if self.failed:
            raise BenchError(f"{self.failed} records failed: {self.first_error!r}")
        check_count("acknowledged records", self.acked, self.target)


async def _warm_up(client: trio_brod.Client, topic: str, partitions: int) -> int:
    """One acknowledged record per partition: connections and metadata are ready."""
    keys, values = payload_pool()
    for partition in range(partitions):
        await (await client.produce(topic, values[0], keys[0], partition=partition))
    return partitions


async def _produce_messages(
    client: trio_brod.Client, spec: Spec, topic: str, count: int, partitions: int, spread: bool
) -> Result:
    """The timed part: ``count`` records, all acknowledged."""
    keys, values = payload_pool()
    acks = _Acks(count)
    meter = Meter()
    if spec["variant"] == "batch":
        pairs = list(zip(keys, values, strict=True))
        pairs += pairs  # slices that wrap around the pool
        size = spec["call_size"]
        produce_batch = client.produce_batch
        sent = 0
        call = 0
        while sent < count:
            n = min(size, count - sent)
            start = sent % len(keys)
            receipt = await produce_batch(
                topic, pairs[start : start + n], partition=call % partitions
            )
            receipt.add_done_callback(functools.partial(acks.on_done, count=n))
            sent += n
            call += 1
    else:
        produce = client.produce
        on_done = acks.on_done
        if spread:  # round-robin over all partitions, as every client does for this one
            for i in range(count):
                j = i & 1023
                receipt = await produce(topic, values[j], keys[j], partition=i % partitions)
                receipt.add_done_callback(on_done)
        else:  # the default partitioner (murmur2 of the key)
            for i in range(count):
                j = i & 1023
                receipt = await produce(topic, values[j], keys[j])
                receipt.add_done_callback(on_done)
    await acks.wait()
    return meter.stop(count, count * RECORD_PAYLOAD)


async def _produce(spec: Spec) -> Result:
    topic = spec["topic"]
    async with trio_brod.open_client([spec["bootstrap"]], client_id="bench") as client:
        await client.start_producer(topic, producer_config(spec))
        partitions = await client.get_partitions_count(topic)
        warm = await _warm_up(client, topic, partitions)
        result = await _produce_messages(client, spec, topic, spec["messages"], partitions, False)
    result["warmup_messages"] = warm
    result["settings"] = settings(spec) + (
        f" produce_batch({spec['call_size']} msgs, partition round-robin)"
        if spec["variant"] == "batch"
        else " produce() per message, default partitioner"
    )
    return result


async def _consume_all(client: trio_brod.Client, spec: Spec, topic: str, expected: int) -> Result:
    partitions = await client.get_partitions_count(topic)
    ranges = []
    for partition in range(partitions):
        first = await client.resolve_offset(topic, partition, "earliest")
        end = await client.resolve_offset(topic, partition, "latest")
        ranges.append((partition, first, end))
    check_count("records in the topic", sum(end - first for _, first, end in ranges), expected)
    options = consume_options(spec)
    counts = [0, 0]

    async def consume_partition(partition: int, first: int, end: int) -> None:
        if end <= first:
            return
        n = size = 0
        async with client.subscribe(topic, partition, begin_offset=first, **options) as sub:
            async for message_set in sub:
                for record in message_set:
                    n += 1
                    # Every benchmark record has both (no `or b""`: same work as the peers).
                    size += len(record.value) + len(record.key)  # type: ignore[arg-type]
                sub.ack(message_set.high_offset)
                if message_set.high_offset >= end - 1:
                    break
        counts[0] += n
        counts[1] += size

    meter = Meter()
    async with trio.open_nursery() as nursery:
        for partition, first, end in ranges:
            nursery.start_soon(consume_partition, partition, first, end)
    result = meter.stop(counts[0], counts[1])
    check_count("consumed records", counts[0], expected)
    return result


async def _consume(spec: Spec) -> Result:
    async with trio_brod.open_client([spec["bootstrap"]], client_id="bench") as client:
        await client.start_consumer(spec["topic"], consumer_config(spec))
        result = await _consume_all(client, spec, spec["topic"], spec["messages"])
        # Leave at once: the fetchers need not finish their long polls.
        await client.stop_consumer(spec["topic"])
    options = consume_options(spec)
    result["settings"] = (
        "subscribe() per partition, prefetch_count={prefetch_count} "
        "prefetch_bytes={prefetch_bytes}, max_bytes=1MiB (default), "
        "fetch_connection={fetch_connection}".format(**options, **_fetch_connection(spec))
    )
    return result


async def _latency(spec: Spec) -> Result:
    topic = spec["topic"]
    rate, warmup, duration = spec["rate"], spec["warmup"], spec["duration"]
    total = int((warmup + duration) * rate)
    warm = int(warmup * rate)
    keys, values = payload_pool()
    samples: list[int] = []
    received = 0
    acks = _Acks(total)
    config = trio_brod.ProducerConfig(required_acks=spec["acks"], max_linger=0)
    async with trio_brod.open_client([spec["bootstrap"]], client_id="bench") as client:
        await client.start_producer(topic, config)
        start = await client.resolve_offset(topic, 0, "latest")
        subscribed = trio.Event()
        finished = trio.Event()

        async def consume() -> None:
            nonlocal received
            options = consume_options(spec)
            async with client.subscribe(topic, 0, begin_offset=start, **options) as sub:
                subscribed.set()
                async for message_set in sub:
                    for record in message_set:
                        elapsed = latency_ns(record.value)  # type: ignore[arg-type]
                        if record.offset - start >= warm:
                            samples.append(elapsed)
                        received += 1
                    sub.ack(message_set.high_offset)
                    if received >= total:
                        break
            finished.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            await subscribed.wait()
            schedule = RateSchedule(rate, total)
            cpu = Meter()
            while not schedule.done:
                for _ in range(schedule.due()):
                    receipt = await client.produce(
                        topic, stamped_value(values[schedule.sent & 1023]), keys[0], partition=0
                    )
                    receipt.add_done_callback(acks.on_done)
                    schedule.sent += 1
                await trio.sleep(schedule.seconds_to_next())
            with trio.fail_after(30):
                await acks.wait()
                await finished.wait()
            result = cpu.stop(total, total * RECORD_PAYLOAD)
            nursery.cancel_scope.cancel()
    check_count("records received", received, total)
    result["latency"] = percentiles(samples)
    result["settings"] = f"acks={spec['acks']} max_linger=0, subscribe() from the end"
    return result


async def _partitions(spec: Spec) -> Result:
    topic = spec["topic"]
    partitions = spec["partitions"]
    async with trio_brod.open_client([spec["bootstrap"]], client_id="bench") as client:
        await client.get_metadata([topic])
        gc.collect()
        await trio.sleep(0.2)
        rss_idle_before = rss_bytes()
        await client.start_producer(topic, producer_config(spec))
        await client.start_consumer(topic, consumer_config(spec))
        await trio.sleep(spec["settle"])
        gc.collect()
        rss_idle_after = rss_bytes()
        produced = await _produce_messages(
            client, spec, topic, spec["messages"], partitions, spread=True
        )
        consumed = await _consume_all(client, spec, topic, spec["messages"])
        await client.stop_consumer(topic)
    return {
        "idle": {
            "rss_before": rss_idle_before,
            "rss_after": rss_idle_after,
            "per_partition": (rss_idle_after - rss_idle_before) / partitions,
            "what": "start_producer + start_consumer (idle workers)",
        },
        "produce": produced,
        "consume": consumed,
        "settings": settings(spec)
        + ", round-robin partition=i % P; subscribe() per partition, "
        "fetch_connection={fetch_connection}".format(**_fetch_connection(spec)),
    }


def _group_config(spec: Spec) -> trio_brod.GroupConfig:
    if spec.get("group_protocol") == "consumer":
        # KIP-848: the broker assigns (uniform) and sets the session and heartbeat interval
        # (the bench broker's: bench.groups.HEARTBEAT_S).
        return trio_brod.GroupConfig(group_protocol="consumer")
    return trio_brod.GroupConfig(
        partition_assignment_strategy=spec.get("assignor", "cooperative-sticky"),
        session_timeout=groups.SESSION_TIMEOUT_S,
        heartbeat_rate=groups.HEARTBEAT_S,
    )


def _group_consumer_config(spec: Spec) -> trio_brod.ConsumerConfig:
    return trio_brod.ConsumerConfig(
        begin_offset="earliest", **consume_options(spec), **_fetch_connection(spec)
    )


async def _group(spec: Spec) -> Result:
    """One member of a fresh group reads the whole topic through the group subscriber."""
    expected = spec["messages"]
    per_message = spec.get("group_message_type", "message_set") == "message"
    done = trio.Event()
    counts = [0, 0]
    joined: list[float] = []

    firsts: dict[int, float] = {}

    def first(partition: int = -1) -> None:
        firsts.setdefault(partition, time.perf_counter() - started)
        if not joined:
            joined.append(time.perf_counter() - started)

    async def handle_set(assigned: trio_brod.AssignedPartition, message_set: Any) -> None:
        first(assigned.partition)
        n = size = 0
        for record in message_set:
            n += 1
            size += len(record.value) + len(record.key)
        counts[0] += n
        counts[1] += size
        if counts[0] >= expected:
            done.set()

    async def handle_message(assigned: trio_brod.AssignedPartition, record: Any) -> None:
        # The same work per message as the peers' loops: no clock read once joined.
        if not joined:
            first()
        counts[0] += 1
        counts[1] += len(record.value) + len(record.key)
        if counts[0] >= expected:
            done.set()

    # Timed from the start, join included, as for the peers: the group's way in is part of
    # consuming through it (join_s says how much).
    meter = Meter()
    started = time.perf_counter()
    async with (
        trio_brod.open_client([spec["bootstrap"]], client_id="bench") as client,
        trio_brod.open_group_subscriber(
            client,
            f"bench-group-{uuid.uuid4().hex[:8]}",
            [spec["topic"]],
            handle_message if per_message else handle_set,
            config=_group_config(spec),
            consumer_config=_group_consumer_config(spec),
            message_type="message" if per_message else "message_set",
        ),
    ):
        with trio.fail_after(spec["timeout"]):
            await done.wait()
        result = meter.stop(counts[0], counts[1])
    check_count("consumed records", counts[0], expected)
    result["join_s"] = joined[0]
    result["first_s"] = {str(p): round(t, 3) for p, t in sorted(firsts.items())}
    result["settings"] = (
        f"open_group_subscriber(), a handler per {'message' if per_message else 'message set'}"
        f", {_group_config(spec).partition_assignment_strategy}, prefetch_count="
        f"{spec['tb_prefetch_count']} prefetch_bytes={spec['tb_prefetch_bytes']}"
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
    stop_members = trio.Event()

    def on_done(partition: int, receipt: trio_brod.DeliveryReceipt) -> None:
        error = receipt.exception()
        if error is None:
            acked[partition] += 1
        else:
            failed.append(error)

    async def member(index: int) -> None:
        async def handle(assigned: trio_brod.AssignedPartition, message_set: Any) -> None:
            timeline.consumed(index, assigned.partition, [m.offset for m in message_set])

        async with (
            trio_brod.open_client([spec["bootstrap"]], client_id=f"m{index}") as client,
            trio_brod.open_group_subscriber(
                client,
                group_id,
                [topic],
                handle,
                config=_group_config(spec),
                consumer_config=_group_consumer_config(spec),
                message_type="message_set",
            ),
        ):
            await stop_members.wait()

    async def wait_for(check: Any) -> Any:
        # Polled: the timeline is the one the thread-based clients fill too.
        with trio.fail_after(60):
            while not (answer := check()):  # noqa: ASYNC110
                await trio.sleep(0.01)
        return answer

    def drained() -> bool:
        return sum(acked) + len(failed) >= sent[0] and timeline.distinct() >= sum(acked)

    joins = []
    async with trio_brod.open_client([spec["bootstrap"]], client_id="bench") as client:
        await client.start_producer(
            topic, trio_brod.ProducerConfig(required_acks=1, max_linger=0.005)
        )
        producing = trio.Event()

        async def produce() -> None:
            rate = spec["rate"]
            i = 0
            schedule = RateSchedule(rate, 10**12)
            while not producing.is_set():
                for _ in range(schedule.due()):
                    p = i % partitions
                    receipt = await client.produce(
                        topic, values[i & 1023], keys[i & 1023], partition=p
                    )
                    receipt.add_done_callback(functools.partial(on_done, p))
                    i += 1
                    sent[0] += 1
                    schedule.sent += 1
                await trio.sleep(schedule.seconds_to_next())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            nursery.start_soon(member, 0)
            await wait_for(timeline.all_consuming)
            await trio.sleep(spec["settle"])
            for index in range(1, groups.MEMBERS):
                joined_at = time.perf_counter()
                nursery.start_soon(member, index)
                recovered = await wait_for(functools.partial(timeline.recovered_at, index))
                await trio.sleep(spec["settle"])
                joins.append(timeline.join_report(index, joined_at, recovered))
            producing.set()
            await wait_for(drained)
            stop_members.set()
    if failed:
        raise BenchError(f"{len(failed)} records failed: {failed[0]!r}")
    result = timeline.check_complete(acked)
    result["joins"] = joins
    config = _group_config(spec)
    how = (
        "consumer protocol (KIP-848), the broker's uniform assignor"
        if config.group_protocol == "consumer"
        else config.partition_assignment_strategy
    )
    result["settings"] = (
        f"open_group_subscriber() per member (its own client), {how}, "
        f"session {groups.SESSION_TIMEOUT_S:g} s, heartbeat {groups.HEARTBEAT_S:g} s; "
        f"{spec['rate']} msgs/s produced round-robin"
    )
    return result
