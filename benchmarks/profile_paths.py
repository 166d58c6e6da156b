"""Where trio-brod's produce and consume paths spend their time, layer by layer.

Run: ``python benchmarks/profile_paths.py`` (starts a broker; ``--bootstrap host:port`` to use
one). Two views, written to ``benchmarks/results/profile.json`` and ``profile-*.txt``:

1. **Layers in isolation** (no broker, no Trio loop): each piece of the path timed alone on
   the benchmark's records (16-byte key, 100-byte value), as microseconds per message:
   argument checks and size estimate, the partitioner, the receipt, the memory channel, the
   record batch encoder (plain and zstd), the producer-state rewrite, the Produce frame; and
   on the way back the Fetch response frame decoder, the record batch decoder and building
   the Record tuples.
2. **The real paths under pyinstrument**: ``client.produce`` per message, ``produce_batch``,
   and a subscriber reading a 1-partition topic, against the broker, with the samples'
   self time summed per layer (by the module the sampled frame is in). Sampling inflates
   the absolute times, so the shares are what to read; the µs per message column scales the
   shares to the CPU time of an unprofiled run of the same workload.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trio
from bench.broker import Broker, TopicSpec, open_broker
from bench.common import RECORD_PAYLOAD, payload_pool

import trio_brod
from trio_brod.producer import partitioners
from trio_brod.producer.receipt import DeliveryReceipt
from trio_brod.protocol import FetchResponse, ProduceRequest
from trio_brod.protocol.frames import decode_response, encode_request
from trio_brod.protocol.records import (
    Compression,
    decode_batches,
    encode_batch,
    estimate_record_size,
    with_producer_state,
)


def _ignore(_receipt: DeliveryReceipt) -> None:
    pass


RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 1000  # records per batch, about what a 128 KiB batch holds


def per_call(func: Callable[[], object], calls_per_run: int, repeat: int = 7) -> float:
    """Best seconds per call over ``repeat`` runs of a loop calibrated to ~0.1 s."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            func()
        elapsed = time.perf_counter() - start
        if elapsed > 0.1:
            break
        loops *= 2
    best = elapsed
    for _ in range(repeat - 1):
        start = time.perf_counter()
        for _ in range(loops):
            func()
        best = min(best, time.perf_counter() - start)
    return best / loops / calls_per_run


# ---------------------------------------------------------------- layers in isolation


def isolated_layers() -> list[dict[str, Any]]:
    keys, values = payload_pool()
    now = time.time_ns() // 1_000_000
    records = [(now, keys[i % 1024], values[i % 1024], ()) for i in range(BATCH)]
    rows: list[dict[str, Any]] = []

    def add(path: str, layer: str, seconds_per_message: float, note: str = "") -> None:
        rows.append(
            {"path": path, "layer": layer, "us_per_msg": seconds_per_message * 1e6, "note": note}
        )

    # produce: the user call's own work
    key, value = keys[0], values[0]
    add(
        "produce",
        "size estimate + type checks (estimate_record_size)",
        per_call(lambda: estimate_record_size(key, value, ()), 1),
    )
    chooser = partitioners.resolve_partitioner("default")
    add(
        "produce",
        "default partitioner, 8 partitions (murmur2 of a 16 B key)",
        per_call(lambda: chooser("t", 8, key, value), 1),
    )
    add("produce", "murmur2 alone", per_call(lambda: partitioners.murmur2(key), 1))
    add(
        "produce",
        "DeliveryReceipt() + add_done_callback",
        per_call(lambda: DeliveryReceipt("t", 0).add_done_callback(_ignore), 1),
    )
    send, receive = trio.open_memory_channel[object](10)

    def channel_round_trip() -> None:
        send.send_nowait(None)
        receive.receive_nowait()

    add("produce", "memory channel send_nowait + receive_nowait", per_call(channel_round_trip, 1))
    batch_none = encode_batch(records)
    add(
        "produce",
        "record batch encode, no compression (1,000 records)",
        per_call(lambda: encode_batch(records), BATCH),
    )
    add(
        "produce",
        "record batch encode, zstd (1,000 records)",
        per_call(lambda: encode_batch(records, compression=Compression.ZSTD), BATCH),
    )
    add(
        "produce",
        "producer state rewrite (idempotence: id, epoch, sequence + CRC)",
        per_call(
            lambda: with_producer_state(
                batch_none, producer_id=1, producer_epoch=0, base_sequence=0
            ),
            BATCH,
        ),
    )
    request = ProduceRequest(
        transactional_id=None,
        acks=1,
        timeout_ms=10_000,
        topic_data=[
            ProduceRequest.TopicProduceData(
                name="bench-topic",
                partition_data=[ProduceRequest.PartitionProduceData(index=0, records=batch_none)],
            )
        ],
    )
    version = ProduceRequest.MAX_STABLE_VERSION
    add(
        "produce",
        f"Produce request frame (v{version}, one 1,000-record batch)",
        per_call(lambda: encode_request(request, version, 7, "bench"), BATCH),
    )

    # consume: a Fetch response with 1 MiB of batches
    fetched = b"".join(encode_batch(records, base_offset=i * BATCH) for i in range(8))
    fetched_zstd = b"".join(
        encode_batch(records, base_offset=i * BATCH, compression=Compression.ZSTD) for i in range(8)
    )
    response = FetchResponse(
        responses=[
            FetchResponse.FetchableTopicResponse(
                topic="bench-topic",
                partitions=[
                    FetchResponse.PartitionData(
                        partition_index=0, high_watermark=8 * BATCH, records=fetched
                    )
                ],
            )
        ]
    )
    fetch_version = 12
    parts: list[bytes] = [b"\x00\x00\x00\x07", b"\x00"]  # correlation id, header tags
    response.encode_into(fetch_version, parts)
    frame = b"".join(parts)
    add(
        "consume",
        f"Fetch response frame decode (v{fetch_version}, 8,000 records)",
        per_call(lambda: decode_response(frame, FetchResponse, fetch_version), 8 * BATCH),
    )
    add(
        "consume",
        "batch headers + CRC (decode_batches, 8 batches)",
        per_call(lambda: decode_batches(fetched), 8 * BATCH),
    )

    def decode_all(data: bytes) -> Callable[[], int]:
        def run() -> int:
            n = 0
            for batch in decode_batches(data).batches:
                for record in batch.records():
                    n += len(record.value)  # type: ignore[arg-type]
            return n

        return run

    add(
        "consume",
        "... + records into Record tuples, touching each value",
        per_call(decode_all(fetched), 8 * BATCH),
    )
    add("consume", "... the same from zstd batches", per_call(decode_all(fetched_zstd), 8 * BATCH))
    return rows


