"""The fake Kafka's fault injection, and trio-brod's consumers through it, under MockClock."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trio_brod.admin
from trio_brod import (
    BrokerConnectionError,
    ConsumerConfig,
    ProducerConfig,
    RequestTimedOut,
    Timestamp,
    open_client,
    open_topic_subscriber,
)
from trio_brod.admin import NewTopic
from trio_brod.protocol import CreateTopicsRequest, MetadataRequest, ProduceRequest
from trio_brod.protocol.errors import (
    LeaderNotAvailableError,
    NotLeaderOrFollowerError,
    PolicyViolationError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from trio_brod.protocol.records import Record
from trio_brod.testing import fake_kafka
from trio_brod.testing.fake import Drop, Fail, Hang, Hold, Intercepted, Pass

PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3


async def test_partition_consumer_and_acks(loopback_clock: trio.testing.MockClock) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("t")
        await client.start_producer("t")
        await (await client.produce_batch("t", [(None, b"%d" % i) for i in range(10)], partition=0))
        await client.start_consumer("t", ConsumerConfig(begin_offset="earliest"))
        consumer = await client.get_consumer("t", 0)
        offsets: list[int] = []
        async with consumer.subscribe() as subscription:
            async for message_set in subscription:
                offsets += [m.offset for m in message_set]
                subscription.ack(message_set.messages[-1].offset)
                if len(offsets) == 10:
                    break
        assert offsets == list(range(10))


async def test_topic_subscriber_over_every_partition(
    loopback_clock: trio.testing.MockClock,
) -> None:
    seen: dict[int, list[bytes | None]] = {0: [], 1: [], 2: []}
    done = trio.Event()

    async def handle(partition: int, message: Record) -> None:
        seen[partition].append(message.value)
        if sum(map(len, seen.values())) == 9:
            done.set()

    async with fake_kafka(brokers=2) as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("t", partitions=3)
        await client.start_producer("t")
        for partition in range(3):
            for i in range(3):
                await client.produce_sync("t", b"%d:%d" % (partition, i), partition=partition)
        config = ConsumerConfig(begin_offset="earliest")
        async with open_topic_subscriber(client, "t", handle, consumer_config=config):
            await done.wait()
    assert seen == {p: [b"%d:%d" % (p, i) for i in range(3)] for p in range(3)}


async def test_produce_without_acks(loopback_clock: trio.testing.MockClock) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("t")
        watch = fake.control(PRODUCE, Pass(), times=None)
        await client.start_producer("t", ProducerConfig(required_acks=0))
        await client.produce_no_ack("t", b"fire", partition=0)
        while fake.log("t", 0).high_watermark < 1:
            await fake.cluster.wait_changed()
        assert [r.body.acks for r in watch.seen] == [0]


async def test_a_whole_request_fails_or_hangs(loopback_clock: trio.testing.MockClock) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("t")
        # Metadata failing for the topic (no topic filter: every topic in the request).
        fake.control(MetadataRequest, Fail(TopicAuthorizationFailedError), times=1)
        failed = await client.get_metadata(["t"])
        assert failed.topics["t"].error_code == TopicAuthorizationFailedError.code
        assert (await client.get_metadata(["t"])).topics["t"].error_code == 0
        # A request that is never answered: the client's request timeout ends it.
        hang = fake.control(LIST_OFFSETS, Hang())
        start = trio.current_time()
        with pytest.raises(RequestTimedOut):
            await client.resolve_offset("t", 0, "latest")
        assert trio.current_time() - start >= 30  # request_timeout, on the mock clock
        assert len(hang.seen) == 1
        assert await client.resolve_offset("t", 0, "latest") == 0  # a new connection


async def test_a_decision_function_sees_each_request(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka(brokers=2) as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("t", partitions=2, replication_factor=2)
        leaders = {p.index: p.leader for p in fake.model.topics["t"].partitions}
        decided: list[tuple[int, int]] = []

        def drop_first_produce_on_partition_1(request: Intercepted) -> Drop | None:
            assert isinstance(request.body, ProduceRequest)
            decided.append((request.broker, request.version))
            if ("t", 1) in request.targets and len(decided) == 1:
                return Drop()
            return None  # left alone: served normally, and not counted

        fake.control(PRODUCE, drop_first_produce_on_partition_1, times=None)
        await client.start_producer("t")
        assert await client.produce_sync("t", b"a", partition=1) == 0
        assert await client.produce_sync("t", b"b", partition=0) == 0
        assert decided[0][0] == leaders[1]
        assert len(decided) == 3  # the dropped one, its retry, partition 0's
        assert fake.log("t", 1).high_watermark == 1


async def test_broker_filter_and_partition_errors(loopback_clock: trio.testing.MockClock) -> None:
    async with fake_kafka(brokers=2) as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("t", partitions=2)
        leader0 = fake.model.partition("t", 0).leader
        other = next(b for b in fake.broker_ids if b != leader0)
        # On the other broker only: never matches partition 0's produce.
        untouched = fake.control(PRODUCE, Fail(NotLeaderOrFollowerError), broker=other)
        also_untouched = fake.fail(PRODUCE, NotLeaderOrFollowerError, broker=other)
        await client.start_producer("t")
        assert await client.produce_sync("t", b"x", partition=0) == 0
        assert untouched.seen == also_untouched.seen == []
        # fail() takes the broker filter too: on the leader, the produce fails once, and
        # the producer retries.
        on_leader = fake.fail(PRODUCE, NotLeaderOrFollowerError, broker=leader0)
        assert await client.produce_sync("t", b"y", partition=0) == 1
        assert len(on_leader.seen) == 1
        # Metadata: a partition-level error for partition 1 only.
        fake.control(METADATA, Fail(LeaderNotAvailableError), topic="t", partition=1)
        metadata = await client.get_metadata(["t"])
        partitions = metadata.topics["t"].partitions
        assert (partitions[0].error_code, partitions[1].error_code) == (
            0,
            LeaderNotAvailableError.code,
        )


async def test_stopped_single_replica_partitions_have_no_leader(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka(brokers=2) as fake:
        fake.create_topic("t", partitions=2)
        led_by = fake.model.partition("t", 0).leader
        await fake.stop_broker(led_by)
        assert fake.model.partition("t", 0).leader == -1
        async with open_client(fake.bootstrap_servers) as client:
            metadata = await client.get_metadata(["t"])
            assert metadata.topics["t"].partitions[0].error_code == LeaderNotAvailableError.code
            assert set(metadata.brokers) == set(fake.broker_ids) - {led_by}
        await fake.start_broker(led_by)
        assert fake.model.partition("t", 0).leader == led_by
        with pytest.raises(UnknownTopicOrPartitionError):  # as the client sees the error
            fake.move_leader("t", 5)


async def test_a_topic_filtered_fail_fails_other_apis_whole(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        control = fake.fail(CreateTopicsRequest, PolicyViolationError, topic="t")
        with pytest.raises(PolicyViolationError):
            await trio_brod.admin.create_topics(client, [NewTopic("t", 1, 1)])
        assert len(control.seen) == 1
        assert "t" not in fake.model.topics  # the request was not served


async def test_a_drop_after_serving_writes_and_loses_the_answer(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("t")
        dropped = fake.control(PRODUCE, Drop(after_serving=True))
        await client.start_producer("t", ProducerConfig(max_retries=0))
        with pytest.raises(BrokerConnectionError):
            await client.produce_sync("t", b"lost answer", partition=0)
        assert len(dropped.seen) == 1
        assert fake.log("t", 0).high_watermark == 1  # written all the same


async def test_a_held_request_waits_for_its_release(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("t")
        hold = Hold()
        held = fake.control(PRODUCE, hold, times=None)
        await client.start_producer("t")
        offsets: list[int] = []

        async def produce() -> None:
            offsets.append(await client.produce_sync("t", b"held", partition=0))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            await held.wait_seen()
            await trio.sleep(60)  # Trio's clock: nothing answers it meanwhile
            assert (offsets, fake.log("t", 0).high_watermark) == ([], 0)
            hold.release()
        assert offsets == [0]
        # Released for good: later requests pass at once.
        assert await client.produce_sync("t", b"later", partition=0) == 1


async def test_append_seeds_a_partition_for_consumers(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("t")
        assert fake.append("t", 0, [b"a", b"b"], keys=[b"k", None], timestamp=5000) == 0
        assert fake.append("t", 0, [b"c"]) == 2
        assert await client.resolve_offset("t", 0, Timestamp(5001)) == 1
        result = await client.fold("t", 0, 0, lambda m, acc: [*acc, (m.key, m.value)], [])
        assert result.acc == [(b"k", b"a"), (None, b"b"), (None, b"c")]


async def test_connections_are_counted_and_numbered(loopback_clock: trio.testing.MockClock) -> None:
    async with fake_kafka(brokers=2) as fake:
        seen = fake.control(MetadataRequest, Pass(), times=None)
        assert fake.connections(1) == fake.connections(2) == 0
        for connect in (None, fake.connect):  # over TCP, then in process
            async with open_client(fake.bootstrap_servers[:1], connect=connect) as client:
                await client.get_metadata()
        assert fake.connections(1) == 2
        assert [request.connection for request in seen.seen] == [1, 2]
        await fake.stop_broker(1)
        await fake.start_broker(1)
        async with open_client(fake.bootstrap_servers[:1]) as client:
            await client.get_metadata()
        assert fake.connections(1) == 3  # counted across a restart
        assert seen.seen[-1].connection == 3
