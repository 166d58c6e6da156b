"""What an idle partition costs in memory, and where it goes.

Run: ``python benchmarks/idle_memory.py`` (``--partitions 1000``, ``--workers
producer|consumer|both``, ``--top 25``). No broker: the in-process fake Kafka
(:func:`trio_brod.testing.fake_kafka`) holds the topic.

It does what the benchmark's partitions workload measures as "idle KiB/partition": open a
client, then :meth:`~trio_brod.Client.start_producer` and/or
:meth:`~trio_brod.Client.start_consumer` on every partition of a topic, nothing sent and
nobody subscribed. Two measurements, in two runs of the same steps in fresh processes:

1. **RSS** growth per partition (``/proc/self/statm``, as the benchmark reads it), with
   tracemalloc off, since its own bookkeeping would be counted;
2. a **tracemalloc** snapshot diff per partition, grouped by the line that allocated (the
   fake's allocations and tracemalloc's left out): where the bytes go.

Issue 16's budget is 10 KB per idle partition at 1,000 partitions (docs/performance.rst).
"""

from __future__ import annotations

import argparse
import gc
import linecache
import subprocess
import sys
import tracemalloc

import trio

import trio_brod
from trio_brod.testing import fake_kafka

TOPIC = "idle"


def rss_bytes() -> int:
    """This process's resident set size now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


async def start_workers(client: trio_brod.Client, workers: str) -> None:
    """Start the idle workers, and let them settle."""
    if workers in ("both", "producer"):
        await client.start_producer(TOPIC, trio_brod.ProducerConfig(required_acks=1))
    if workers in ("both", "consumer"):
        await client.start_consumer(TOPIC, trio_brod.ConsumerConfig())
    await trio.sleep(0.5)
    gc.collect()


def _short(filename: str) -> str:
    for marker in ("site-packages/", "trio_brod/"):
        if marker in filename:
            tail = filename.partition(marker)[2]
            return (marker if marker == "trio_brod/" else "") + tail
    return filename


async def measure(partitions: int, workers: str, traced: bool, top: int) -> None:
    """One run: print the RSS growth per partition, or the tracemalloc diff."""
    async with fake_kafka(brokers=1) as fake:
        fake.create_topic(TOPIC, partitions=partitions)
        async with trio_brod.open_client(fake.bootstrap_servers) as client:
            await client.get_metadata([TOPIC])
            gc.collect()
            await trio.sleep(0.2)
            if not traced:
                before = rss_bytes()
                await start_workers(client, workers)
                per_partition = (rss_bytes() - before) / partitions
                print(f"RSS: {per_partition:,.0f} bytes per idle partition ({workers})")
                return
            tracemalloc.start()
            first = tracemalloc.take_snapshot()
            await start_workers(client, workers)
            second = tracemalloc.take_snapshot()
            tracemalloc.stop()
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "*/testing/fake/*"),
    ]
    stats = second.filter_traces(ignore).compare_to(first.filter_traces(ignore), "lineno")
    total = sum(stat.size_diff for stat in stats)
    print(f"tracemalloc: {total / partitions:,.0f} bytes per idle partition ({workers})")
    print(f"{'bytes':>8} {'blocks':>6}  where")
    for stat in stats[:top]:
        frame = stat.traceback[0]
        line = linecache.getline(frame.filename, frame.lineno).strip()[:60]
        print(
            f"{stat.size_diff / partitions:8.1f} {stat.count_diff / partitions:6.2f}  "
            f"{_short(frame.filename)}:{frame.lineno} {line}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--workers", choices=("both", "producer", "consumer"), default="both")
    parser.add_argument("--top", type=int, default=25, help="lines of the tracemalloc diff")
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rss", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.traced or args.rss:
        trio.run(measure, args.partitions, args.workers, args.traced, args.top)
        return
    common = ["--partitions", str(args.partitions), "--workers", args.workers]
    for mode in ("--rss", "--traced"):
        command = [sys.executable, __file__, *common, "--top", str(args.top), mode]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