# ---------------------------------------------------------------- real paths, profiled

#: Which layer a sampled frame belongs to, by the file it is in (first match wins).
LAYERS: list[tuple[str, str]] = [
    ("benchmarks/profile_paths", "user code (the benchmark's loop)"),
    ("trio_brod/producer/partitioners", "partitioner"),
    ("trio_brod/producer/receipt", "receipts and their callbacks"),
    ("trio_brod/producer/_buffer", "producer buffer"),
    ("trio_brod/producer", "producer worker and produce() itself"),
    ("trio_brod/client", "client.produce/subscribe dispatch"),
    ("trio_brod/protocol/records", "record batch encode/decode"),
    ("trio_brod/protocol/_compression", "compression codecs"),
    ("trio_brod/protocol/_crc32c", "CRC32C"),
    ("trio_brod/protocol/_gen", "message encode/decode (generated)"),
    ("trio_brod/protocol/_primitives", "message encode/decode (generated)"),
    ("trio_brod/protocol/frames", "frames"),
    ("trio_brod/_net", "connection reader/writer tasks"),
    ("trio_brod/consumer", "consumer worker, fetch parsing, window, MessageSet"),
    ("trio/_channel", "trio memory channels"),
    ("trio/_highlevel_socket", "sockets (trio + kernel)"),
    ("trio/_socket", "sockets (trio + kernel)"),
    ("trio/_core/_io_epoll", "sockets (trio + kernel)"),
    ("trio/_sync", "trio Events/Locks"),
    ("trio/_timeouts", "trio scheduler and checkpoints"),
    ("trio/_core", "trio scheduler and checkpoints"),
    ("trio/", "trio (other)"),
    ("<built-in>", "builtins"),
]


def layer_of(path: str) -> str:
    normalised = path.replace("\\", "/")
    for needle, layer in LAYERS:
        if needle in normalised:
            return layer
    return "other (stdlib, site-packages)"


def _self_times(frame: Any, into: dict[str, float], parent_layer: str) -> None:
    path = frame.file_path or ""
    layer = layer_of(path) if path else parent_layer
    # Built-in calls (socket.send, cramjam, google_crc32c) count in their caller's layer.
    if path in ("", "<built-in>") or frame.is_synthetic:
        layer = parent_layer
    into[layer] = into.get(layer, 0.0) + frame.total_self_time
    for child in frame.children:
        _self_times(child, into, layer)


@contextlib.contextmanager
def profiled(name: str, messages: int, sink: list[dict[str, Any]]) -> Iterator[None]:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0002, async_mode="disabled")
    profiler.start()
    cpu = time.process_time()
    try:
        yield
    finally:
        cpu = time.process_time() - cpu
        profiler.stop()
        RESULTS.mkdir(exist_ok=True)
        text = profiler.output_text(unicode=False, color=False, show_all=False)
        (RESULTS / f"profile-{name}.txt").write_text(text)
        layers: dict[str, float] = {}
        root = profiler.last_session.root_frame() if profiler.last_session else None
        if root is not None:
            _self_times(root, layers, "user code (the benchmark's loop)")
        total = sum(layers.values()) or 1.0
        sink.append(
            {
                "name": name,
                "messages": messages,
                "profiled_cpu_s": cpu,
                "layers": {k: v / total for k, v in sorted(layers.items(), key=lambda kv: -kv[1])},
            }
        )


