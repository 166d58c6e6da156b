"""The fake Kafka's in-process transport (``ClientConfig(connect=fake.connect)``) and the
stream pair under it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.task_tree import walk_tasks
from tests.unit.test_connection_merge import produce
from trio_brod import ClientConfig, ConfigError, ConnectionFailed, ConnectionLost, open_client
from trio_brod.lowlevel import Connection
from trio_brod.protocol import FetchRequest, MetadataRequest
from trio_brod.testing import fake_kafka
from trio_brod.testing.fake import FakeKafka, Hang, Pass
from trio_brod.testing.fake._pipe import PipeStream, stream_pair


async def test_the_pipe_is_a_trio_stream() -> None:
    """Trio's own conformance checks for two-way streams: ordering, closing, cancellation,
    conflicting calls, checkpoints."""

    async def make() -> tuple[PipeStream, PipeStream]:
        return stream_pair()

    await trio.testing.check_two_way_stream(make, None)


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=300), max_size=20),
    reads=st.lists(st.integers(1, 500), min_size=1, max_size=10),
)
def test_the_pipe_delivers_every_byte_in_order(chunks: list[bytes], reads: list[int]) -> None:
    async def main() -> None:
        left, right = stream_pair()
        for chunk in chunks:
            await left.send_all(chunk)
        await left.aclose()
        got = bytearray()
        sizes = iter(reads * (1 + sum(map(len, chunks))))
        while data := await right.receive_some(next(sizes)):
            got += data
        assert bytes(got) == b"".join(chunks)
        with pytest.raises(trio.BrokenResourceError):
            await right.send_all(b"x")  # the other end is closed

    trio.run(main)


async def test_a_reader_cancelled_while_waiting_leaves_the_stream_usable() -> None:
    """The waiting reader is forgotten when cancelled: a later write wakes nobody stale,
    and the next reader to wait is woken by the next write."""
    left, right = stream_pair()
    with trio.move_on_after(1) as scope:
        await left.receive_some()
    assert scope.cancelled_caught
    await right.send_all(b"late")
    assert await left.receive_some() == b"late"
    async with trio.open_nursery() as nursery:

        async def reads() -> None:
            assert await left.receive_some() == b"more"

        nursery.start_soon(reads)
        await trio.testing.wait_all_tasks_blocked()
        await right.send_all(b"more")


async def test_closing_an_end_wakes_its_reader_and_ends_the_other() -> None:
    left, right = stream_pair()
    async with trio.open_nursery() as nursery:

        async def reads_until_closed() -> None:
            with pytest.raises(trio.ClosedResourceError):
                await left.receive_some()

        nursery.start_soon(reads_until_closed)
        await trio.testing.wait_all_tasks_blocked()
        await left.aclose()
    assert await right.receive_some() == b""
    with pytest.raises(trio.ClosedResourceError):
        await left.send_all(b"x")


async def test_a_client_over_the_fake_in_process_transport() -> None:
    """Produce and consume through ``connect=fake.connect``: the same protocol, no sockets."""
    async with fake_kafka(brokers=2) as fake:
        fake.create_topic("t", partitions=2, replication_factor=2)
        watching = fake.control(MetadataRequest, Pass(), times=None)
        async with open_client(fake.bootstrap_servers, connect=fake.connect) as client:
            await client.start_producer("t")
            receipt = await client.produce("t", b"v", key=b"k", partition=1)
            offset = await receipt
            async with client.subscribe("t", 1, begin_offset=offset) as sub:
                (message,) = await sub.receive()
            assert (message.key, message.value) == (b"k", b"v")
        assert watching.seen  # the requests went through the fake's request path


async def test_a_stopped_fake_broker_refuses_in_process_connections() -> None:
    async with fake_kafka(brokers=2) as fake:
        fake.create_topic("t", partitions=1, replication_factor=2)
        host, port = fake.bootstrap_servers[0].rsplit(":", 1)
        stream = await fake.connect(host, int(port))
        await fake.stop_broker(1)
        assert await stream.receive_some() == b""  # its connections close
        with pytest.raises(ConnectionRefusedError, match="no broker"):
            await fake.connect(host, int(port))
        async with open_client([f"{host}:{port}"], connect=fake.connect) as client:
            with pytest.raises(ConnectionFailed):
                await client.get_connection(host, int(port))
        await fake.start_broker(1)
        async with open_client([f"{host}:{port}"], connect=fake.connect) as client:
            assert (await client.get_metadata(["t"])).topics["t"].partition_count == 1


async def test_a_connect_function_that_fails_is_a_connection_failure() -> None:
    async def refuse(host: str, port: int) -> trio.abc.Stream:
        raise ConnectionRefusedError(111, "refused by the test")

    async with open_client(["127.0.0.1:1"], connect=refuse) as client:
        with pytest.raises(ConnectionFailed, match="refused by the test"):
            await client.get_metadata([])


def test_connect_must_be_callable() -> None:
    with pytest.raises(ConfigError, match=r"ClientConfig\.connect=5: expected an async function"):
        ClientConfig(connect=5)  # type: ignore[arg-type]


class CountingStream(trio.abc.Stream):
    """A pipe end that counts how frames were written, and can refuse ``send_nowait``."""

    def __init__(self, inner: PipeStream, refuse: bool = False) -> None:
        self.inner, self.refuse = inner, refuse
        self.nowait = self.send_alls = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.send_alls += 1
        if self.refuse:
            await trio.lowlevel.checkpoint()
            raise trio.BrokenResourceError("send_all refused by the test")
        await self.inner.send_all(data)

    def send_nowait(self, data: bytes) -> None:
        if self.refuse:
            raise trio.BrokenResourceError("refused by the test")
        self.nowait += 1
        self.inner.send_nowait(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_requests_on_an_idle_connection_are_written_by_their_callers() -> None:
    """Over a stream with ``send_nowait``, a request to an idle writer is written inside
    ``send``: the broker has its frame before the caller's first checkpoint."""
    streams: list[CountingStream] = []
    async with fake_kafka() as fake:

        async def connect(host: str, port: int) -> trio.abc.Stream:
            stream = await fake.connect(host, port)
            assert isinstance(stream, PipeStream)
            streams.append(CountingStream(stream))
            return streams[-1]

        fake.create_topic("t", partitions=1)
        watching = fake.control(MetadataRequest, Pass(), times=None)
        async with open_client(fake.bootstrap_servers, connect=connect) as client:
            host, port = fake.bootstrap_servers[0].rsplit(":", 1)
            connection = await client.get_connection(host, int(port))
            await trio.testing.wait_all_tasks_blocked()
            (stream,) = streams
            handshake = stream.send_alls  # ApiVersions, before the writer runs
            first = connection.send(MetadataRequest(topics=None))
            second = connection.send(MetadataRequest(topics=None))
            assert stream.nowait == 2  # written in order, before any checkpoint
            await first.done.wait()
            await second.done.wait()
            assert first.result().brokers
            assert second.result().brokers
            assert len(watching.seen) == 2
            assert stream.send_alls == handshake  # the writer task wrote nothing


