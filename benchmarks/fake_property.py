"""How fast a hypothesis property runs through the in-process fake Kafka under MockClock.

Run: ``python benchmarks/fake_property.py`` (``--examples 1000`` by default).

Each example creates a topic with a drawn number of partitions, produces drawn messages to
drawn partitions, and consumes them through a two-member consumer group run by the fake's
group coordinator: the first member takes every partition and must deliver exactly what was
produced; the second joins and the group rebalances, checking that the two share the
partitions with no overlap, in one generation, and that nothing is delivered twice. All
under ``MockClock(autojump_threshold=0)``. Issue 18's target is under 10 s for 1,000 examples.

It is written as docs/testing.rst's "fast properties" recommend: one fake Kafka and its
clients for the whole property, a fresh topic and group per example (so examples stay
independent), group options that make a rebalance quick under MockClock, and waits on the
library's events (the ``rebalanced`` hook) instead of polling. ``--per-example`` runs the
same examples with a fake, two clients and a Trio run of their own each, to compare.

``--hypothesis-alone`` also times hypothesis drawing as many examples from the same
strategies for an empty test body. trio-brod takes no part in that, so it measures the
machine at that moment: on a shared machine whose speed drifts, compare runs by their ratio
to it, not by their seconds.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_brod import (
    AssignedPartition,
    Client,
    ConsumerConfig,
    GroupConfig,
    Message,
    open_client,
    open_group_subscriber,
)
from trio_brod.groups import GroupSubscriber
from trio_brod.observe import Hook, Rebalanced
from trio_brod.testing import fake_kafka
from trio_brod.testing.fake import FakeKafka

#: A rebalance only waits for the first member's next heartbeat: a short heartbeat_rate
#: makes that a few fake milliseconds (free under MockClock) instead of up to 3 s of long
#: polls and timers. "range" is an eager assignor: one generation gives the final split.
QUICK_GROUP = GroupConfig(partition_assignment_strategy="range", heartbeat_rate=0.05)
#: Each topic is new, so a partition without a committed offset starts at 0.
FROM_START = ConsumerConfig(begin_offset=0)

#: The property's draws: a partition count and (partition, value) messages.
PARTITIONS = st.integers(1, 4)
MESSAGES = st.lists(st.tuples(st.integers(0, 3), st.binary(max_size=64)), min_size=1, max_size=8)


def property_settings(examples: int) -> settings:
    """Hypothesis's settings for the property: every example generated, none replayed."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


class RebalanceWatch(Hook):
    """Wakes the property whenever a member of a watched client completes a rebalance."""

    def __init__(self) -> None:
        self.changed = trio.Event()

    def rebalanced(self, event: Rebalanced) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def until(self, check: Callable[[], bool]) -> None:
        """Wait until ``check()`` holds, looking again after each rebalance."""
        while not check():
            await self.changed.wait()


async def one_example(
    client: Client,
    other: Client,
    watch: RebalanceWatch,
    n: int,
    partitions: int,
    messages: list[tuple[int, bytes]],
    fake: FakeKafka,
) -> None:
    """One example: a fresh topic and group, so examples share nothing but the fake."""
    topic, group = f"t{n}", f"g{n}"
    fake.create_topic(topic, partitions=partitions)
    await client.start_producer(topic)
    expected: dict[int, list[bytes | None]] = {p: [] for p in range(partitions)}
    receipts = []
    for partition, value in messages:
        partition %= partitions
        # Buffered, then acknowledged together: a batch per partition, not a request each.
        receipts.append(await client.produce(topic, value, partition=partition))
        expected[partition].append(value)
    for receipt in receipts:
        await receipt
    await client.stop_producer(topic)
    await consume_and_rebalance(client, other, watch, topic, group, expected)
    # Done with the topic: its consumers' timers must not run on through later examples.
    await client.stop_consumer(topic)
    await other.stop_consumer(topic)


