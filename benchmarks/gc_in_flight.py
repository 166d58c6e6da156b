"""What hiding the producer's calls in flight from the cycle collector is worth.

Run: ``python benchmarks/gc_in_flight.py`` (starts a broker; ``--bootstrap host:port`` to use
one). One ``client.produce()`` per message to an 8-partition topic, as in the benchmark's
produce workload (16-byte keys, 100-byte values, 128 KiB batches, 5 ms linger, 5 requests in
flight per partition, acks=-1), alternately with the producer as it is (``on``: calls in
flight untracked, with the C extension) and with ``hold_in_flight`` replaced by a no-op
(``off``). Each run is a fresh process; it prints the CPU time per message and the time spent
in garbage collections (measured with ``gc.callbacks``).
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trio
from bench.broker import TopicSpec, open_broker

import trio_brod
import trio_brod.producer._intake

PARTITIONS = 8


def run_once(bootstrap: str, topic: str, messages: int, untrack: bool) -> None:
    """One measured run in this process; prints one line."""
    if not untrack:
        # The name the partition producer hands calls over with (see Intake._handed_over).
        trio_brod.producer._intake.hold_in_flight = lambda call: None
    in_gc = [0.0]
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            in_gc[0] += time.perf_counter() - started[0]

    keys = [os.urandom(16) for _ in range(1024)]
    values = [os.urandom(100) for _ in range(1024)]

    async def produce() -> float:
        config = trio_brod.ProducerConfig(
            required_acks=-1, max_linger=0.005, max_batch_size=128 * 1024, partition_onwire_limit=5
        )
        async with trio_brod.open_client([bootstrap], client_id="gc-in-flight") as client:
            await client.start_producer(topic, config)
            for partition in range(PARTITIONS):  # connections and producer ids ready
                await (await client.produce(topic, b"warm-up", partition=partition))
            cpu = time.process_time()
            gc.callbacks.append(on_gc)
            receipt = None
            for i in range(messages):
                receipt = await client.produce(topic, values[i & 1023], keys[i & 1023])
            await client.stop_producer(topic)  # everything acknowledged
            gc.callbacks.remove(on_gc)
            assert receipt is not None
            assert receipt.done()
            return time.process_time() - cpu

    cpu = trio.run(produce)
    print(
        f"{'on' if untrack else 'off':>3}: {cpu / messages * 1e6:5.2f} us CPU per message, "
        f"{in_gc[0] * 1e3:6.1f} ms in collections",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("TOPIC", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        topic, mode = args.child
        run_once(args.bootstrap, topic, args.messages, untrack=mode == "on")
        return 0
    print(f"C extension: {trio_brod.protocol.records.IMPLEMENTATION == 'c'}")
    with open_broker(args.bootstrap) as broker:
        for _ in range(args.rounds):
            for mode in ("on", "off"):
                topic = f"gc-in-flight-{uuid.uuid4().hex[:8]}"
                broker.create_topics([TopicSpec(topic, PARTITIONS)])
                command = [sys.executable, __file__, "--bootstrap", broker.bootstrap]
                command += ["--messages", str(args.messages), "--child", topic, mode]
                subprocess.run(command, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
