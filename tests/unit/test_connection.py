"""The connection's own mechanics, against a scripted fake broker (tests/fakebroker.py).

What a real broker does is tested against real Kafka in tests/integration; here the fake
misbehaves on purpose: answers out of order, late, malformed, or not at all.
"""

from __future__ import annotations

import struct

import pytest
import trio

from tests.fakes.broker import FakeBroker, Request, answer, api_versions_body, response_frame
from trio_brod import ClientConfig
from trio_brod._exceptions import (
    ConnectionClosed,
    ConnectionFailed,
    ConnectionLost,
    RequestTimedOut,
    UnsupportedVersion,
)
from trio_brod._net import Connection
from trio_brod._net import handshake as handshake_module
from trio_brod.protocol import (
    ApiVersionsResponse,
    DecodeError,
    MetadataRequest,
    MetadataResponse,
)


async def connect(nursery: trio.Nursery, broker: FakeBroker, **config: object) -> Connection:
    connection = Connection("127.0.0.1", broker.port, ClientConfig(**config))  # type: ignore[arg-type]
    await nursery.start(connection.run)
    return connection


def metadata_answer(cluster_id: str) -> MetadataResponse:
    return MetadataResponse(cluster_id=cluster_id, controller_id=1)


async def test_handshake_negotiates_versions(nursery: trio.Nursery, broker: FakeBroker) -> None:
    connection = await connect(nursery, broker)
    assert connection.version_for(MetadataRequest.API_KEY, 9) == 9
    assert connection.version_for(MetadataRequest.API_KEY, 99) == MetadataRequest.MAX_VERSION
    with pytest.raises(UnsupportedVersion, match=r"API 3: the broker speaks versions 0-12"):
        connection.version_for(MetadataRequest.API_KEY, 20, min_version=13)
    with pytest.raises(UnsupportedVersion, match=r"does not support API 999"):
        connection.version_for(999, 1)