async def consume_and_rebalance(
    client: Client,
    other: Client,
    watch: RebalanceWatch,
    topic: str,
    group: str,
    expected: dict[int, list[bytes | None]],
) -> None:
    """One member consumes the topic, a second joins: the group rebalances between them.

    The first member takes every partition and must deliver exactly what was produced, in
    order. Its acknowledgements are committed when the rebalance revokes its partitions, so
    the second member, starting from the committed offsets, must deliver nothing again.
    """
    everything = set(expected)
    got: dict[int, list[bytes | None]] = {p: [] for p in everything}
    remaining = sum(len(values) for values in expected.values())
    all_in = trio.Event()

    async def handle(assigned: AssignedPartition, message: Message) -> None:
        nonlocal remaining
        got[assigned.partition].append(message.value)
        remaining -= 1
        if remaining == 0:
            all_in.set()

    def owned(member: GroupSubscriber) -> set[int]:
        return {a.partition for a in member.assignments()}

    def subscribe(to: Client) -> AbstractAsyncContextManager[GroupSubscriber]:
        return open_group_subscriber(
            to, group, [topic], handle, config=QUICK_GROUP, consumer_config=FROM_START
        )

    async with subscribe(client) as a:
        await all_in.wait()
        assert got == expected
        async with subscribe(other) as b:

            def shared() -> bool:
                ha, hb = a.health(), b.health()
                return (
                    ha.state == hb.state == "stable"
                    and ha.generation_id == hb.generation_id
                    and owned(a) | owned(b) == everything
                    and not owned(a) & owned(b)
                    and min(len(owned(a)), len(owned(b))) == len(everything) // 2
                )

            await watch.until(shared)
    assert got == expected


async def shared_fake(examples: int, clock: trio.testing.MockClock) -> None:
    """The property, with one fake and two clients for all its examples."""
    watch = RebalanceWatch()
    async with (
        fake_kafka() as fake,
        open_client(fake.bootstrap_servers, hooks=[watch], connect=fake.connect) as client,
        open_client(fake.bootstrap_servers, hooks=[watch], connect=fake.connect) as other,
    ):
        numbers = itertools.count()

        async def example(partitions: int, messages: list[tuple[int, bytes]]) -> None:
            # The clock jumps only while an example runs. Between examples this run waits
            # for hypothesis's thread with no timer due, and an autojump threshold of 0
            # would make it poll for I/O in a busy loop meanwhile, taking the CPU (and
            # the GIL) from hypothesis.
            clock.autojump_threshold = 0
            try:
                await one_example(client, other, watch, next(numbers), partitions, messages, fake)
            finally:
                clock.autojump_threshold = math.inf

        @property_settings(examples)
        @given(PARTITIONS, MESSAGES)
        def prop(partitions: int, messages: list[tuple[int, bytes]]) -> None:
            trio.from_thread.run(example, partitions, messages)

        # Hypothesis drives the examples from a worker thread; each runs in this Trio run.
        clock.autojump_threshold = math.inf
        await trio.to_thread.run_sync(prop)


def per_example(examples: int) -> None:
    """The naive form: a fake, two clients and a Trio run per example."""

    async def example(partitions: int, messages: list[tuple[int, bytes]]) -> None:
        watch = RebalanceWatch()
        async with (
            fake_kafka() as fake,
            open_client(fake.bootstrap_servers, hooks=[watch], connect=fake.connect) as client,
            open_client(fake.bootstrap_servers, hooks=[watch], connect=fake.connect) as other,
        ):
            await one_example(client, other, watch, 0, partitions, messages, fake)

    @property_settings(examples)
    @given(PARTITIONS, MESSAGES)
    def prop(partitions: int, messages: list[tuple[int, bytes]]) -> None:
        trio.run(example, partitions, messages, clock=trio.testing.MockClock(autojump_threshold=0))

    prop()


def hypothesis_alone(examples: int) -> None:
    """The property's draws with an empty test body: hypothesis's own share of a run."""

    @property_settings(examples)
    @given(PARTITIONS, MESSAGES)
    def prop(partitions: int, messages: list[tuple[int, bytes]]) -> None:
        pass

    prop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument(
        "--per-example", action="store_true", help="a fake and clients per example (slower)"
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() the imported modules first, as docs/testing.rst suggests",
    )
    parser.add_argument(
        "--hypothesis-alone",
        action="store_true",
        help="also time hypothesis's draws with an empty test body, a measure of the machine",
    )
    args = parser.parse_args()
    if args.gc_freeze:
        gc.collect()
        gc.freeze()

    start = time.perf_counter()
    if args.per_example:
        per_example(args.examples)
    else:
        clock = trio.testing.MockClock(autojump_threshold=0)
        trio.run(shared_fake, args.examples, clock, clock=clock)
    elapsed = time.perf_counter() - start
    print(
        f"{args.examples} examples in {elapsed:.2f} s "
        f"({elapsed / args.examples * 1000:.1f} ms per example)"
    )
    if args.hypothesis_alone:
        start = time.perf_counter()
        hypothesis_alone(args.examples)
        alone = time.perf_counter() - start
        print(
            f"hypothesis alone (the same strategies, an empty test body): {alone:.2f} s; "
            f"the property took {elapsed / alone:.1f} times as long"
        )


if __name__ == "__main__":
    main()
