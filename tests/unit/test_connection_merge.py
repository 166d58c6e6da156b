"""Merging one-partition Produce and Fetch requests on a connection (trio_brod._net.merge).

The planning rules and the merge/split round trip are tested without I/O; the connection's
side (what reaches the wire, who gets which answer, failures) against the scripted fake
broker; the producer's use of it against the fake Kafka. The consumer's use of it is in
test_consumer_fetch_connections.py.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes.broker import FakeBroker, Request, answer
from tests.produced import TOPIC, serving
from trio_brod import ClientConfig, ProducerConfig, open_client
from trio_brod._exceptions import BrokerConnectionError, ConnectionLost, RequestTimedOut
from trio_brod._net import Connection, PendingResponse
from trio_brod._net.merge import (
    FETCH_MAX_BYTES,
    PRODUCE_MERGE_LIMIT,
    merge,
    part_for,
    plan,
    split,
)
from trio_brod._net.pending import Part
from trio_brod.protocol import (
    DecodeError,
    EncodeError,
    FetchRequest,
    FetchResponse,
    MetadataRequest,
    MetadataResponse,
    ProduceRequest,
    ProduceResponse,
)
from trio_brod.protocol.records import encode_batch

PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3
PRODUCE_VERSION = 9
FETCH_VERSION = 12
TOPIC_IDS = {"a": uuid.UUID(int=1), "b": uuid.UUID(int=2)}
TOPIC_ID = uuid.UUID(int=3)  # of TOPIC


def records(value: bytes) -> bytes:
    return encode_batch([(0, None, value, ())])


def produce(
    topic: str, partition: int, value: bytes = b"v", *, acks: int = 1, timeout_ms: int = 1000
) -> ProduceRequest:
    """A one-partition Produce request, as a partition producer sends it."""
    return ProduceRequest(
        acks=acks,
        timeout_ms=timeout_ms,
        topic_data=[
            ProduceRequest.TopicProduceData(
                name=topic,
                partition_data=[
                    ProduceRequest.PartitionProduceData(index=partition, records=records(value))
                ],
            )
        ],
    )


def fetch(
    topic: str, partition: int, offset: int = 0, *, max_bytes: int = 1000, max_wait_ms: int = 0
) -> FetchRequest:
    """A one-partition Fetch request, as a partition consumer sends it."""
    return FetchRequest(
        max_wait_ms=max_wait_ms,
        min_bytes=1,
        max_bytes=max_bytes,
        isolation_level=0,
        topics=[
            FetchRequest.FetchTopic(
                topic=topic,
                topic_id=TOPIC_IDS.get(topic, uuid.UUID(int=99)),
                partitions=[
                    FetchRequest.FetchPartition(
                        partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes
                    )
                ],
            )
        ],
    )


def part(message: Any, version: int = PRODUCE_VERSION, *, expect_response: bool = True) -> Part:
    made = part_for(
        message, version, expect_response, PendingResponse(message.RESPONSE, version, None)
    )
    assert made is not None
    return made


def produce_answer(body: ProduceRequest, *, skip: tuple[str, int] | None = None) -> Any:
    """Every partition written: base offset 100 * partition; ``skip`` is left out."""
    return ProduceResponse(
        throttle_time_ms=7,
        responses=[
            ProduceResponse.TopicProduceResponse(
                name=topic.name,
                partition_responses=[
                    ProduceResponse.PartitionProduceResponse(
                        index=data.index, base_offset=100 * data.index
                    )
                    for data in topic.partition_data
                    if (topic.name, data.index) != skip
                ],
            )
            for topic in body.topic_data
        ],
    )


def fetch_answer(body: FetchRequest, version: int) -> Any:
    """Each partition's high watermark is 1000 * partition + its fetch offset."""
    by_id = version >= 13
    return FetchResponse(
        responses=[
            FetchResponse.FetchableTopicResponse(
                topic="" if by_id else topic.topic,
                topic_id=topic.topic_id,
                partitions=[
                    FetchResponse.PartitionData(
                        partition_index=wanted.partition,
                        high_watermark=1000 * wanted.partition + wanted.fetch_offset,
                        records=records(b"%s-%d" % (topic.topic.encode(), wanted.partition))
                        if not by_id
                        else records(b"%d" % wanted.partition),
                    )
                    for wanted in topic.partitions
                ],
            )
            for topic in body.topics
        ]
    )