async def test_a_refused_send_nowait_closes_the_connection_through_the_writer() -> None:
    async with fake_kafka() as fake:
        refusing: list[CountingStream] = []

        async def connect(host: str, port: int) -> trio.abc.Stream:
            stream = await fake.connect(host, port)
            assert isinstance(stream, PipeStream)
            refusing.append(CountingStream(stream))
            return refusing[-1]

        async with open_client(fake.bootstrap_servers, connect=connect) as client:
            host, port = fake.bootstrap_servers[0].rsplit(":", 1)
            connection = await client.get_connection(host, int(port))
            await trio.testing.wait_all_tasks_blocked()
            # Broken for writing: the frame goes to the writer, whose send_all fails too.
            refusing[0].refuse = True
            with pytest.raises(ConnectionLost, match=r"write failed: .*send_all refused"):
                await connection.request(MetadataRequest(topics=None))
            assert connection.closed


async def test_a_pipe_end_can_deliver_what_arrives_to_a_callback() -> None:
    left, right = stream_pair()
    await left.send_all(b"before")
    got: list[bytes] = []
    right.deliver_to(got.append)
    assert got == [b"before"]  # what had arrived comes first
    left.send_nowait(b"one")
    await left.send_all(b"two")
    assert got == [b"before", b"one", b"two"]  # each from the writer's own call
    with pytest.raises(trio.BusyResourceError):
        await right.receive_some()  # nothing is left for it while delivering
    right.deliver_to(None)
    await left.send_all(b"three")
    assert await right.receive_some() == b"three"
    right.deliver_to(got.append)
    await left.aclose()
    assert got[-1] == b""  # end of stream
    await right.aclose()
    with pytest.raises(trio.ClosedResourceError):
        right.deliver_to(got.append)


async def test_a_pipe_closed_before_delivery_starts_says_so_at_once() -> None:
    left, right = stream_pair()
    await left.send_all(b"last words")
    await left.aclose()
    got: list[bytes] = []
    right.deliver_to(got.append)
    assert got == [b"last words", b""]


class DeliveringStream(CountingStream):
    """A pipe end that also delivers (``deliver_to``), and lets a test play the broker."""

    def __init__(self, inner: PipeStream) -> None:
        super().__init__(inner)
        self.receives = 0
        self.receiver: Callable[[bytes], object] | None = None

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        self.receives += 1
        return await self.inner.receive_some(max_bytes)

    def deliver_to(self, receiver: Callable[[bytes], object] | None) -> None:
        self.receiver = receiver
        self.inner.deliver_to(receiver)


