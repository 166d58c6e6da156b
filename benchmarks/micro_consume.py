"""The consume path's own CPU per record, offline: no broker, no sockets, no event loop.

Run::

    python benchmarks/micro_consume.py                  # zstd batches, as librdkafka writes them
    python benchmarks/micro_consume.py --codec none     # uncompressed batches
    python benchmarks/micro_consume.py --profile        # cProfile of one pass
    python benchmarks/micro_consume.py --against /path/to/other/checkout --rounds 6

What it measures: Fetch response frames as a broker sends them for a topic written by
librdkafka -- 1 MiB per fetch, batches of 1,000 records (about 128 KiB before compression),
16-byte keys and 100-byte values from the benchmark's payload pool, zstd frames without a
content size (librdkafka compresses with zstd's streaming API) -- go through what a
subscribed partition and the benchmark's subscriber do with them, in one thread:

1. the frame decoder, fed 256 KiB chunks as the connection's reader is, and the Fetch
   response decoder (``trio_brod.protocol.frames``);
2. ``select_runs``: batch headers and CRCs (``consumer._fetch``, ``decode_batches``);
3. the prefetch window and the message sets (``consumer._window``, ``MessageSet``), with the
   benchmark's window (20,000 messages, 8 MiB);
4. the benchmark's consume loop (``benchmarks/bench/clients/triobrod.py``): every record of
   every set, ``len(record.value) + len(record.key)``, the set acknowledged and dropped --
   decompressing and decoding the records on the way, and freeing them.

Each pass goes through ``--fetches`` fetches (8,000 records each). The CPU time of a pass
(``time.process_time``) is taken ``--repeat`` times; decompression alone (``decompress_view``
on the same batches, the call the consumer makes) is timed the same way, interleaved with the
passes. "own" is the pass less decompression: what trio-brod itself spends per record, which
is the same whichever codec, less decompression, that every client pays alike. Best and
median are printed, in ns per record. Not here: socket reads, Trio's scheduling, the fetch
requests (costs per fetch, not per record), and the broker.

The machine running it is usually shared: compare two versions of the code with
``--against``, which runs this script in fresh processes, alternately (in random order) from
this checkout and from the other one (its ``trio_brod`` first on ``sys.path``, its C extension
built), ``--rounds`` times, and prints the best and the median of the rounds' results.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cramjam

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.common import payload_pool

from trio_brod.consumer._fetch import select_runs
from trio_brod.consumer._window import Window
from trio_brod.consumer.message_set import MessageSet
from trio_brod.protocol import FetchResponse, _crc32c, records
from trio_brod.protocol._compression import decompress_view
from trio_brod.protocol.frames import FrameDecoder, decode_response
from trio_brod.protocol.records import Compression, encode_batch

RECORDS_PER_BATCH = 1000
BATCHES_PER_FETCH = 8
FETCH_VERSION = 16
TOPIC = "bench-topic"
RECEIVE_SIZE = 256 * 1024  # the connection reader's (trio_brod._net.handshake.RECEIVE_SIZE)
PREFETCH_COUNT = 20_000  # the benchmark's window (bench/plan.py)
PREFETCH_BYTES = 8 * 1024 * 1024
HEADER = struct.Struct(">qiibIhiqqqhii")  # the v2 batch header, 61 bytes
CRC_START = 21  # the CRC covers the batch from its attributes on
BASE_TS = 1_700_000_000_000


def librdkafka_like(base_offset: int, codec: str) -> bytes:
    """One batch of 1,000 records as librdkafka writes it (zstd: a streaming frame)."""
    keys, values = payload_pool()
    n = len(keys)
    records_in = []
    for i in range(base_offset, base_offset + RECORDS_PER_BATCH):
        records_in.append((BASE_TS + i // 200, keys[i % n], values[i % n], ()))
    plain = encode_batch(records_in, base_offset=base_offset)
    if codec == "none":
        return plain
    header = list(HEADER.unpack_from(plain))
    compressor = cramjam.zstd.Compressor()
    compressor.compress(plain[HEADER.size :])
    body = bytes(compressor.finish())
    header[1] = HEADER.size - 12 + len(body)  # batchLength: what follows it
    header[5] |= int(Compression.ZSTD)
    head = bytearray(HEADER.pack(*header))
    struct.pack_into(">I", head, 17, _crc32c.value(bytes(head[CRC_START:]) + body))
    return bytes(head) + body


def fetch_frames(fetches: int, codec: str) -> tuple[list[list[bytes]], list[bytes]]:
    """``fetches`` Fetch response frames (size prefix included, cut into the chunks a
    connection receives), and every batch in them."""
    frames = []
    batches = []
    offset = 0
    end = fetches * BATCHES_PER_FETCH * RECORDS_PER_BATCH
    for correlation_id in range(fetches):
        fetched = []
        for _ in range(BATCHES_PER_FETCH):
            fetched.append(librdkafka_like(offset, codec))
            offset += RECORDS_PER_BATCH
        batches += fetched
        data = FetchResponse.PartitionData(
            partition_index=0,
            high_watermark=end,
            last_stable_offset=end,
            records=b"".join(fetched),
        )
        response = FetchResponse(
            responses=[FetchResponse.FetchableTopicResponse(topic=TOPIC, partitions=[data])]
        )
        parts: list[bytes] = [struct.pack(">i", correlation_id), b"\x00"]  # header v1
        response.encode_into(FETCH_VERSION, parts)
        body = b"".join(parts)
        wire = struct.pack(">i", len(body)) + body
        frames.append([wire[i : i + RECEIVE_SIZE] for i in range(0, len(wire), RECEIVE_SIZE)])
    return frames, batches


def consume_pass(frames: list[list[bytes]]) -> int:
    """One pass of what a subscribed partition and the benchmark's subscriber do."""
    decoder = FrameDecoder(2**31 - 1)
    window = Window(PREFETCH_COUNT, PREFETCH_BYTES, 0)
    n = size = 0
    for chunks in frames:
        for chunk in chunks:
            decoder.feed(chunk)
        frame = decoder.next_frame()
        assert frame is not None
        response = decode_response(frame, FetchResponse, FETCH_VERSION)
        data = response.responses[0].partitions[0]
        offset = window.offset
        assert offset is not None
        selected = select_runs(TOPIC, 0, offset, data, "read_uncommitted")
        del frame, response, data  # as the worker keeps none of them
        window.add(selected.runs, selected.next_offset)
        del selected
        while window.undelivered:
            message_set = MessageSet(TOPIC, 0, 0, window.take())
            for record in message_set:
                n += 1
                size += len(record.value) + len(record.key)  # type: ignore[arg-type]
            window.ack(message_set.high_offset)
            del message_set
    return n


