"""What observing costs on the hot paths, as ratios within one run.

Run: ``python benchmarks/micro_observe.py`` (``--repeat 7`` on a noisy machine). Needs
``opentelemetry-sdk`` (the dev extra) and nothing else: no broker. From the repository root,
as it uses the fakes of ``tests/fakes``.

Three modes, each in its own subprocess (OpenTelemetry's providers can be set only once):

* ``none``: no hook registered, as without ``opentelemetry-api`` (the workers test the same
  empty tuple either way);
* ``api``: ``opentelemetry-api`` installed, no provider set (the default no-op proxies);
* ``sdk``: the SDK's ``MeterProvider`` set, with a reader: metrics on;
* ``sdk-unhooked``: the SDK set up the same, but trio-brod's hook removed: what the SDK's
  presence alone costs (its import makes the garbage collector's full passes longer), to
  tell it apart from what trio-brod records.

Workloads:

* ``produce``: ``PartitionProducer.produce`` one message per call, the worker replaced by a
  loop that batches and acknowledges in process (take_batch, sent, acknowledge), so that
  only trio-brod's own per-message and per-batch work is timed;
* ``consume``: a topic subscriber with a per-message handler, over a fake broker on
  loopback holding 100 batches of 1,000 messages.

Time is the process's CPU time (``time.process_time``), not the wall clock: the machine
may be shared, and everything runs in this one process (the fake broker too). Each mode
reports its best run (``--rounds`` subprocesses of ``--repeat`` runs each, the
modes taking turns), in messages per second, and the ratio to ``none``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

MODES = ("none", "api", "sdk", "sdk-unhooked")


def _setup(mode: str) -> None:
    from trio_brod import observe

    if mode == "none":
        observe.state.hooks = ()
    elif mode.startswith("sdk"):
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
        if mode == "sdk-unhooked":
            observe.state.hooks = ()


def _produce(count: int) -> float:
    import trio

    from trio_brod import ProducerConfig
    from trio_brod.producer import PartitionProducer

    config = ProducerConfig(partition_buffer_limit=count + 1, partition_buffer_bytes=1 << 40)
    producer = PartitionProducer(None, "bench", 0, config, None)  # type: ignore[arg-type]
    value = b"x" * 100
    buffer = producer._buffer

    async def main() -> float:
        started = time.process_time()
        offset = 0
        for i in range(count):
            await producer.produce(value)
            if i % 1000 == 999:
                producer._pull(float("inf"))
                while buffer.queued:
                    batch = buffer.take_batch()
                    buffer.sent(batch)
                    buffer.acknowledge(offset)
                    offset += batch.record_count
        return time.process_time() - started

    return trio.run(main)


def _consume(count: int) -> float:
    import trio

    from tests.fakes.broker import FakeBroker
    from tests.fakes.log import FakeLog
    from trio_brod import ConsumerConfig, open_client, open_topic_subscriber

    async def main() -> float:
        async with trio.open_nursery() as nursery:
            broker: FakeBroker = await nursery.start(FakeBroker().serve)
            log = FakeLog()
            log.serve(broker)
            for start in range(0, count, 1000):
                log.append([b"x" * 100] * min(1000, count - start))
            done = trio.Event()
            seen = 0

            async def handle(partition: int, message: Any) -> None:
                nonlocal seen
                seen += 1
                if seen == count:
                    done.set()

            config = ConsumerConfig(begin_offset="earliest")
            async with open_client([broker.address]) as client:
                await client.start_consumer(log.topic)
                started = time.process_time()
                async with open_topic_subscriber(client, log.topic, handle, consumer_config=config):
                    await done.wait()
                elapsed = time.process_time() - started
            nursery.cancel_scope.cancel()
        return elapsed

    return trio.run(main)


def child(mode: str, workload: str, count: int, repeat: int) -> None:
    _setup(mode)
    run = _produce if workload == "produce" else _consume
    best = min(run(count) for _ in range(repeat))
    print(json.dumps(count / best))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per subprocess")
    parser.add_argument("--rounds", type=int, default=5, help="subprocesses per mode")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "WORKLOAD"))
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.messages, args.repeat)
        return
    for workload in ("produce", "consume"):
        # Modes interleaved, round after round, so that a busy spell of the machine hits
        # them alike; the best rate of each counts.
        rates: dict[str, float] = dict.fromkeys(MODES, 0.0)
        for _ in range(args.rounds):
            for mode in MODES:
                command = [sys.executable, __file__, "--child", mode, workload]
                command += ["--messages", str(args.messages), "--repeat", str(args.repeat)]
                out = subprocess.run(
                    command,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                rates[mode] = max(rates[mode], json.loads(out))
        line = ", ".join(
            f"{mode} {rate:,.0f}/s ({rate / rates['none']:.3f})" for mode, rate in rates.items()
        )
        print(f"{workload}: {line}", flush=True)


if __name__ == "__main__":
    main()
