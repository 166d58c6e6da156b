"""How fast a hypothesis property runs through the in-process fake Kafka under MockClock.

Run: ``python benchmarks/fake_property.py`` (``--examples 1000`` by default).

Each example starts a fake Kafka (one broker), opens a trio-brod client, creates a topic with
a drawn number of partitions, produces drawn messages to drawn partitions, and consumes every
partition back, checking what it got, all under ``MockClock(autojump_threshold=0)``. Issue 18
adds rebalancing a two-member group to each example once the fake has a group coordinator;
its target is under 10 s for 1,000 examples.
"""

from __future__ import annotations

import argparse
import time

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_brod import open_client
from trio_brod.testing import fake_kafka


async def one_example(partitions: int, messages: list[tuple[int, bytes]]) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("t", partitions=partitions)
        await client.start_producer("t")
        expected: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
        for partition, value in messages:
            partition %= partitions
            await client.produce_sync("t", value, partition=partition)
            expected[partition].append(value)
        for partition, values in expected.items():
            if not values:
                continue
            got: list[bytes | None] = []
            async with client.subscribe("t", partition, begin_offset="earliest") as sub:
                async for message_set in sub:
                    got += [m.value for m in message_set]
                    if len(got) >= len(values):
                        break
            assert got == values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    args = parser.parse_args()

    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.integers(1, 4),
        st.lists(st.tuples(st.integers(0, 3), st.binary(max_size=64)), min_size=1, max_size=8),
    )
    def prop(partitions: int, messages: list[tuple[int, bytes]]) -> None:
        trio.run(
            one_example,
            partitions,
            messages,
            clock=trio.testing.MockClock(autojump_threshold=0),
        )

    start = time.perf_counter()
    prop()
    elapsed = time.perf_counter() - start
    print(
        f"{args.examples} examples in {elapsed:.2f} s "
        f"({elapsed / args.examples * 1000:.1f} ms per example)"
    )


if __name__ == "__main__":
    main()