# ------------------------------------------------------------------------------ part_for


def test_only_one_partition_requests_are_parts() -> None:
    assert part(produce("a", 0)).address == ("a", 0)
    two = produce("a", 0)
    two.topic_data[0].partition_data.append(
        ProduceRequest.PartitionProduceData(index=1, records=records(b"x"))
    )
    pending = PendingResponse(ProduceResponse, PRODUCE_VERSION, None)
    assert part_for(two, PRODUCE_VERSION, True, pending) is None
    in_session = fetch("a", 0)
    in_session.session_epoch = 0
    assert part_for(in_session, FETCH_VERSION, True, pending) is None
    assert part_for(MetadataRequest(topics=None), 12, True, pending) is None


def test_merge_keys_separate_what_cannot_share_a_request() -> None:
    assert part(produce("a", 0)).key == part(produce("b", 3)).key
    assert part(produce("a", 0)).key != part(produce("a", 1, acks=-1)).key
    assert part(produce("a", 0)).key != part(produce("a", 1, timeout_ms=5)).key
    assert part(produce("a", 0)).key != part(produce("a", 1), version=10).key
    assert part(produce("a", 0)).key != part(produce("a", 1), expect_response=False).key
    assert part(fetch("a", 0), FETCH_VERSION).key == part(fetch("b", 1), FETCH_VERSION).key
    assert (
        part(fetch("a", 0), FETCH_VERSION).key
        != part(fetch("a", 1, max_wait_ms=500), FETCH_VERSION).key
    )
    # Fetch v13+ names topics by id, so the address does too.
    assert part(fetch("a", 2), 13).address == (TOPIC_IDS["a"], 2)


# ------------------------------------------------------------------------------ plan


def shape(planned: list[Any]) -> list[Any]:
    """Plan entries as comparable values: a frame as itself, a part as its address."""
    out: list[Any] = []
    for entry in planned:
        if isinstance(entry, Part):
            out.append(entry.address)
        elif isinstance(entry, list):
            out.append([p.address for p in entry])
        else:
            out.append(entry)
    return out


def test_plan_merges_parts_of_one_key_and_keeps_frames_in_place() -> None:
    items = [
        part(produce("a", 0)),
        "frame",
        part(produce("a", 1)),
        part(produce("a", 2, acks=-1)),
        part(produce("b", 0)),
    ]
    assert shape(plan(items)) == [[("a", 0), ("a", 1), ("b", 0)], "frame", ("a", 2)]


def test_plan_keeps_each_partitions_requests_in_order() -> None:
    items = [
        part(produce("a", 0, b"1")),
        part(produce("a", 1, b"1")),
        part(produce("a", 0, b"2")),  # a second request for a[0]: the next request
        part(produce("a", 1, b"2")),
        part(produce("a", 2, b"1")),
        part(produce("a", 0, b"3")),
    ]
    planned = plan(items)
    assert shape(planned) == [
        [("a", 0), ("a", 1)],
        [("a", 0), ("a", 1), ("a", 2)],
        ("a", 0),
    ]
    groups = [entry for entry in planned if isinstance(entry, list)]
    values = [[p.message.topic_data[0].partition_data[0].records for p in e] for e in groups]
    assert values[0] == [records(b"1"), records(b"1")]
    assert values[1] == [records(b"2"), records(b"2"), records(b"1")]


def test_plan_never_puts_a_part_ahead_of_a_later_request_of_its_partition() -> None:
    # a[0] goes out with acks=-1 in the second group; a later a[0] with acks=1 must not
    # join the first group (of acks=1), which is written before it.
    items = [
        part(produce("a", 1)),
        part(produce("a", 0, acks=-1)),
        part(produce("a", 0)),
    ]
    assert shape(plan(items)) == [("a", 1), ("a", 0), ("a", 0)]


def test_plan_drops_abandoned_parts() -> None:
    gone = part(produce("a", 1))
    gone.pending.abandoned = True
    assert shape(plan([part(produce("a", 0)), gone, part(produce("a", 2))])) == [
        [("a", 0), ("a", 2)]
    ]


