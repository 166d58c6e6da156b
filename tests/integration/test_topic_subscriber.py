"""open_topic_subscriber against real Kafka: one handler over every partition of a topic."""

from __future__ import annotations

import pytest
import trio

from trio_brod import ConsumerConfig, MessageSet, open_client, open_topic_subscriber
from trio_brod.protocol.records import Record
from trio_brod.testing.pytest_plugin import MakeTopic

# Every test here is a core test, run against each supported Kafka too (nox -s compat).
pytestmark = [pytest.mark.integration, pytest.mark.compat]

EARLIEST = ConsumerConfig(begin_offset="earliest", max_wait_time=0.5)


async def produce_numbered(client: object, topic: str, partitions: int, per_partition: int) -> None:
    from trio_brod import Client

    assert isinstance(client, Client)
    await client.start_producer(topic)
    for partition in range(partitions):
        receipt = await client.produce_batch(
            topic,
            [(None, f"{partition}:{i}".encode()) for i in range(per_partition)],
            partition=partition,
        )
        await receipt


async def test_every_partition_from_committed_positions(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=3)
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}
    done = trio.Event()

    async def handle(partition: int, message: Record) -> None:
        assert message.value == f"{partition}:{message.offset}".encode()
        seen[partition].append(message.offset)
        if sum(map(len, seen.values())) == 10 + 5 + 10:
            done.set()

    async with open_client(bootstrap_servers) as client:
        await produce_numbered(client, topic, 3, 10)
        async with open_topic_subscriber(
            client, topic, handle, committed_offsets={1: 4}, consumer_config=EARLIEST
        ) as subscriber:
            with trio.fail_after(30):
                await done.wait()
            assert subscriber.handled_offsets() == {0: 9, 1: 9, 2: 9}
    # Per partition, in order; partition 1 resumed after its committed offset 4.
    assert seen == {0: list(range(10)), 1: list(range(5, 10)), 2: list(range(10))}


async def test_chosen_partitions_and_message_sets(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=3)
    got: list[tuple[int, int]] = []
    done = trio.Event()

    async def handle(partition: int, message_set: MessageSet) -> None:
        assert isinstance(message_set, MessageSet)
        got.extend((partition, m.offset) for m in message_set)
        if len(got) == 8:
            done.set()

    async with open_client(bootstrap_servers) as client:
        await produce_numbered(client, topic, 3, 4)
        async with open_topic_subscriber(
            client,
            topic,
            handle,
            partitions=[0, 2],
            consumer_config=EARLIEST,
            message_type="message_set",
        ):
            with trio.fail_after(30):
                await done.wait()
    assert sorted(got) == [(p, o) for p in (0, 2) for o in range(4)]


async def test_manual_acks_move_the_window(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=1)
    handled: list[int] = []
    seen = {2: trio.Event(), 4: trio.Event(), 6: trio.Event()}

    async def handle(partition: int, message: Record) -> bool:
        handled.append(message.offset)
        if len(handled) in seen:
            seen[len(handled)].set()
        return False  # acknowledged by the test instead

    config = ConsumerConfig(begin_offset="earliest", prefetch_count=2, max_wait_time=0.5)
    async with open_client(bootstrap_servers) as client:
        await produce_numbered(client, topic, 1, 6)
        async with open_topic_subscriber(
            client, topic, handle, consumer_config=config
        ) as subscriber:
            with trio.fail_after(30):
                await seen[2].wait()
            await trio.sleep(1.0)
            # The window (2 messages) is full of unacknowledged ones: nothing more came.
            assert handled == [0, 1]
            subscriber.ack(0, 1)
            with trio.fail_after(30):
                await seen[4].wait()
                subscriber.ack(0, 3)
                await seen[6].wait()
    assert handled == list(range(6))


async def test_handler_error_ends_the_block(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=2)

    async def handle(partition: int, message: Record) -> None:
        # One partition fails; the other's task is cancelled, so one error comes out.
        if partition == 1 and message.offset == 2:
            raise ValueError(f"cannot handle {partition}:{message.offset}")

    async with open_client(bootstrap_servers) as client:
        await produce_numbered(client, topic, 2, 5)

        async def subscribe_until_failure() -> None:
            async with open_topic_subscriber(client, topic, handle, consumer_config=EARLIEST):
                await trio.sleep(30)

        with trio.fail_after(30), pytest.raises(ValueError, match=r"cannot handle 1:2"):
            await subscribe_until_failure()


async def test_committed_offsets_must_name_subscribed_partitions(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=2)

    async def handle(partition: int, message: Record) -> None:
        pass

    async with open_client(bootstrap_servers) as client:
        with pytest.raises(ValueError, match=r"not subscribed: \[5\]"):
            async with open_topic_subscriber(
                client, topic, handle, partitions=[0], committed_offsets={5: 1}
            ):
                pass