@contextlib.asynccontextmanager
async def delivering_connection() -> AsyncIterator[tuple[Connection, DeliveringStream, FakeKafka]]:
    """A connection to a fake broker over a DeliversNowait stream, handshake done."""
    streams: list[DeliveringStream] = []
    async with fake_kafka() as fake:

        async def connect(host: str, port: int) -> trio.abc.Stream:
            stream = await fake.connect(host, port)
            assert isinstance(stream, PipeStream)
            streams.append(DeliveringStream(stream))
            return streams[-1]

        fake.create_topic("t", partitions=3)
        async with open_client(fake.bootstrap_servers, connect=connect) as client:
            host, port = fake.bootstrap_servers[0].rsplit(":", 1)
            connection = await client.get_connection(host, int(port))
            await trio.testing.wait_all_tasks_blocked()
            yield connection, streams[0], fake


def long_poll(topic_id: object, max_wait_ms: int) -> FetchRequest:
    """A fetch of t[0] from offset 0 that waits up to ``max_wait_ms`` for one byte."""
    partition = FetchRequest.FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1000)
    return FetchRequest(
        max_wait_ms=max_wait_ms,
        min_bytes=1,
        max_bytes=1000,
        topics=[FetchRequest.FetchTopic(topic="t", topic_id=topic_id, partitions=[partition])],
    )


def running_tasks() -> list[str]:
    """The names of every task of the run."""
    return [task.name for task in walk_tasks()]


async def test_a_connection_that_is_delivered_to_has_no_reader_task() -> None:
    """The broker's write completes the request: nothing reads the stream after the
    handshake, and the caller is woken directly."""
    async with delivering_connection() as (connection, stream, _):
        assert stream.receiver is not None
        assert not [name for name in running_tasks() if name.endswith("Connection._reader")]
        handshake = stream.receives  # ApiVersions was read the usual way
        response = await connection.request(MetadataRequest(topics=None))
        assert response.brokers
        assert stream.receives == handshake


async def test_a_malformed_delivered_frame_closes_the_connection() -> None:
    async with delivering_connection() as (connection, stream, fake):
        assert stream.receiver is not None
        fake.control(MetadataRequest, Hang())  # the broker answers it only from a task
        pending = connection.send(MetadataRequest(topics=None), expect_response=True)
        # Ahead of the broker's answer: a frame that answers nothing that was asked.
        stream.receiver(b"\x00\x00\x00\x08\x7f\xff\xff\xffjunk")
        assert pending.done.is_set()  # failed at once, from the delivery
        with pytest.raises(ConnectionLost, match=r"protocol error: .*unknown correlation id"):
            pending.result()
        assert connection.closed


async def test_a_broker_closing_a_delivered_connection_fails_its_requests() -> None:
    async with delivering_connection() as (connection, stream, fake):
        assert stream.receiver is not None
        fake.control(MetadataRequest, Hang())  # the broker answers it only from a task
        pending = connection.send(MetadataRequest(topics=None))
        stream.receiver(b"")  # what the pipe delivers once the broker's end closed
        assert pending.done.is_set()  # failed at once, from the delivery
        with pytest.raises(ConnectionLost, match="the broker closed the connection"):
            pending.result()
        assert connection.closed


async def test_a_fetch_on_an_idle_connection_is_written_by_its_caller() -> None:
    """A one-partition fetch while none is in flight goes out at once, as the writer would
    send it alone; one sent while it is in flight waits for it, held by the connection."""
    async with delivering_connection() as (connection, stream, _):
        metadata = await connection.request(MetadataRequest(topics=None))
        (topic,) = metadata.topics
        before = stream.nowait, stream.send_alls

        polling = connection.send(long_poll(topic.topic_id, 500))
        assert (stream.nowait, stream.send_alls) == (before[0] + 1, before[1])
        held = connection.send(long_poll(topic.topic_id, 0))
        await trio.testing.wait_all_tasks_blocked()
        assert not held.done.is_set()
        assert stream.nowait == before[0] + 1  # held back, not written
        await polling.done.wait()
        await held.done.wait()
        assert polling.result().responses[0].partitions[0].error_code == 0
        assert held.result().responses[0].partitions[0].error_code == 0


async def test_produce_parts_sent_together_are_merged_not_written_by_their_callers() -> None:
    """Writing a one-partition produce at once would keep the ones sent right after it
    from going out with it: they all go to the writer, which merges them."""
    async with delivering_connection() as (connection, stream, _):
        await connection.request(MetadataRequest(topics=None))
        before = stream.nowait, stream.send_alls, connection.requests_written
        merged = connection.parts_merged
        sent = [connection.send(produce("t", partition, b"x")) for partition in range(3)]
        assert stream.nowait == before[0]  # none written by its caller
        for pending in sent:
            await pending.done.wait()
            assert pending.result().responses[0].partition_responses[0].error_code == 0
        # One request for the three, written by the writer.
        assert (stream.send_alls, connection.requests_written) == (before[1] + 1, before[2] + 1)
        assert connection.parts_merged == merged + 3