def decompress_pass(payloads: list[memoryview]) -> int:
    """Decompression alone, of the same batches, as the consumer calls it."""
    total = 0
    for payload in payloads:
        total += len(decompress_view(Compression.ZSTD, payload))
    return total


def cpu_seconds(func: Callable[..., object], *args: Any) -> float:
    start = time.process_time()
    func(*args)
    return time.process_time() - start


def measure(codec: str, fetches: int, repeat: int) -> dict[str, Any]:
    """ns per record: all, decompression alone, and own (best and median of ``repeat``)."""
    frames, batches = fetch_frames(fetches, codec)
    count = fetches * BATCHES_PER_FETCH * RECORDS_PER_BATCH
    payloads = [memoryview(batch)[HEADER.size :] for batch in batches]
    if consume_pass(frames) != count:  # also a warm-up
        raise AssertionError("a pass did not see every record")
    totals = []
    decompressions = []
    for _ in range(repeat):
        totals.append(cpu_seconds(consume_pass, frames))
        decompressions.append(cpu_seconds(decompress_pass, payloads) if codec != "none" else 0.0)
    ns = 1e9 / count
    result: dict[str, Any] = {"codec": codec, "records": count, "c": records.IMPLEMENTATION}
    for name, seconds in (("all", totals), ("zstd", decompressions)):
        result[f"{name}_best"] = round(min(seconds) * ns, 1)
        result[f"{name}_median"] = round(statistics.median(seconds) * ns, 1)
    result["own_best"] = round(result["all_best"] - result["zstd_best"], 1)
    result["own_median"] = round(result["all_median"] - result["zstd_median"], 1)
    return result


def against(other: Path, args: argparse.Namespace) -> None:
    """Alternate this checkout and ``other`` in fresh processes; print both summaries."""
    here = Path(__file__).resolve().parent.parent
    checkouts = {"this": here, "other": other.resolve()}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in checkouts}
    for _ in range(args.rounds):
        order = list(checkouts)
        random.shuffle(order)
        for name in order:
            root = checkouts[name]
            env = {**os.environ, "PYTHONPATH": str(root)}
            command = [sys.executable, str(root / "benchmarks" / "micro_consume.py"), "--json"]
            command += ["--codec", args.codec, "--fetches", str(args.fetches)]
            command += ["--repeat", str(args.repeat)]
            output = subprocess.run(
                command, env=env, capture_output=True, text=True, check=True, cwd=root
            ).stdout
            results[name].append(json.loads(output.splitlines()[-1]))
    print(f"{args.codec}, {args.rounds} rounds of {args.repeat} passes, own CPU ns per record:")
    for name, rounds in results.items():
        bests = [r["own_best"] for r in rounds]
        medians = [r["own_median"] for r in rounds]
        print(
            f"  {name:5} best {min(bests):6.1f}  median of bests {statistics.median(bests):6.1f}"
            f"  median of medians {statistics.median(medians):6.1f}   ({checkouts[name]})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--codec", choices=("zstd", "none"), default="zstd")
    parser.add_argument("--fetches", type=int, default=25, help="per pass (8,000 records each)")
    parser.add_argument("--repeat", type=int, default=9, help="passes (best and median)")
    parser.add_argument("--profile", action="store_true", help="cProfile one pass and print it")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument("--rounds", type=int, default=6, help="with --against")
    args = parser.parse_args()

    if args.against is not None:
        against(args.against, args)
        return 0
    if args.profile:
        import cProfile
        import pstats

        frames, _ = fetch_frames(args.fetches, args.codec)
        consume_pass(frames)
        profiler = cProfile.Profile()
        profiler.runcall(consume_pass, frames)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return 0
    result = measure(args.codec, args.fetches, args.repeat)
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{args.codec}, {result['records']:,} records per pass, {args.repeat} passes, "
        f"record codec {result['c']}: CPU ns per record"
    )
    for name, label in (("all", "all"), ("zstd", "decompression"), ("own", "own")):
        best, median = result[f"{name}_best"], result[f"{name}_median"]
        print(f"  {label:14} best {best:7.1f}  median {median:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
