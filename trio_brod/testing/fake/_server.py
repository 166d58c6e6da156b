"""One fake broker's listener and connections: the only part of the fake Kafka doing I/O.

Each connection is served as Kafka serves it: one request at a time, in order (a long-poll
Fetch holds the connection's later requests, as a real broker's muted channel does). A
malformed frame closes the connection, with a log line; so does a request this fake cannot
even answer with an error (an API key or version trio-brod's codec does not know).
Everything else gets an answer: the handler's, an injected fault's, or UNSUPPORTED_VERSION.
"""

from __future__ import annotations

import errno
import logging

import trio

from trio_brod.protocol import REQUESTS, FrameDecoder, Message
from trio_brod.protocol.errors import DecodeError, ProtocolError, UnsupportedVersionError
from trio_brod.testing.fake._admin_apis import api_versions_body
from trio_brod.testing.fake._faults import (
    Delay,
    Drop,
    Fail,
    Hang,
    Hold,
    Intercepted,
    entry_name,
    touched,
)
from trio_brod.testing.fake._pipe import PipeStream, stream_pair
from trio_brod.testing.fake._runtime import Api, CloseConnection, FakeCluster, RequestContext
from trio_brod.testing.fake._wire import (
    RequestFrame,
    error_response,
    parse_request,
    response_frame,
)

__all__ = ["BrokerServer"]

logger = logging.getLogger("trio_brod.testing.fake")

_API_VERSIONS = 18
_MAX_FRAME = 100 * 1024 * 1024


class _HangUp(Exception):
    """Close this connection without answering."""


class BrokerServer:
    """A fake broker: a loopback listener, serving requests against the shared cluster.

    :meth:`run` serves until cancelled; it keeps its port, so a broker stopped and started
    again is at the same address, as a restarted Kafka broker is.
    """

    def __init__(self, cluster: FakeCluster, node_id: int, host: str = "127.0.0.1") -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.host = host
        self.port = 0
        self._streams: set[trio.abc.Stream] = set()
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled; closes every connection on the way out."""
        (listener,) = await trio.open_tcp_listeners(self.port, host=self.host)
        self.port = listener.socket.getsockname()[1]
        self.cluster.addresses[self.node_id] = (self.host, self.port)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.serve_listeners, self._serve, [listener])
                self._nursery = nursery
                task_status.started()
        finally:
            self._nursery = None
            for stream in list(self._streams):
                await trio.aclose_forcefully(stream)
            self._streams.clear()

    def connect_in_process(self) -> trio.abc.Stream:
        """A new connection to this broker through a :func:`stream_pair`, not a socket.

        Raises:
            ConnectionRefusedError: The broker is not running (as a TCP connect would).
        """
        if self._nursery is None:
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, f"fake broker {self.node_id} is not running"
            )
        ours, theirs = stream_pair()
        self._nursery.start_soon(self._serve, ours)
        return theirs

    async def _serve(self, stream: trio.abc.Stream) -> None:
        self._streams.add(stream)
        decoder = FrameDecoder(max_frame_size=_MAX_FRAME)
        # No checkpoint of its own: the next receive_some is one. Saves a task step per
        # request (see docs/testing.rst, fast properties).
        send_nowait = stream.send_nowait if isinstance(stream, PipeStream) else None
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                decoder.feed(data)
                while (frame := decoder.next_frame()) is not None:
                    answer = await self._answer(frame)
                    if answer is None:
                        continue
                    if send_nowait is not None:
                        send_nowait(answer)
                    else:
                        await stream.send_all(answer)
        except ProtocolError as exc:
            logger.warning("fake broker %d: closing a connection: %s", self.node_id, exc)
        except (_HangUp, CloseConnection, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # asked to hang up, or the client did
        except Exception:
            # A bug of the fake's own: the connection closes (as a broker's would on an
            # internal error), the fake keeps serving, and the log says what happened.
            logger.exception("fake broker %d: closing a connection after an error", self.node_id)
        finally:
            self._streams.discard(stream)
            await trio.aclose_forcefully(stream)

    async def _answer(self, frame: bytes) -> bytes | None:
        """The response frame to one request frame (None: no response)."""
        try:
            request = parse_request(frame)
        except DecodeError as exc:
            raise DecodeError(f"malformed request: {exc}") from None
        api_key, version, correlation_id, client_id, body = request
        cluster = self.cluster
        api = cluster.apis.get(api_key)
        supported = api is not None and api.min_version <= version <= api.max_version
        if api_key == _API_VERSIONS and not supported:
            # The answer to an unsupported ApiVersions version is in v0.
            versions = api_versions_body(cluster, UnsupportedVersionError.code)
            return response_frame(api_key, 0, correlation_id, versions)
        if body is None:
            cls = REQUESTS.get(api_key)
            raise DecodeError(
                f"request for API key {api_key} version {version}, which "
                f"{'has no such version' if cls else 'is unknown'} in trio-brod's codec"
            )
        answer: Message | None
        if api is None or not supported:
            answer = error_response(api_key, body, UnsupportedVersionError.code)
        elif not cluster.faults:
            # No control registered: every request passes, and nothing needs to see it.
            answer = await api.handler(
                RequestContext(cluster, self.node_id, version, client_id), body
            )
        else:
            answer = await self._intercepted(request, api)
        if answer is None:
            return None
        return response_frame(api_key, version, correlation_id, answer)

    async def _intercepted(self, request: RequestFrame, api: Api) -> Message | None:
        """The answer to a request while fault controls are registered: the first control
        that applies decides (pass, fail, delay, hold, hang or drop)."""
        cluster = self.cluster
        body = request.body
        assert body is not None
        intercepted = Intercepted(
            api_key=request.api_key,
            version=request.version,
            broker=self.node_id,
            client_id=request.client_id,
            body=body,
            targets=touched(body, self._topic_of),
        )
        decision = cluster.faults.decide(intercepted)
        action = decision.action
        ctx = RequestContext(cluster, self.node_id, request.version, request.client_id)
        if isinstance(action, Hold):
            action = await action.wait()
        if isinstance(action, Drop):
            if action.after_serving:
                await api.handler(ctx, body)
            raise _HangUp
        if isinstance(action, Hang):
            await trio.sleep_forever()
        if isinstance(action, Delay):
            await trio.sleep(action.seconds)
        if isinstance(action, Fail):
            if decision.partial is None or not api.partial_failures:
                return error_response(request.api_key, body, action.error.code)
            ctx.partial_failure = decision.partial
            ctx.partial_error = action.error.code
        return await api.handler(ctx, body)

    def _topic_of(self, entry: object) -> str | None:
        name = entry_name(entry)
        if name is not None:
            return name
        topic_id = getattr(entry, "topic_id", None)
        if topic_id is not None:
            topic = self.cluster.model.topic_by_id(topic_id)
            return topic.name if topic is not None else None
        return None