async def test_api_versions_falls_back_when_the_broker_is_older(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    seen: list[int] = []

    async def old_broker(stream: trio.SocketStream, request: Request) -> None:
        seen.append(request.version)
        if request.version > 2:
            # A broker that only knows ApiVersions v0-2 answers in v0, with its ranges.
            body = ApiVersionsResponse(
                error_code=35,
                api_keys=[ApiVersionsResponse.ApiVersion(api_key=18, min_version=0, max_version=2)],
            )
            await stream.send_all(response_frame(18, 0, request.correlation_id, body))
        else:
            await answer(stream, request, api_versions_body({18: (0, 2)}))

    broker.handlers[18] = old_broker
    connection = await connect(nursery, broker)
    assert seen == [4, 2]
    assert connection.api_versions[18] == (0, 2)


async def test_the_finalized_feature_levels_are_kept(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    # As a Kafka 4.x broker answers: transaction.version decides on transactions v2.
    feature = ApiVersionsResponse.FinalizedFeatureKey

    async def kafka_4(stream: trio.SocketStream, request: Request) -> None:
        body = api_versions_body({18: (0, 4), 3: (0, 12)})
        body.finalized_features_epoch = 7
        body.finalized_features = [
            feature(name="transaction.version", max_version_level=2, min_version_level=2),
            feature(name="metadata.version", max_version_level=27, min_version_level=27),
        ]
        await answer(stream, request, body)

    broker.handlers[18] = kafka_4
    handshake_module._version_ranges.cache_clear()
    connection = await connect(nursery, broker)
    assert connection.finalized_features == {"transaction.version": 2, "metadata.version": 27}


async def test_finalized_features_without_an_epoch_are_not_kept(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    # The levels are valid only with a finalized features epoch >= 0 (the schema says so).
    async def no_epoch(stream: trio.SocketStream, request: Request) -> None:
        body = api_versions_body({18: (0, 4), 3: (0, 12)})
        body.finalized_features = [
            ApiVersionsResponse.FinalizedFeatureKey(name="transaction.version", max_version_level=2)
        ]
        await answer(stream, request, body)

    broker.handlers[18] = no_epoch
    handshake_module._version_ranges.cache_clear()
    connection = await connect(nursery, broker)
    assert connection.finalized_features == {}


async def test_each_broker_answer_to_api_versions_is_decoded_once(
    nursery: trio.Nursery, broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every connection to a broker gets the same ApiVersions frame: a consumer opening a
    # connection per partition decodes it once. Each connection still has its own ranges.
    decoded: list[int] = []
    decode = handshake_module._decode_api_versions

    def counting(frame: bytes, version: int) -> object:
        decoded.append(version)
        return decode(frame, version)

    monkeypatch.setattr(handshake_module, "_decode_api_versions", counting)
    handshake_module._version_ranges.cache_clear()
    first, second = await connect(nursery, broker), await connect(nursery, broker)
    assert len(decoded) == 1
    assert first.api_versions == second.api_versions
    first.api_versions[18] = (0, 0)  # as a test may do to play an older broker
    assert second.api_versions[18] != (0, 0)
    third = await connect(nursery, broker)
    assert third.api_versions == second.api_versions


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
async def test_addresses_are_connected_to_directly_and_names_resolved(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # trio.open_tcp_stream (name lookup, happy eyeballs) is only for names: for an IP
    # address a plain connect does, at a third of the CPU.
    resolved: list[str] = []
    open_by_name = trio.open_tcp_stream

    async def recording(name: str, port: int) -> trio.SocketStream:
        resolved.append(name)
        return await open_by_name(name, port)

    monkeypatch.setattr(trio, "open_tcp_stream", recording)
    listeners = await trio.open_tcp_listeners(0, host="::1" if host == "::1" else "127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with listeners[0]:
        stream = await handshake_module.open_tcp_stream(host, port)
        async with stream:
            accepted = await listeners[0].accept()
            await stream.send_all(b"ping")
            assert await accepted.receive_some(4) == b"ping"
            await accepted.aclose()
    assert resolved == ([host] if host == "localhost" else [])
    with pytest.raises(OSError, match=r"refused|all attempts"):
        await handshake_module.open_tcp_stream(host, port)  # nobody listens any more


async def test_pipelined_requests_get_their_own_responses(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    held: list[Request] = []

    async def reply_in_reverse(stream: trio.SocketStream, request: Request) -> None:
        held.append(request)
        if len(held) == 3:
            for waiting in reversed(held):
                name = waiting.body.topics[0].name
                await answer(stream, waiting, metadata_answer(name))

    broker.handlers[3] = reply_in_reverse
    connection = await connect(nursery, broker)
    results: dict[str, str | None] = {}

    async def ask(name: str) -> None:
        request = MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=name)])
        response = await connection.request(request)
        results[name] = response.cluster_id

    async with trio.open_nursery() as callers:
        for name in ("a", "b", "c"):
            callers.start_soon(ask, name)
    assert results == {"a": "a", "b": "b", "c": "c"}
    assert len({r.correlation_id for r in held}) == 3


async def test_request_timeout_closes_the_connection(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    async def never(stream: trio.SocketStream, request: Request) -> None:
        pass

    broker.handlers[3] = never
    connection = await connect(nursery, broker)
    other = connection.send(MetadataRequest(topics=[]))
    with pytest.raises(RequestTimedOut, match=r"no response within 0.2s"):
        await connection.request(MetadataRequest(topics=None), timeout=0.2)
    assert connection.closed
    await other.done.wait()
    with pytest.raises(ConnectionLost, match=r"no response within 0.2s"):
        other.result()
    with pytest.raises(ConnectionLost):
        await connection.request(MetadataRequest(topics=None))


async def test_broker_hanging_up_fails_requests_in_flight(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    async def hang_up(stream: trio.SocketStream, request: Request) -> None:
        await stream.aclose()

    broker.handlers[3] = hang_up
    connection = await connect(nursery, broker)
    with pytest.raises(ConnectionLost, match=r"closed the connection|read failed"):
        await connection.request(MetadataRequest(topics=None))
    assert connection.closed


async def test_the_error_that_broke_a_connection_keeps_no_locals(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    # The error that closed a connection lives on as the cause of its requests' failures
    # (and as the client's last error for that broker): its traceback must not keep the
    # locals of the frames it passed through alive, here the response frame being read.
    async def wrong_correlation_id(stream: trio.SocketStream, request: Request) -> None:
        frame = response_frame(3, request.version, request.correlation_id + 7, metadata_answer("c"))
        await stream.send_all(frame)

    broker.handlers[3] = wrong_correlation_id
    connection = await connect(nursery, broker)
    with pytest.raises(ConnectionLost, match="protocol error") as info:
        await connection.request(MetadataRequest(topics=None))
    cause = info.value.__cause__
    assert isinstance(cause, DecodeError)
    frames = []
    tb = cause.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    answer_frames = [f for f in frames if f.f_code.co_name == "_answer"]
    assert answer_frames, "the traceback goes through Connection._answer"
    assert [f.f_locals for f in answer_frames] == [{}]


async def test_oversized_frame_is_refused(nursery: trio.Nursery, broker: FakeBroker) -> None:
    async def huge(stream: trio.SocketStream, request: Request) -> None:
        await stream.send_all(struct.pack(">ii", 50_000_000, request.correlation_id))

    broker.handlers[3] = huge
    connection = await connect(nursery, broker, max_frame_size=1_000_000)
    with pytest.raises(ConnectionLost, match=r"larger than the limit"):
        await connection.request(MetadataRequest(topics=None))


async def test_malformed_body_fails_only_that_request(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    calls = 0

    async def garbage_then_good(stream: trio.SocketStream, request: Request) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            payload = struct.pack(">i", request.correlation_id) + b"\xff\xff\xff"
            await stream.send_all(struct.pack(">i", len(payload)) + payload)
        else:
            await answer(stream, request, metadata_answer("ok"))

    broker.handlers[3] = garbage_then_good
    connection = await connect(nursery, broker)
    with pytest.raises(DecodeError):
        await connection.request(MetadataRequest(topics=None))
    response = await connection.request(MetadataRequest(topics=None))
    assert response.cluster_id == "ok"
    assert not connection.closed


async def test_close_fails_requests_in_flight(nursery: trio.Nursery, broker: FakeBroker) -> None:
    async def never(stream: trio.SocketStream, request: Request) -> None:
        pass

    broker.handlers[3] = never
    connection = await connect(nursery, broker)
    pending = connection.send(MetadataRequest(topics=None))
    connection.close()
    await pending.done.wait()
    with pytest.raises(ConnectionClosed):
        pending.result()


async def test_refused_connection(nursery: trio.Nursery) -> None:
    # Bind and close a listener to find a port nobody listens on.
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    connection = Connection("127.0.0.1", port, ClientConfig())
    with pytest.raises(ConnectionFailed, match=f"127.0.0.1:{port}"):
        await nursery.start(connection.run)


async def test_connect_timeout_during_handshake(nursery: trio.Nursery, broker: FakeBroker) -> None:
    async def silent(stream: trio.SocketStream, request: Request) -> None:
        pass

    broker.handlers[18] = silent
    connection = Connection("127.0.0.1", broker.port, ClientConfig(connect_timeout=0.3))
    with pytest.raises(ConnectionFailed, match=r"connect_timeout=0.3"):
        await nursery.start(connection.run)


async def test_acks0_style_request_completes_when_written(
    nursery: trio.Nursery, broker: FakeBroker
) -> None:
    async def never(stream: trio.SocketStream, request: Request) -> None:
        pass

    broker.handlers[3] = never
    connection = await connect(nursery, broker)
    assert await connection.request(MetadataRequest(topics=None), expect_response=False) is None
    await trio.sleep(0.05)
    assert broker.received[-1].api_key == 3
