"""A scripted stand-in for a broker, for testing trio-brod's *own* connection behaviour.

Real-broker behaviour is tested against real Kafka (tests/integration). This fake exists for
what a real broker will not do on demand: answer late, send a garbage frame, hang up in the
middle of a response, refuse an ApiVersions version. It speaks real Kafka framing through
trio-brod's protocol package and lets each test decide, request by request, what to answer.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from trio_brod.protocol import REQUESTS, ApiVersionsResponse, FrameDecoder, ResponseHeader
from trio_brod.protocol.frames import response_header_version

_PEEK = struct.Struct(">hhi")


class Request:
    """A request as the fake broker received it.

    ``connection`` numbers the connection it came on (1 for the first accepted).
    """

    def __init__(self, api_key: int, version: int, correlation_id: int, body: Any) -> None:
        self.api_key = api_key
        self.version = version
        self.correlation_id = correlation_id
        self.body = body
        self.connection = 0


def response_frame(api_key: int, version: int, correlation_id: int, body: Any) -> bytes:
    """The bytes of a whole response frame: size, header, body."""
    header = ResponseHeader(correlation_id=correlation_id).encode(
        response_header_version(api_key, version)
    )
    payload = header + body.encode(version)
    return struct.pack(">i", len(payload)) + payload


def api_versions_body(overrides: dict[int, tuple[int, int]] | None = None) -> Any:
    """An ApiVersions answer claiming every version trio-brod's generated code knows."""
    ranges = {key: (cls.MIN_VERSION, cls.MAX_VERSION) for key, cls in REQUESTS.items()}
    ranges.update(overrides or {})
    return ApiVersionsResponse(
        error_code=0,
        api_keys=[
            ApiVersionsResponse.ApiVersion(api_key=key, min_version=low, max_version=high)
            for key, (low, high) in sorted(ranges.items())
        ],
    )


# A handler gets the stream and the request, and writes whatever it likes (or nothing).
Handler = Callable[[trio.SocketStream, Request], Awaitable[None]]


async def answer(stream: trio.SocketStream, request: Request, body: Any) -> None:
    """Write a well-formed response to ``request``."""
    await stream.send_all(
        response_frame(request.api_key, request.version, request.correlation_id, body)
    )


class FakeBroker:
    """A listener on loopback; ``handlers[api_key]`` decides each answer.

    ApiVersions is answered by default (claiming every known version), so connections
    complete their handshake unless a test overrides key 18.
    """

    def __init__(self) -> None:
        self.handlers: dict[int, Handler] = {}
        self.received: list[Request] = []
        self.connections = 0
        self.port = 0
        self._streams: list[trio.SocketStream] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[FakeBroker]) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        await trio.serve_listeners(
            self._handle, listeners, handler_nursery=None, task_status=_Ignore(task_status, self)
        )

    async def hang_up_all(self) -> None:
        for stream in self._streams:
            await trio.aclose_forcefully(stream)
        self._streams.clear()

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        number = self.connections
        self._streams.append(stream)
        decoder = FrameDecoder(max_frame_size=1 << 30)
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                decoder.feed(data)
                while (frame := decoder.next_frame()) is not None:
                    request = self._parse(frame)
                    request.connection = number
                    self.received.append(request)
                    handler = self.handlers.get(request.api_key)
                    if handler is None and request.api_key == 18:
                        await answer(stream, request, api_versions_body())
                    elif handler is not None:
                        await handler(stream, request)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    @staticmethod
    def _parse(frame: bytes) -> Request:
        api_key, version, correlation_id = _PEEK.unpack_from(frame, 0)
        cls = REQUESTS[api_key]
        flexible = cls.FLEXIBLE_VERSION is not None and version >= cls.FLEXIBLE_VERSION
        (client_id_length,) = struct.unpack_from(">h", frame, 8)
        offset = 10 + max(client_id_length, 0)
        if flexible:
            offset += 1  # empty tagged fields in header v2 (trio-brod sends none)
        body = cls.decode(frame[offset:], version)
        return Request(api_key, version, correlation_id, body)


class _Ignore:
    """Adapts serve_listeners' task_status (it reports the listeners) to report the broker."""

    def __init__(self, task_status: trio.TaskStatus[FakeBroker], broker: FakeBroker) -> None:
        self._task_status = task_status
        self._broker = broker

    def started(self, value: object = None) -> None:
        self._task_status.started(self._broker)