def test_plan_limits_the_size_of_a_merged_produce() -> None:
    value = b"x" * (PRODUCE_MERGE_LIMIT // 3)
    items = [part(produce("a", p, value)) for p in range(5)]
    assert shape(plan(items)) == [[("a", 0), ("a", 1)], [("a", 2), ("a", 3)], ("a", 4)]


# ------------------------------------------------------------------------------ merge, split


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 20)), unique=True, min_size=2
    )
)
def test_merged_produce_round_trip(addresses: list[tuple[str, int]]) -> None:
    parts = [part(produce(topic, partition, b"%d" % partition)) for topic, partition in addresses]
    merged = merge(parts, 1 << 20)
    wire = ProduceRequest.decode(merged.encode(PRODUCE_VERSION), PRODUCE_VERSION)
    sent = {(t.name, d.index): d.records for t in wire.topic_data for d in t.partition_data}
    assert sent == {(t, p): records(b"%d" % p) for t, p in addresses}
    assert (wire.acks, wire.timeout_ms) == (1, 1000)
    response = ProduceResponse.decode(produce_answer(wire).encode(PRODUCE_VERSION), PRODUCE_VERSION)
    for one, answer_ in zip(parts, split(response, parts, PRODUCE_VERSION), strict=True):
        (topic,) = answer_.responses
        (result,) = topic.partition_responses
        assert (topic.name, result.index) == one.address
        assert result.base_offset == 100 * one.address[1]
        assert answer_.throttle_time_ms == 7


@pytest.mark.parametrize("version", [FETCH_VERSION, 13])
def test_merged_fetch_round_trip(version: int) -> None:
    parts = [
        part(fetch("a", 0, 5, max_bytes=100), version),
        part(fetch("b", 1, 6, max_bytes=300), version),
        part(fetch("a", 2, 7, max_bytes=200), version),
    ]
    merged = merge(parts, 1 << 20)
    assert merged.max_bytes == 600  # each partition can get what it would have alone
    assert [(t.topic, [p.partition for p in t.partitions]) for t in merged.topics] == [
        ("a", [0, 2]),
        ("b", [1]),
    ]
    wire = FetchRequest.decode(merged.encode(version), version)
    response = FetchResponse.decode(fetch_answer(wire, version).encode(version), version)
    for one, answer_ in zip(parts, split(response, parts, version), strict=True):
        (topic,) = answer_.responses
        (data,) = topic.partitions
        wanted = one.message.topics[0].partitions[0]
        assert data.partition_index == wanted.partition
        assert data.high_watermark == 1000 * wanted.partition + wanted.fetch_offset


def test_merged_fetch_max_bytes_is_bounded() -> None:
    parts = [part(fetch("a", p, max_bytes=30 << 20), FETCH_VERSION) for p in range(3)]
    assert merge(parts, 1 << 30).max_bytes == FETCH_MAX_BYTES
    # Half the frame limit, but never less than one part asked for alone.
    assert merge(parts, 40 << 20).max_bytes == 30 << 20
    small = [part(fetch("a", p, max_bytes=1 << 20), FETCH_VERSION) for p in range(8)]
    assert merge(small, 4 << 20).max_bytes == 2 << 20


def test_split_gives_a_missing_partition_an_empty_response() -> None:
    parts = [part(produce("a", 0)), part(produce("a", 1))]
    response = produce_answer(merge(parts, 1 << 20), skip=("a", 1))
    first, second = split(response, parts, PRODUCE_VERSION)
    assert first.responses[0].partition_responses[0].index == 0
    assert second.responses == []


# ------------------------------------------------------------------------------ connection


@pytest.fixture
async def broker(nursery: trio.Nursery) -> FakeBroker:
    fake: FakeBroker = await nursery.start(FakeBroker().serve)

    async def produce_handler(stream: trio.SocketStream, request: Request) -> None:
        if request.body.acks != 0:
            await answer(stream, request, produce_answer(request.body))

    async def fetch_handler(stream: trio.SocketStream, request: Request) -> None:
        await answer(stream, request, fetch_answer(request.body, request.version))

    fake.handlers[PRODUCE] = produce_handler
    fake.handlers[FETCH] = fetch_handler
    return fake


async def connect(nursery: trio.Nursery, broker: FakeBroker, **config: Any) -> Connection:
    connection = Connection("127.0.0.1", broker.port, ClientConfig(**config))
    await nursery.start(connection.run)
    return connection


def requests_of(broker: FakeBroker, api_key: int) -> list[Any]:
    return [r for r in broker.received if r.api_key == api_key]


def offset_of(pending: PendingResponse) -> int:
    (topic,) = pending.result().responses
    (result,) = topic.partition_responses
    offset: int = result.base_offset
    return offset


