"""Micro-benchmarks of the protocol layer: message codecs and framing.

Run: ``python benchmarks/micro_protocol.py`` (add ``--repeat 20`` on a noisy machine).

Each case reports the best time per call over several repeats (the least disturbed by other
processes). Where kafka-python is installed, its Metadata decoders run on the same bytes.
"""

from __future__ import annotations

import argparse
import io
import time
import uuid
from collections.abc import Callable
from functools import partial

from trio_brod.protocol import (
    FetchResponse,
    FrameDecoder,
    MetadataResponse,
    ProduceRequest,
    decode_response,
    encode_request,
)

MIB = 1024 * 1024


def best_time(func: Callable[[], object], repeat: int, min_seconds: float = 0.2) -> float:
    """The best time of one call, in seconds, over *repeat* batches."""
    number = 1
    while True:  # calibrate: a batch takes at least min_seconds / repeat
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


def metadata_response(topics: int = 100, partitions: int = 10) -> MetadataResponse:
    """A cluster of 3 brokers; every partition has 3 replicas, all in sync."""
    md = MetadataResponse
    return md(
        brokers=[
            md.MetadataResponseBroker(node_id=i, host=f"broker-{i}.example.com", port=9092)
            for i in range(3)
        ],
        cluster_id="cluster-1",
        controller_id=1,
        topics=[
            md.MetadataResponseTopic(
                name=f"topic-{t}",
                topic_id=uuid.UUID(int=t + 1),
                partitions=[
                    md.MetadataResponsePartition(
                        partition_index=p,
                        leader_id=p % 3,
                        leader_epoch=7,
                        replica_nodes=[0, 1, 2],
                        isr_nodes=[0, 1, 2],
                    )
                    for p in range(partitions)
                ],
            )
            for t in range(topics)
        ],
    )


def produce_request(blob: bytes) -> ProduceRequest:
    partition = ProduceRequest.PartitionProduceData(index=0, records=blob)
    topic = ProduceRequest.TopicProduceData(name="events", partition_data=[partition])
    return ProduceRequest(acks=-1, timeout_ms=30000, topic_data=[topic])


def fetch_response_frame(blob: bytes, version: int) -> bytes:
    partition = FetchResponse.PartitionData(partition_index=0, high_watermark=10, records=blob)
    topic = FetchResponse.FetchableTopicResponse(
        topic="events", topic_id=uuid.UUID(int=1), partitions=[partition]
    )
    return b"\x00\x00\x00\x01\x00" + FetchResponse(responses=[topic]).encode(version)


def kafka_python_cases(
    md_bytes: dict[int, bytes], repeat: int
) -> list[tuple[str, float]]:  # pragma: no cover - optional
    results: list[tuple[str, float]] = []
    try:
        from kafka.protocol.metadata import MetadataResponse as NewResponse  # type: ignore
        from kafka.protocol.old.metadata import MetadataResponse as OldResponses  # type: ignore
    except ImportError:
        return results
    data = md_bytes[12]
    results.append(
        (
            "kafka-python 3 (compiled) Metadata v12 decode",
            best_time(lambda: NewResponse.decode(data, version=12), repeat),
        )
    )
    old = md_bytes[8]
    results.append(
        (
            "kafka-python 3 (old Struct) Metadata v8 decode",
            best_time(lambda: OldResponses[8].decode(io.BytesIO(old)), repeat),
        )
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    repeat = args.repeat

    results: list[tuple[str, float]] = []
    metadata = metadata_response()
    md_bytes = {v: metadata.encode(v) for v in (1, 8, 9, 12)}
    for version in (12, 9, 8, 1):
        data = md_bytes[version]
        results.append(
            (
                f"Metadata v{version} decode (100 topics x 10 partitions, {len(data)} B)",
                best_time(partial(MetadataResponse.decode, data, version), repeat),
            )
        )
    results.append(("Metadata v12 encode", best_time(lambda: metadata.encode(12), repeat)))
    results.extend(kafka_python_cases(md_bytes, repeat))

    blob = bytes(range(256)) * (4 * 4096)  # 4 MiB of records
    request = produce_request(blob)
    results.append(
        ("copy 4 MiB once (baseline)", best_time(lambda: b"".join((b"x", blob)), repeat))
    )
    results.append(
        (
            "Produce v9 request frame with 4 MiB records",
            best_time(lambda: encode_request(request, 9, 1, "bench"), repeat),
        )
    )
    results.append(
        (
            "Produce v3 request frame with 4 MiB records",
            best_time(lambda: encode_request(request, 3, 1, "bench"), repeat),
        )
    )
    for version in (16, 4):
        frame = fetch_response_frame(blob, version)
        header = 1 if version >= 12 else 0
        frame = frame if header else frame[:4] + frame[5:]
        results.append(
            (
                f"Fetch v{version} response decode with 4 MiB records",
                best_time(partial(decode_response, frame, FetchResponse, version), repeat),
            )
        )

    small = b"".join(len(p).to_bytes(4, "big") + p for p in [bytes(100)] * 10000)

    def many_small() -> None:
        decoder = FrameDecoder(max_frame_size=MIB)
        decoder.feed(small)
        while decoder.next_frame() is not None:
            pass

    results.append(
        ("FrameDecoder: 10,000 frames of 100 B in one chunk", best_time(many_small, repeat))
    )

    big = bytes(100 * MIB)
    big_stream = (len(big)).to_bytes(4, "big") + big
    pieces = [big_stream[i : i + 65536] for i in range(0, len(big_stream), 65536)]

    def one_large() -> None:
        decoder = FrameDecoder(max_frame_size=200 * MIB)
        for piece in pieces:
            decoder.feed(piece)
            decoder.next_frame()

    results.append(("copy 100 MiB once (baseline)", best_time(lambda: b"".join((b"x", big)), 3)))
    results.append(("FrameDecoder: 100 MiB frame in 64 KiB pieces", best_time(one_large, 3)))

    width = max(len(name) for name, _ in results)
    for name, seconds in results:
        print(f"{name:<{width}}  {seconds * 1000:9.3f} ms")


if __name__ == "__main__":
    main()
