"""trio-brod's own client against the in-process fake Kafka, under MockClock.

Every test runs on ``autojump_clock`` (MockClock(autojump_threshold=0)): long polls,
retries' backoffs and injected delays take no wall time.
"""

from __future__ import annotations

import itertools
import logging
import math
import socket
import struct
import uuid

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import trio_brod.admin
from trio_brod import open_client
from trio_brod.admin import AlterConfigOp, ConfigResource, NewTopic
from trio_brod.protocol import (
    REQUESTS,
    ApiVersionsRequest,
    ApiVersionsResponse,
    DescribeClusterRequest,
    EndTxnRequest,
    EndTxnResponse,
    FetchRequest,
    FrameDecoder,
    JoinGroupRequest,
    ProduceRequest,
    decode_response,
    encode_request,
)
from trio_brod.protocol.errors import (
    InvalidConfigError,
    InvalidRequestError,
    MessageTooLargeError,
    NotLeaderOrFollowerError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    UnsupportedVersionError,
)
from trio_brod.protocol.records import decode_batches, encode_batch
from trio_brod.testing import fake_kafka
from trio_brod.testing.fake import Delay, Drop, FakeKafka, Pass

PRODUCE, FETCH, METADATA = 0, 1, 3


async def consume(client: object, topic: str, partition: int, count: int) -> list[tuple]:
    """The first *count* messages of a partition: (offset, key, value, headers)."""
    got: list[tuple] = []
    async with client.subscribe(topic, partition, begin_offset="earliest") as sub:  # type: ignore[attr-defined]
        async for message_set in sub:
            for m in message_set:
                got.append((m.offset, m.key, m.value, tuple(m.headers)))
            if len(got) >= count:
                return got
    return got


async def test_produce_then_consume_every_partition(autojump_clock: trio.testing.MockClock) -> None:
    async with fake_kafka(brokers=1) as fake:
        fake.create_topic("orders", partitions=3)
        async with open_client(fake.bootstrap_servers) as client:
            await client.start_producer("orders")
            sent: dict[int, list[tuple]] = {0: [], 1: [], 2: []}
            for i in range(30):
                partition = i % 3
                headers = [("n", str(i).encode())]
                offset = await client.produce_sync(
                    "orders", b"v%d" % i, b"k%d" % i, partition=partition, headers=headers
                )
                sent[partition].append((offset, b"k%d" % i, b"v%d" % i, tuple(headers)))
            for partition, expected in sent.items():
                assert [e[0] for e in expected] == list(range(10))
                assert await consume(client, "orders", partition, 10) == expected
        assert [fake.log("orders", p).high_watermark for p in range(3)] == [10, 10, 10]


