"""Micro-benchmarks of record batches: encode and decode rates, per codec, against other clients.

Run: ``python benchmarks/micro_records.py`` (``--repeat 20`` on a noisy machine, ``--quick``
for a smoke run).

The reference workload is a batch of 1,000 records with 16-byte keys and 100-byte values, no
headers, timestamps a few ms apart. Each case reports the best rate over several repeats (the
run least disturbed by other processes), in records per second.

"decode" means what a consumer does: decode the batch header, verify the CRC, decode every
record and touch its value. "encode" means what a producer does: turn (timestamp, key, value,
headers) tuples into a finished batch with its CRC.

trio-brod runs with its C record codec (``trio_brod.protocol._speedups``) if it is built, and
always with the pure-Python one ("trio-brod (py)", as with ``TRIO_BROD_PURE_PYTHON=1``). Where
aiokafka (compiled and pure-Python record classes) and kafka-python are installed, they run the
same workload, and the ratio trio-brod / aiokafka (C) is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from trio_brod.protocol import _crc32c, _records_batch, _records_encode, records
from trio_brod.protocol.records import (
    Compression,
    Header,
    decode_batches,
    encode_batch,
)

InputRecord = tuple[int, bytes | None, bytes | None, Sequence[Header]]


def best_time(func: Callable[[], object], repeat: int, min_seconds: float = 0.2) -> float:
    """The best time of one call, in seconds, over *repeat* runs of a calibrated loop."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            func()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds / repeat:
            break
        number *= 2
    best = elapsed / number
    for _ in range(repeat - 1):
        start = time.perf_counter()
        for _ in range(number):
            func()
        best = min(best, (time.perf_counter() - start) / number)
    return best


# -- workloads ------------------------------------------------------------------------------------

BASE_TS = 1_700_000_000_000