async def produce_single(client: trio_brod.Client, topic: str, count: int) -> None:
    keys, values = payload_pool()
    done = trio.Event()
    acked = 0

    def on_done(receipt: DeliveryReceipt) -> None:
        nonlocal acked
        acked += 1
        if acked == count:
            done.set()

    for i in range(count):
        receipt = await client.produce(topic, values[i & 1023], keys[i & 1023])
        receipt.add_done_callback(on_done)
    await done.wait()


async def produce_batches(client: trio_brod.Client, topic: str, count: int) -> None:
    keys, values = payload_pool()
    pairs = list(zip(keys, values, strict=True)) * 2
    receipts = []
    for start in range(0, count, BATCH):
        offset = start % 1024
        receipts.append(
            await client.produce_batch(topic, pairs[offset : offset + BATCH], partition=0)
        )
    for receipt in receipts:
        await receipt


async def consume(client: trio_brod.Client, topic: str, count: int) -> None:
    seen = 0
    async with client.subscribe(
        topic,
        0,
        begin_offset="earliest",
        prefetch_count=20_000,
        prefetch_bytes=8 << 20,
        isolation_level="read_uncommitted",
    ) as sub:
        async for message_set in sub:
            for record in message_set:
                seen += len(record.value) > 0  # type: ignore[arg-type]
            sub.ack(message_set.high_offset)
            if seen >= count:
                break


async def real_paths(
    bootstrap: str, topics: dict[str, str], count: int, profile: bool
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    sink: list[dict[str, Any]] = []
    cpu_per_message: dict[str, float] = {}
    config = trio_brod.ProducerConfig(
        required_acks=1, max_linger=0.005, max_batch_size=128 * 1024, partition_onwire_limit=5
    )
    batch_config = trio_brod.ProducerConfig(
        required_acks=1, max_batch_size=128 * 1024, partition_onwire_limit=5
    )
    cases: list[tuple[str, str, trio_brod.ProducerConfig | None, Any]] = [
        ("produce-single-1p", topics["single"], config, produce_single),
        ("produce-single-8p", topics["single8"], config, produce_single),
        ("produce-batch-1p", topics["batch"], batch_config, produce_batches),
        ("consume-1p", topics["single"], None, consume),
    ]
    async with trio_brod.open_client([bootstrap], client_id="profile") as client:
        for name, topic, producer_config, work in cases:
            if producer_config is not None:
                await client.start_producer(topic, producer_config)
                await (await client.produce(topic, b"warm-up", partition=0))
            cpu = time.process_time()
            if profile:
                with profiled(name, count, sink):
                    await work(client, topic, count)
            else:
                await work(client, topic, count)
            cpu_per_message[name] = (time.process_time() - cpu) / count
            if producer_config is not None:
                await client.stop_producer(topic)
    return sink, cpu_per_message


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap")
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    print("layers in isolation ...", flush=True)
    isolated = isolated_layers()
    for row in isolated:
        print(f"  {row['path']:<8} {row['us_per_msg']:7.3f} us/msg  {row['layer']}")
    with open_broker(args.bootstrap) as broker:
        topics = _topics(broker)
        print("real paths, unprofiled (for CPU per message) ...", flush=True)
        _, plain = trio.run(real_paths, broker.bootstrap, topics, args.messages, False)
        topics = _topics(broker)
        print("real paths, under pyinstrument ...", flush=True)
        profiles, _ = trio.run(real_paths, broker.bootstrap, topics, args.messages, True)
    for entry in profiles:
        cpu_us = plain[entry["name"]] * 1e6
        entry["unprofiled_cpu_us_per_msg"] = cpu_us
        entry["layers_us_per_msg"] = {k: share * cpu_us for k, share in entry["layers"].items()}
        print(f"\n{entry['name']}: {cpu_us:.2f} us of CPU per message (unprofiled)")
        for layer, share in entry["layers"].items():
            if share >= 0.005:
                print(f"  {share * 100:5.1f}%  {share * cpu_us:6.2f} us  {layer}")
    out = {
        "isolated": isolated,
        "paths": profiles,
        "messages": args.messages,
        "record_bytes": RECORD_PAYLOAD,
        "trio_brod": trio_brod.__version__,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "profile.json").write_text(json.dumps(out, indent=1))
    print(f"\nwrote {RESULTS / 'profile.json'} and {RESULTS}/profile-*.txt")
    return 0


def _topics(broker: Broker) -> dict[str, str]:
    stamp = f"{time.time_ns() % 10**9:09d}"
    topics = {
        "single": f"prof-{stamp}-1p",
        "single8": f"prof-{stamp}-8p",
        "batch": f"prof-{stamp}-batch",
    }
    broker.create_topics(
        [
            TopicSpec(topics["single"], 1),
            TopicSpec(topics["single8"], 8),
            TopicSpec(topics["batch"], 1),
        ]
    )
    return topics


if __name__ == "__main__":
    sys.exit(main())
