"""The fake Kafka's in-process transport (``ClientConfig(connect=fake.connect)``) and the
stream pair under it."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_brod import ClientConfig, ConfigError, ConnectionFailed, ConnectionLost, open_client
from trio_brod.protocol import MetadataRequest
from trio_brod.testing import fake_kafka
from trio_brod.testing.fake import Pass
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