async def test_a_long_poll_wakes_on_produce(autojump_clock: trio.testing.MockClock) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("t")
        await client.start_producer("t")
        got: list[bytes | None] = []

        async def late_producer() -> None:
            await trio.sleep(3600)  # an hour of Trio's clock: nothing on the wall
            await client.produce_sync("t", b"late", partition=0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(late_producer)
            async with client.subscribe("t", 0, begin_offset="earliest") as sub:
                async for message_set in sub:
                    got.extend(m.value for m in message_set)
                    break
        assert got == [b"late"]
        assert trio.current_time() >= 3600


async def test_offsets_by_time_and_delete_records(autojump_clock: trio.testing.MockClock) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("t")
        await client.start_producer("t")
        for i in range(5):
            await client.produce_sync("t", b"%d" % i, partition=0, timestamp=1000 + 10 * i)
        assert await client.resolve_offset("t", 0, "earliest") == 0
        assert await client.resolve_offset("t", 0, "latest") == 5
        assert await client.resolve_offset("t", 0, 1015) == 2
        assert await client.resolve_offset("t", 0, 1020) == 2
        result = await trio_brod.admin.delete_records(client, {("t", 0): 3})
        assert result == {("t", 0): 3}
        assert await client.resolve_offset("t", 0, "earliest") == 3
        assert await consume(client, "t", 0, 2) == [(3, None, b"3", ()), (4, None, b"4", ())]


async def test_admin_calls(autojump_clock: trio.testing.MockClock) -> None:
    async with fake_kafka(brokers=2) as fake, open_client(fake.bootstrap_servers) as client:
        await trio_brod.admin.create_topics(
            client,
            [NewTopic("a", 2, 2, configs={"retention.ms": "1000"}), NewTopic("b", 1, 1)],
        )
        assert [len(p.replicas) for p in fake.model.topics["a"].partitions] == [2, 2]
        with pytest.raises(TopicAlreadyExistsError):
            await trio_brod.admin.create_topics(client, [NewTopic("b", 1, 1)])
        await trio_brod.admin.create_partitions(client, {"b": 4})
        assert await client.get_partitions_count("b") == 4
        configs = await trio_brod.admin.describe_configs(client, [ConfigResource.topic("a")])
        entries = configs[ConfigResource.topic("a")]
        assert entries["retention.ms"].value == "1000"
        assert entries["cleanup.policy"].value == "delete"
        await trio_brod.admin.delete_topics(client, ["a"])
        assert "a" not in fake.model.topics
        asked = fake.control(DescribeClusterRequest, Pass(), times=None)
        cluster = await trio_brod.admin.describe_cluster(client)
        assert (cluster.cluster_id, set(cluster.brokers)) == ("fake-kafka-cluster", {1, 2})
        assert len(asked.seen) == 1  # answered by DescribeCluster, not Metadata


async def test_injected_produce_error_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("t", partitions=2)
        control = fake.fail(PRODUCE, NotLeaderOrFollowerError, topic="t", partition=1)
        await client.start_producer("t")
        assert await client.produce_sync("t", b"x", partition=1) == 0
        assert len(control.seen) == 1
        assert fake.log("t", 1).high_watermark == 1  # written once, by the retry


async def test_delays_and_dropped_connections(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("t")
        await client.start_producer("t")
        delayed = fake.control(PRODUCE, Delay(2.0))
        start = trio.current_time()
        await client.produce_sync("t", b"a", partition=0)
        assert trio.current_time() - start >= 2.0
        assert len(delayed.seen) == 1
        dropped = fake.control(PRODUCE, Drop())
        assert await client.produce_sync("t", b"b", partition=0) == 1
        assert len(dropped.seen) == 1
        assert fake.log("t", 0).high_watermark == 2
    # A hang-up on request is not an error of the fake's.
    assert [r.getMessage() for r in caplog.records if r.name.startswith("trio_brod.testing")] == []


async def test_leader_moves_and_broker_restarts(autojump_clock: trio.testing.MockClock) -> None:
    async with fake_kafka(brokers=3) as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("t", partitions=1, replication_factor=3)
        await client.start_producer("t")
        assert await client.produce_sync("t", b"0", partition=0) == 0
        first = fake.model.partition("t", 0).leader
        second = fake.move_leader("t", 0)
        assert second != first
        assert await client.produce_sync("t", b"1", partition=0) == 1
        await fake.stop_broker(second)
        third = fake.model.partition("t", 0).leader
        assert third not in (second, -1)
        assert await client.produce_sync("t", b"2", partition=0) == 2
        await fake.start_broker(second)
        assert len(fake.bootstrap_servers) == 3
        assert [v for _, _, v, _ in await consume(client, "t", 0, 3)] == [b"0", b"1", b"2"]


def _fake_request(fake: FakeKafka, frame: bytes) -> bytes | None:
    """Send one frame on a fresh socket; the response frame, or None if the fake hung up."""
    host, port = fake.bootstrap_servers[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(frame)
        decoder = FrameDecoder(max_frame_size=1 << 20)
        while (reply := decoder.next_frame()) is None:
            data = sock.recv(65536)
            if not data:
                return None
            decoder.feed(data)
        return reply


async def test_api_versions_lists_exactly_what_is_implemented() -> None:
    async with fake_kafka() as fake:
        frame = encode_request(ApiVersionsRequest(), 3, 7, "t")
        reply = await trio.to_thread.run_sync(_fake_request, fake, frame)
        assert reply is not None
        response = decode_response(reply, ApiVersionsResponse, 3)
        ranges = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
        assert ranges == {a.key: (a.min_version, a.max_version) for a in fake.cluster.apis.values()}
        assert ranges[PRODUCE] == (3, 11)
        assert ranges[JoinGroupRequest.API_KEY] == (0, 9)
        # Transactions v1 only: EndTxn v5 (and Produce v12) are transactions v2 (KIP-890),
        # and no transaction.version feature is finalized.
        assert ranges[EndTxnRequest.API_KEY] == (0, 4)
        assert "transaction.version" not in {f.name for f in response.finalized_features}
        for key, (low, high) in ranges.items():
            assert REQUESTS[key].MIN_VERSION <= low <= high <= REQUESTS[key].MAX_VERSION


async def test_topic_configs_set_append_subtract_delete(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """IncrementalAlterConfigs, as tests/integration/test_admin.py checks it on a real broker,
    and a new max.message.bytes applies to the next produce."""
    resource = ConfigResource.topic("t")
    alter, describe = trio_brod.admin.alter_configs, trio_brod.admin.describe_configs
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("t", partitions=1)
        await alter(client, {resource: {"retention.ms": "123456", "segment.ms": "7200000"}})
        configs = (await describe(client, [resource]))[resource]
        assert configs["retention.ms"].value == "123456"
        assert configs["retention.ms"].source == "DYNAMIC_TOPIC_CONFIG"
        assert configs["segment.ms"].value == "7200000"
        assert configs["max.message.bytes"].is_default

        await alter(client, {resource: [AlterConfigOp("cleanup.policy", "append", "compact")]})
        configs = (await describe(client, [resource]))[resource]
        assert configs["cleanup.policy"].value == "delete,compact"
        await alter(client, {resource: [AlterConfigOp("cleanup.policy", "subtract", "compact")]})
        assert (await describe(client, [resource]))[resource]["cleanup.policy"].value == "delete"
        with pytest.raises(InvalidConfigError):
            await alter(client, {resource: [AlterConfigOp("retention.ms", "append", "1")]})

        await alter(client, {resource: {"retention.ms": None}})
        configs = (await describe(client, [resource]))[resource]
        assert configs["retention.ms"].is_default
        assert configs["segment.ms"].value == "7200000"

        await alter(client, {resource: {"segment.ms": "3600000"}}, validate_only=True)
        assert (await describe(client, [resource]))[resource]["segment.ms"].value == "7200000"
        with pytest.raises(UnknownTopicOrPartitionError):
            await alter(client, {ConfigResource.topic("none"): {"retention.ms": "1"}})
        with pytest.raises(InvalidRequestError):  # no broker configs: refused, not ignored
            await alter(client, {ConfigResource.broker(1): {"log.cleaner.threads": "2"}})

        await alter(client, {resource: {"max.message.bytes": "200"}})
        await client.start_producer("t")
        with pytest.raises(MessageTooLargeError):
            await client.produce_sync("t", b"x" * 300, partition=0)


async def test_unimplemented_apis_get_unsupported_version() -> None:
    async with fake_kafka() as fake:
        end = EndTxnRequest(transactional_id="t", producer_id=1, producer_epoch=0)
        reply = await trio.to_thread.run_sync(_fake_request, fake, encode_request(end, 5, 1, "t"))
        assert reply is not None
        assert decode_response(reply, EndTxnResponse, 5).error_code == (
            UnsupportedVersionError.code
        )
        # A too-new ApiVersions is answered in v0 with the supported range, as Kafka does.
        frame = bytearray(encode_request(ApiVersionsRequest(), 3, 2, "t"))
        struct.pack_into(">h", frame, 6, 99)
        reply = await trio.to_thread.run_sync(_fake_request, fake, bytes(frame))
        assert reply is not None
        response = decode_response(reply, ApiVersionsResponse, 0)
        assert response.error_code == UnsupportedVersionError.code
        assert {k.api_key for k in response.api_keys} == set(fake.cluster.apis)


async def test_malformed_frames_close_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    async with fake_kafka() as fake:
        with caplog.at_level(logging.WARNING, logger="trio_brod.testing.fake"):
            garbage = struct.pack(">i", 3) + b"\x00\x03\x00"  # a header cut short
            assert await trio.to_thread.run_sync(_fake_request, fake, garbage) is None
            unknown = struct.pack(">ihhih", 10, 9999, 0, 1, -1)  # API key 9999
            assert await trio.to_thread.run_sync(_fake_request, fake, unknown) is None
        assert len([r for r in caplog.records if "closing a connection" in r.message]) == 2
        # The broker still serves new connections.
        frame = encode_request(ApiVersionsRequest(), 3, 7, "t")
        assert await trio.to_thread.run_sync(_fake_request, fake, frame) is not None


async def test_the_pytest_fixture(
    fake_kafka: FakeKafka,
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake_kafka.create_topic("fixture-topic")
    async with open_client(fake_kafka.bootstrap_servers) as client:
        await client.start_producer("fixture-topic")
        assert await client.produce_sync("fixture-topic", b"x", partition=0) == 0
        start = trio.current_time()
        await trio.sleep(1000)  # the fixture's fake runs on the test's (mock) clock
        assert trio.current_time() - start >= 1000
        assert await client.resolve_offset("fixture-topic", 0, "latest") == 1


def long_poll(topic_id: uuid.UUID, offset: int, wait_ms: int) -> FetchRequest:
    return FetchRequest(
        max_wait_ms=wait_ms,
        min_bytes=1,
        topics=[
            FetchRequest.FetchTopic(
                topic="t",
                topic_id=topic_id,
                partitions=[
                    FetchRequest.FetchPartition(
                        partition=0, fetch_offset=offset, partition_max_bytes=1 << 20
                    )
                ],
            )
        ],
    )


async def test_fetch_long_polls_on_trios_clock(autojump_clock: trio.testing.MockClock) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        topic_id = fake.create_topic("t").topic_id
        connection = await client.get_leader_connection("t", 0)
        # Nothing arrives: the answer comes at max_wait_ms, empty.
        start = trio.current_time()
        response = await connection.request(long_poll(topic_id, 0, 10_000))
        assert trio.current_time() - start == pytest.approx(10.0)
        assert response.responses[0].partitions[0].records in (b"", None)
        # A record produced 4 s into the wait answers the poll at once. (From another
        # client: a broker serves a connection's requests one at a time, so a produce on
        # the polling connection would wait behind the poll, on the fake as on Kafka.)

        async def produce_later() -> None:
            await trio.sleep(4)
            async with open_client(fake.bootstrap_servers) as producer:
                await producer.start_producer("t")
                await producer.produce_sync("t", b"now", partition=0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce_later)
            start = trio.current_time()
            response = await connection.request(long_poll(topic_id, 0, 10_000))
            waited = trio.current_time() - start
        assert 4 <= waited < 10
        (batch,) = decode_batches(response.responses[0].partitions[0].records).batches
        assert [r.value for r in batch.records()] == [b"now"]


async def test_a_failed_produce_without_acks_closes_the_connection() -> None:
    async with fake_kafka() as fake:
        fake.create_topic("t")
        produce = ProduceRequest(
            acks=0,
            timeout_ms=1000,
            topic_data=[
                ProduceRequest.TopicProduceData(
                    name="t",
                    partition_data=[
                        ProduceRequest.PartitionProduceData(
                            index=7, records=encode_batch([(0, None, b"v", ())])
                        )
                    ],
                )
            ],
        )
        frame = encode_request(produce, 9, 1, "t")
        assert await trio.to_thread.run_sync(_fake_request, fake, frame) is None


async def test_a_property_shares_one_fake_across_examples(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # docs/testing.rst's "fast properties" pattern: hypothesis in a worker thread, each
    # example a fresh topic in this Trio run, the clock jumping only inside examples.
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        numbers = itertools.count()
        seen: list[int] = []

        async def example(values: list[bytes]) -> None:
            autojump_clock.autojump_threshold = 0
            try:
                topic = f"orders-{next(numbers)}"
                fake.create_topic(topic, partitions=1)
                await client.start_producer(topic)
                receipts = [await client.produce(topic, v, partition=0) for v in values]
                for receipt in receipts:
                    await receipt
                await client.stop_producer(topic)
                got: list[bytes | None] = []
                async with client.subscribe(topic, 0, begin_offset=0) as sub:
                    async for message_set in sub:
                        got += [m.value for m in message_set]
                        if len(got) == len(values):
                            break
                await client.stop_consumer(topic)
                assert got == values
                seen.append(fake.log(topic, 0).high_watermark)
            finally:
                autojump_clock.autojump_threshold = math.inf

        @settings(max_examples=15, deadline=None, database=None)
        @given(st.lists(st.binary(max_size=64), min_size=1, max_size=8))
        def prop(values: list[bytes]) -> None:
            trio.from_thread.run(example, values)

        autojump_clock.autojump_threshold = math.inf
        await trio.to_thread.run_sync(prop)
        assert len(seen) == 15
        assert len(fake.model.topics) == 15