async def test_requests_waiting_together_go_out_as_one(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    connection = await connect(nursery, broker)
    # Sent in one go, as partition workers woken together do: the writer finds them queued.
    handles = [connection.send(produce(t, p), PRODUCE_VERSION) for t in "ab" for p in range(4)]
    with trio.fail_after(5):
        for handle in handles:
            await handle.done.wait()
    (request,) = requests_of(broker, PRODUCE)
    assert sum(len(t.partition_data) for t in request.body.topic_data) == 8
    assert [offset_of(h) for h in handles] == [0, 100, 200, 300] * 2
    assert all(h.parts == 8 for h in handles)
    assert (connection.requests_written, connection.parts_merged) == (1, 8)


async def test_a_request_to_an_idle_connection_goes_alone_at_once(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    connection = await connect(nursery, broker)
    for partition in range(3):
        response = await connection.request(produce("a", partition), PRODUCE_VERSION)
        assert response.responses[0].partition_responses[0].base_offset == 100 * partition
    assert len(requests_of(broker, PRODUCE)) == 3
    assert connection.parts_merged == 0


async def test_a_partitions_requests_stay_in_order(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    connection = await connect(nursery, broker)
    handles = [connection.send(produce("a", p % 2, b"%d" % i)) for i, p in enumerate(range(6))]
    with trio.fail_after(5):
        await handles[-1].done.wait()
    sent = [
        [(d.index, d.records) for t in r.body.topic_data for d in t.partition_data]
        for r in requests_of(broker, PRODUCE)
    ]
    assert sent == [
        [(0, records(b"0")), (1, records(b"1"))],
        [(0, records(b"2")), (1, records(b"3"))],
        [(0, records(b"4")), (1, records(b"5"))],
    ]


async def test_unmergeable_requests_keep_their_place(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    async def metadata(stream: trio.SocketStream, request: Request) -> None:
        await answer(stream, request, MetadataResponse(cluster_id="c"))

    broker.handlers[METADATA] = metadata
    connection = await connect(nursery, broker)
    first = connection.send(produce("a", 0))
    other = connection.send(MetadataRequest(topics=None))
    acks_all = connection.send(produce("a", 1, acks=-1))
    last = connection.send(produce("a", 2))
    with trio.fail_after(5):
        for handle in (first, other, acks_all, last):
            await handle.done.wait()
    assert [r.api_key for r in broker.received[1:]] == [PRODUCE, METADATA, PRODUCE]
    assert [offset_of(h) for h in (first, acks_all, last)] == [0, 100, 200]
    assert other.result().cluster_id == "c"


async def test_merged_fetch_answers_each_part(nursery: trio.Nursery, broker: FakeBroker) -> None:
    connection = await connect(nursery, broker)
    version = 13  # topics by id
    handles = [connection.send(fetch(t, p, 5), version) for t in "ab" for p in range(3)]
    with trio.fail_after(5):
        for handle in handles:
            await handle.done.wait()
    (request,) = requests_of(broker, FETCH)
    assert request.body.max_bytes == 6000
    for (topic, partition), handle in zip(
        [(t, p) for t in "ab" for p in range(3)], handles, strict=True
    ):
        (answered,) = handle.result().responses
        assert answered.topic_id == TOPIC_IDS[topic]
        (data,) = answered.partitions
        assert (data.partition_index, data.high_watermark) == (partition, 1000 * partition + 5)


async def test_acks0_parts_complete_when_written(nursery: trio.Nursery, broker: FakeBroker) -> None:
    connection = await connect(nursery, broker)
    handles = [connection.send(produce("a", p, acks=0), expect_response=False) for p in range(4)]
    with trio.fail_after(5):
        for handle in handles:
            await handle.done.wait()
    assert [h.result() for h in handles] == [None] * 4
    await trio.testing.wait_all_tasks_blocked()
    (request,) = requests_of(broker, PRODUCE)
    assert len(request.body.topic_data[0].partition_data) == 4


async def test_a_part_abandoned_before_it_is_written_is_not_written(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    connection = await connect(nursery, broker)
    kept = connection.send(produce("a", 0))
    dropped = connection.send(produce("a", 1))
    connection.abandon(dropped)
    with trio.fail_after(5):
        await kept.done.wait()
    (request,) = requests_of(broker, PRODUCE)
    assert [d.index for d in request.body.topic_data[0].partition_data] == [0]
    assert not dropped.done.is_set()


async def test_a_part_abandoned_after_it_was_written_leaves_the_others_alone(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    gate = trio.Event()
    arrived = trio.Event()

    async def held(stream: trio.SocketStream, request: Request) -> None:
        arrived.set()
        await gate.wait()
        await answer(stream, request, produce_answer(request.body))

    broker.handlers[PRODUCE] = held
    connection = await connect(nursery, broker)
    handles = [connection.send(produce("a", p)) for p in range(3)]
    with trio.fail_after(5):
        await arrived.wait()
    connection.abandon(handles[1])
    gate.set()
    with trio.fail_after(5):
        await handles[2].done.wait()
    assert [offset_of(h) for h in (handles[0], handles[2])] == [0, 200]
    assert not handles[1].done.is_set()
    assert not connection.closed


def hold_fetches(broker: FakeBroker) -> tuple[trio.Event, trio.Event]:
    """Make the broker hold each fetch until the returned gate is set (a long poll that
    gets no data); the other event is set once a fetch arrived."""
    gate = trio.Event()
    arrived = trio.Event()

    async def long_poll(stream: trio.SocketStream, request: Request) -> None:
        arrived.set()
        await gate.wait()
        await answer(stream, request, fetch_answer(request.body, request.version))

    async def metadata(stream: trio.SocketStream, request: Request) -> None:
        await answer(stream, request, MetadataResponse(cluster_id="c"))

    broker.handlers[FETCH] = long_poll
    broker.handlers[METADATA] = metadata
    return gate, arrived


def fetched_partitions(broker: FakeBroker) -> list[Any]:
    """What reached the broker, in order: a fetch as its partitions, others by API key."""
    return [
        [p.partition for t in r.body.topics for p in t.partitions]
        if r.api_key == FETCH
        else r.api_key
        for r in broker.received[1:]  # after ApiVersions
    ]


async def test_one_fetch_in_flight_and_abandoned_ones_are_never_written(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    # A broker answers a connection's requests in order: each long poll written holds up
    # everything after it. Fetches sent while one is in flight wait in the connection,
    # where those whose caller gives up are dropped; other requests are written at once.
    gate, arrived = hold_fetches(broker)
    connection = await connect(nursery, broker)
    first = connection.send(fetch("a", 0, max_wait_ms=500), FETCH_VERSION)
    with trio.fail_after(5):
        await arrived.wait()
    given_up = [connection.send(fetch("a", p, max_wait_ms=500), FETCH_VERSION) for p in (1, 2)]
    kept = connection.send(fetch("a", 3, max_wait_ms=500), FETCH_VERSION)
    await trio.testing.wait_all_tasks_blocked()  # the writer had every chance to write them
    for handle in given_up:
        connection.abandon(handle)
    other = connection.send(MetadataRequest(topics=None))
    await trio.testing.wait_all_tasks_blocked()
    gate.set()
    with trio.fail_after(5):
        await other.done.wait()
        await kept.done.wait()
    assert fetched_partitions(broker) == [[0], METADATA, [3]]
    assert first.done.is_set()
    assert not any(handle.done.is_set() for handle in given_up)
    assert not connection.closed


async def test_fetches_that_cannot_be_merged_go_one_at_a_time_too(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    gate, arrived = hold_fetches(broker)
    connection = await connect(nursery, broker)
    connection.merging = False
    first = connection.send(fetch("a", 0, max_wait_ms=500), FETCH_VERSION)
    with trio.fail_after(5):
        await arrived.wait()
    given_up = connection.send(fetch("a", 1, max_wait_ms=500), FETCH_VERSION)
    two = fetch("a", 2, max_wait_ms=500)  # two partitions: never a mergeable part
    two.topics[0].partitions.append(
        FetchRequest.FetchPartition(partition=3, fetch_offset=0, partition_max_bytes=1000)
    )
    kept = connection.send(two, FETCH_VERSION)
    await trio.testing.wait_all_tasks_blocked()
    connection.abandon(given_up)
    gate.set()
    with trio.fail_after(5):
        await first.done.wait()
        await kept.done.wait()
    assert fetched_partitions(broker) == [[0], [2, 3]]
    assert len(kept.result().responses[0].partitions) == 2


async def test_a_timeout_fails_every_part_of_the_request(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    async def never(stream: trio.SocketStream, request: Request) -> None:
        pass

    broker.handlers[PRODUCE] = never
    connection = await connect(nursery, broker)
    others = [connection.send(produce("a", p)) for p in range(1, 3)]
    with pytest.raises(RequestTimedOut):
        await connection.request(produce("a", 0), timeout=0.2)
    assert connection.closed
    for handle in others:
        assert handle.done.is_set()
        with pytest.raises(ConnectionLost, match=r"no response within 0.2s"):
            handle.result()


async def test_connection_loss_fails_written_and_queued_parts(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    async def hang_up(stream: trio.SocketStream, request: Request) -> None:
        await stream.aclose()

    broker.handlers[PRODUCE] = hang_up
    connection = await connect(nursery, broker)
    written = [connection.send(produce("a", p)) for p in range(3)]
    with trio.fail_after(5):
        for handle in written:
            await handle.done.wait()
    for handle in written:
        with pytest.raises(ConnectionLost):
            handle.result()
    with pytest.raises(ConnectionLost):
        connection.send(produce("a", 0))


async def test_close_fails_parts_still_queued(nursery: trio.Nursery, broker: FakeBroker) -> None:
    connection = await connect(nursery, broker)
    queued = [connection.send(produce("a", p)) for p in range(2)]
    no_answer = connection.send(produce("a", 5, acks=0), expect_response=False)
    connection.close()  # before the writer ran
    for handle in (*queued, no_answer):
        assert handle.done.is_set()
        with pytest.raises(BrokerConnectionError):
            handle.result()


async def test_a_part_that_cannot_be_encoded_fails_alone(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    connection = await connect(nursery, broker)
    good = connection.send(produce("a", 0))
    bad_request = produce("a", 1)
    bad_request.topic_data[0].name = "x" * 40_000  # longer than a Kafka string can be
    bad = connection.send(bad_request)
    also_good = connection.send(produce("a", 2))
    with trio.fail_after(5):
        for handle in (good, bad, also_good):
            await handle.done.wait()
    assert [offset_of(good), offset_of(also_good)] == [0, 200]
    with pytest.raises(EncodeError, match=r"32767"):
        bad.result()
    assert not connection.closed


async def test_a_malformed_merged_response_fails_its_parts_only(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    calls = 0

    async def garbage_first(stream: trio.SocketStream, request: Request) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            payload = struct.pack(">i", request.correlation_id) + b"\xff\xff\xff"
            await stream.send_all(struct.pack(">i", len(payload)) + payload)
        else:
            await answer(stream, request, produce_answer(request.body))

    broker.handlers[PRODUCE] = garbage_first
    connection = await connect(nursery, broker)
    handles = [connection.send(produce("a", p)) for p in range(3)]
    with trio.fail_after(5):
        for handle in handles:
            await handle.done.wait()
    errors = []
    for handle in handles:
        with pytest.raises(DecodeError) as info:
            handle.result()
        errors.append(info.value)
    assert len({id(e) for e in errors}) == 3  # one exception object per caller
    assert offset_of_response(await connection.request(produce("a", 1))) == 100


def offset_of_response(response: Any) -> int:
    offset: int = response.responses[0].partition_responses[0].base_offset
    return offset


async def test_merging_can_be_turned_off(nursery: trio.Nursery, broker: FakeBroker) -> None:
    connection = await connect(nursery, broker)
    connection.merging = False
    handles = [connection.send(produce("a", p)) for p in range(3)]
    with trio.fail_after(5):
        for handle in handles:
            await handle.done.wait()
    assert len(requests_of(broker, PRODUCE)) == 3
    assert connection.parts_merged == 0


# ------------------------------------------------------------------------------ producer


async def test_partition_producers_share_requests() -> None:
    async with serving(partitions=8) as cluster, open_client(cluster.bootstrap) as client:
        await client.start_producer(TOPIC, ProducerConfig(partition_onwire_limit=2))
        receipts = [await client.produce(TOPIC, b"m%d" % i, partition=i % 8) for i in range(400)]
        with trio.fail_after(10):
            offsets = [await receipt for receipt in receipts]
    assert offsets == [i // 8 for i in range(400)]
    for partition in range(8):
        assert cluster.values(partition) == [b"m%d" % i for i in range(partition, 400, 8)]
    # All eight workers' first batches were ready together: they went out as one request.
    assert cluster.produce_requests < len(cluster.sent)
    assert {s.partition for s in cluster.sent[:8]} == set(range(8))
