"""The memory an idle partition costs: a producer and a consumer on every partition of a
topic, nothing sent and nobody subscribed (the benchmarks' partitions workload, issue 16's
budget of 10 KB per partition of RSS at 1,000 partitions)."""

from __future__ import annotations

import gc
import tracemalloc

import trio
import trio.testing

import trio_brod
from trio_brod.testing import fake_kafka

PARTITIONS = 300

#: Bytes Python allocates per idle partition (producer and consumer), as tracemalloc counts
#: them: about 8,300 on CPython 3.11 (benchmarks/idle_memory.py), 10,300 while an idle
#: consumer had a task of its own (before its first subscriber), 13,400 before the idle
#: workers shed their empty deques, idle cancel scope and finished event. RSS grows less than
#: this, but tracemalloc's count does not depend on the allocator's arenas.
BUDGET = 9_500


def _traced(snapshot: tracemalloc.Snapshot) -> int:
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "*/testing/fake/*"),
    ]
    return sum(stat.size for stat in snapshot.filter_traces(ignore).statistics("filename"))


async def test_an_idle_partition_costs_less_than_the_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka(brokers=1) as fake:
        fake.create_topic("idle", partitions=PARTITIONS)
        async with trio_brod.open_client(fake.bootstrap_servers) as client:
            await client.get_metadata(["idle"])
            gc.collect()
            tracemalloc.start()
            try:
                before = _traced(tracemalloc.take_snapshot())
                await client.start_producer("idle", trio_brod.ProducerConfig(required_acks=1))
                await client.start_consumer("idle")
                await trio.sleep(1)
                gc.collect()
                after = _traced(tracemalloc.take_snapshot())
            finally:
                tracemalloc.stop()
    per_partition = (after - before) / PARTITIONS
    assert per_partition < BUDGET, f"{per_partition:.0f} bytes per idle partition"
