"""How fast a hypothesis property runs through the in-process fake Kafka under MockClock.

Run: ``python benchmarks/fake_property.py`` (``--examples 1000`` by default).

Each example starts a fake Kafka (one broker), opens a trio-brod client, creates a topic with
a drawn number of partitions, produces drawn messages to drawn partitions, and consumes every
partition back, checking what it got, then runs a two-member consumer group over the topic
through the fake's group coordinator (the first member takes every partition, the second
joins and the group rebalances, checking that the two share the partitions), all under
``MockClock(autojump_threshold=0)``. Issue 18's target is under 10 s for 1,000 examples.
"""

from __future__ import annotations

import argparse
import time

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_brod import AssignedPartition, GroupConfig, open_client, open_group_subscriber
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
        await rebalance_two_members(fake.bootstrap_servers, client, partitions)


async def _ack(assigned: AssignedPartition, message: object) -> None:
    pass


async def rebalance_two_members(bootstrap: list[str], client: object, partitions: int) -> None:
    """One member takes the topic, a second joins: the group rebalances between them."""
    config = GroupConfig(partition_assignment_strategy="range")
    everything = set(range(partitions))

    def owned(member: object) -> set[int]:
        return {a.partition for a in member.assignments()}  # type: ignore[attr-defined]

    async def until(check: object) -> None:
        while not check():  # type: ignore[operator]  # noqa: ASYNC110 - no event to wait on
            await trio.sleep(0.01)

    async with open_group_subscriber(client, "g", ["t"], _ack, config=config) as a:  # type: ignore[arg-type]
        await until(lambda: owned(a) == everything)
        async with (
            open_client(bootstrap) as other,
            open_group_subscriber(other, "g", ["t"], _ack, config=config) as b,
        ):

            def shared() -> bool:
                ha, hb = a.health(), b.health()
                return (
                    ha.state == hb.state == "stable"
                    and ha.generation_id == hb.generation_id
                    and owned(a) | owned(b) == everything
                    and not owned(a) & owned(b)
                    and min(len(owned(a)), len(owned(b))) == partitions // 2
                )

            await until(shared)


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