def random_records(
    count: int = 1000, key_size: int = 16, value_size: int = 100
) -> list[InputRecord]:
    """The reference workload: random (incompressible) keys and values."""
    return [
        (BASE_TS + i // 100, os.urandom(key_size), os.urandom(value_size), ()) for i in range(count)
    ]


def text_records(count: int = 1000) -> list[InputRecord]:
    """JSON-like values of about 100 bytes, for the codecs (random bytes do not compress)."""
    rng = random.Random(7)
    records: list[InputRecord] = []
    for i in range(count):
        value = json.dumps(
            {
                "id": i,
                "user": f"user-{rng.randint(0, 99999)}",
                "event": rng.choice(["click", "view", "purchase", "scroll"]),
                "page": f"/products/{rng.randint(0, 999)}",
                "ms": rng.randint(0, 5000),
            }
        ).encode()
        records.append((BASE_TS + i // 100, b"user-%010d" % rng.randint(0, 99999), value, ()))
    return records


def header_records(count: int = 1000) -> list[InputRecord]:
    return [
        (ts, key, value, [("trace-id", os.urandom(16)), ("source", b"bench")])
        for ts, key, value, _ in random_records(count)
    ]


def keyless_records(count: int = 1000) -> list[InputRecord]:
    return [(ts, None, value, ()) for ts, _, value, _ in random_records(count)]


# -- trio-brod ------------------------------------------------------------------------------------


def trio_brod_decode(data: bytes) -> None:
    for batch in decode_batches(data).batches:
        for record in batch.records():
            record.value  # noqa: B018 - touch it, as a consumer would


def trio_brod_count(data: bytes) -> int:
    return sum(len(batch) for batch in decode_batches(data).batches)


@contextlib.contextmanager
def pure_python_codec() -> Iterator[None]:
    """Use trio-brod's pure-Python record loops, as if the C extension were not built."""
    # The hot loops read the C functions from globals of their own modules.
    saved = _records_batch.c_decode_records, _records_encode.c_encode_records
    _records_batch.c_decode_records = _records_encode.c_encode_records = None
    try:
        yield
    finally:
        _records_batch.c_decode_records, _records_encode.c_encode_records = saved


def trio_brod_codecs() -> dict[str, Callable[[], contextlib.AbstractContextManager[None]]]:
    """name -> a context manager factory: in its context trio-brod uses that record codec."""
    codecs: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {}
    if records.IMPLEMENTATION == "c":
        codecs["trio-brod (C)"] = contextlib.nullcontext
    codecs["trio-brod (py)"] = pure_python_codec
    return codecs


# -- other clients --------------------------------------------------------------------------------


def load_others() -> dict[str, tuple[Callable[..., bytes], Callable[[bytes], None]]]:
    """name -> (encode(records, codec), decode(data)) for each installed client."""
    others: dict[str, tuple[Callable[..., bytes], Callable[[bytes], None]]] = {}
    try:
        from aiokafka.record import default_records as aiokafka_records
    except ImportError:
        pass
    else:
        if not aiokafka_records.NO_EXTENSIONS:
            others["aiokafka (C)"] = _builder_pair(
                aiokafka_records.DefaultRecordBatchBuilder, aiokafka_records.DefaultRecordBatch
            )
        others["aiokafka (py)"] = _builder_pair(
            aiokafka_records._DefaultRecordBatchBuilderPy, aiokafka_records._DefaultRecordBatchPy
        )
    try:
        from kafka.record import default_records as kafka_python_records
    except ImportError:
        pass
    else:
        others["kafka-python"] = _builder_pair(
            kafka_python_records.DefaultRecordBatchBuilder,
            kafka_python_records.DefaultRecordBatch,
        )
    return others


def _builder_pair(
    builder_class: Any, batch_class: Any
) -> tuple[Callable[..., bytes], Callable[[bytes], None]]:
    def encode(records: list[InputRecord], codec: int = 0) -> bytes:
        builder = builder_class(
            magic=2,
            compression_type=codec,
            is_transactional=0,
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=-1,
            batch_size=1 << 30,
        )
        for offset, (timestamp, key, value, headers) in enumerate(records):
            builder.append(offset, timestamp=timestamp, key=key, value=value, headers=list(headers))
        return bytes(builder.build())

    def decode(data: bytes) -> None:
        batch = batch_class(data)
        if not batch.validate_crc():
            raise ValueError("bad CRC")
        for record in batch:
            record.value  # noqa: B018

    return encode, decode


# -- the run --------------------------------------------------------------------------------------


def rate(seconds: float, records: int) -> str:
    return f"{records / seconds / 1e6:6.2f}M/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="repeats per case (best counts)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer repeats")
    args = parser.parse_args()
    repeat = 2 if args.quick else args.repeat
    min_seconds = 0.05 if args.quick else 0.3

    def timed(func: Callable[[], object]) -> float:
        return best_time(func, repeat, min_seconds)

    others = load_others()
    codecs = trio_brod_codecs()
    print(
        f"CRC-32C implementation: {_crc32c.IMPLEMENTATION}; record codec: "
        f"{records.IMPLEMENTATION}; others: {', '.join(others) or '-'}"
    )
    print()

    # 1. The reference workload, uncompressed, both trio-brod codecs against the other clients.
    print("1,000 records, 16 B keys, 100 B values, no headers, no compression (records/s)")
    workloads = {
        "reference": random_records(),
        "null keys": keyless_records(),
        "2 headers each": header_records(),
        "1 KiB values": random_records(value_size=1024),
    }
    columns = [*codecs, *others]
    header = f"  {'workload':16} {'':7}" + "".join(f" {n:>14}" for n in columns)
    print(header + ("   trio-brod/aiokafka(C)" if "aiokafka (C)" in others else ""))
    for name, workload in workloads.items():
        times: dict[str, tuple[float, float]] = {}  # column -> (encode, decode) seconds
        for codec_name, context in codecs.items():
            with context():
                data = encode_batch(workload)
                times[codec_name] = (
                    timed(lambda w=workload: encode_batch(w)),
                    timed(lambda d=data: trio_brod_decode(d)),
                )
        for other, (other_encode, other_decode) in others.items():
            other_data = other_encode(workload)
            times[other] = (
                timed(lambda e=other_encode, w=workload: e(w)),
                timed(lambda d=other_decode, b=other_data: d(b)),
            )
        ours = next(iter(codecs))
        for index, column in enumerate(("encode", "decode")):
            line = f"  {name:16} {column:7}"
            line += "".join(f" {rate(times[c][index], len(workload)):>14}" for c in columns)
            if "aiokafka (C)" in times:
                line += f"   {times['aiokafka (C)'][index] / times[ours][index]:10.2f}x"
            print(line)
    print()

    # 2. Codecs, on compressible text.
    text = text_records()
    raw_size = len(encode_batch(text))
    print(f"1,000 JSON-like records of ~{raw_size // 1000} B, per codec (records/s; ratio)")
    aiokafka_c = others.get("aiokafka (C)")
    title = f"  {'codec':8} {'level':>5} {'size':>8} {'ratio':>6} {'encode':>10} {'decode':>10}"
    print(title + ("   aiokafka(C) enc/dec" if aiokafka_c else ""))
    levels: dict[Compression, list[int | None]] = {
        Compression.NONE: [None],
        Compression.GZIP: [None, 6],
        Compression.SNAPPY: [None],
        Compression.LZ4: [None, 9],
        Compression.ZSTD: [None, 1],
    }
    for codec, codec_levels in levels.items():
        for level in codec_levels:
            data = encode_batch(text, compression=codec, compression_level=level)
            encode_time = timed(
                lambda c=codec, lv=level: encode_batch(text, compression=c, compression_level=lv)
            )
            decode_time = timed(lambda d=data: trio_brod_decode(d))
            line = (
                f"  {codec.name.lower():8} {level if level is not None else 'dflt':>5} "
                f"{len(data):8} {raw_size / len(data):6.2f} {rate(encode_time, 1000):>10} "
                f"{rate(decode_time, 1000):>10}"
            )
            if aiokafka_c and level is None:
                try:
                    theirs = aiokafka_c[0](text, int(codec))
                    their_encode = timed(lambda c=int(codec): aiokafka_c[0](text, c))
                    their_decode = timed(lambda d=theirs: aiokafka_c[1](d))
                    line += f"   {rate(their_encode, 1000)} {rate(their_decode, 1000)}"
                except Exception as exc:  # a codec library aiokafka needs is missing
                    line += f"   ({type(exc).__name__})"
            print(line)
    print()

    # 3. Per-batch costs: counting records without decoding them, and many small batches.
    print("Per-batch costs")
    fetch = b"".join(encode_batch(random_records(), base_offset=i * 1000) for i in range(10))
    count_time = timed(lambda: trio_brod_count(fetch))
    print(
        f"  count only (10 batches of 1,000, header + CRC): {count_time * 1e6:8.1f} us "
        f"= {rate(count_time, 10_000)} records"
    )
    singles = b"".join(
        encode_batch([(BASE_TS, os.urandom(16), os.urandom(100), ())], base_offset=i)
        for i in range(1000)
    )
    singles_time = timed(lambda: trio_brod_decode(singles))
    print(f"  decode 1,000 batches of 1 record: {rate(singles_time, 1000)} records")
    one = [(BASE_TS, os.urandom(16), os.urandom(100), ())]
    single_encode = timed(lambda: encode_batch(one))
    print(f"  encode a batch of 1 record: {single_encode * 1e6:.1f} us")
    print()

    # 4. CRC-32C throughput, both implementations.
    blob = os.urandom(1 << 20)
    c_time = timed(lambda: _crc32c.value(blob))
    py_time = best_time(lambda: _crc32c.crc32c_python(blob), 2 if args.quick else 3, 0.1)
    print(
        f"CRC-32C of 1 MiB: {_crc32c.IMPLEMENTATION} {len(blob) / c_time / 1e9:.1f} GB/s, "
        f"pure-Python fallback {len(blob) / py_time / 1e6:.1f} MB/s"
    )


if __name__ == "__main__":
    main()
