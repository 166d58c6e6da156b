"""One fake broker's listener and connections: the only part of the fake Kafka doing I/O.

Each connection is served as Kafka serves it: one request at a time, in order (a long-poll
Fetch holds the connection's later requests, as a real broker's muted channel does). A
malformed frame closes the connection, with a log line; so does a request this fake cannot
even answer with an error (an API key or version trio-brod's codec does not know).
Everything else gets an answer: the handler's, an injected fault's, or UNSUPPORTED_VERSION.

A connection over TCP is served by a task that reads its requests. A connection made with
:meth:`BrokerServer.connect_in_process` has no task of its own: each request is answered
from the client's write that completes its frame (:class:`InProcessConnection`), and its
answer, written to the client's stream, reaches the client within that same call. Only a
request that waits (a long poll, a JoinGroup until the rebalance completes) or meets a
fault control is finished by a task, and the requests after it wait their turn, as on TCP.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Coroutine
from typing import Any

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
from trio_brod.testing.fake._runtime import (
    Api,
    CloseConnection,
    FakeCluster,
    HandlerRun,
    RequestContext,
    Wait,
    finish_handler,
    run_handler,
    start_handler,
)
from trio_brod.testing.fake._wire import (
    RequestFrame,
    error_response,
    parse_request,
    response_frame,
)

__all__ = ["BrokerServer", "InProcessConnection"]

logger = logging.getLogger("trio_brod.testing.fake")

_API_VERSIONS = 18
_MAX_FRAME = 100 * 1024 * 1024


class _HangUp(Exception):
    """Close this connection without answering."""


#: The rest of answering a request, for a task: the response frame, or None for none.
Later = Coroutine[Any, Any, bytes | None]


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
        #: Connections accepted since the fake started (over TCP or in process), across
        #: restarts of this broker.
        self.accepted = 0

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
        self.accepted += 1
        self._streams.add(ours)
        ours.deliver_to(InProcessConnection(self, ours, self._nursery).received)
        return theirs

    def forget(self, stream: trio.abc.Stream) -> None:
        """A connection closed: the broker has no more to close on stopping."""
        self._streams.discard(stream)

    async def _serve(self, stream: trio.abc.Stream) -> None:
        self.accepted += 1
        number = self.accepted
        self._streams.add(stream)
        decoder = FrameDecoder(max_frame_size=_MAX_FRAME)
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                decoder.feed(data)
                while (frame := decoder.next_frame()) is not None:
                    answer = await self.answer(frame, number)
                    if answer is not None:
                        await stream.send_all(answer)
        except Exception as exc:
            self.log_closing(exc)
        finally:
            self._streams.discard(stream)
            await trio.aclose_forcefully(stream)

    def log_closing(self, exc: Exception) -> None:
        """Say why a connection is closing, if that needs saying (``exc`` ended it)."""
        if isinstance(exc, ProtocolError):
            logger.warning("fake broker %d: closing a connection: %s", self.node_id, exc)
        elif not isinstance(
            exc, (_HangUp, CloseConnection, trio.BrokenResourceError, trio.ClosedResourceError)
        ):
            # A bug of the fake's own: the connection closes (as a broker's would on an
            # internal error), the fake keeps serving, and the log says what happened.
            logger.error(
                "fake broker %d: closing a connection after an error",
                self.node_id,
                exc_info=exc,
            )
        # Else asked to hang up, or the client did.

    async def answer(self, frame: bytes, connection: int = 0) -> bytes | None:
        """The response frame to one request frame (None: no response), waiting for it if
        it waits (see :meth:`start`, whose errors it raises)."""
        started = self.start(frame, connection)
        if started is None or isinstance(started, bytes):
            return started
        return await started

    def start(self, frame: bytes, connection: int = 0) -> bytes | Later | None:
        """Answer one request frame: its response frame (None: no response), or, if its
        handler waits or a fault control is registered, the rest to await in a task.
        *connection* numbers the connection it came on (controls see it).

        It runs in whatever task has the frame: a connection's reader, or the client's own
        write (:class:`InProcessConnection`).

        Raises:
            ProtocolError: The frame is malformed, or asks for an API or version that
                trio-brod's codec does not know (the connection must close).
            CloseConnection: The handler closes the connection instead of answering.
        """
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
        if api is None or not supported:
            answer = error_response(api_key, body, UnsupportedVersionError.code)
            return response_frame(api_key, version, correlation_id, answer)
        if cluster.faults:
            return self._intercepted(request, api, connection)
        # No control registered: every request passes, and nothing needs to see it.
        handling = api.handler(RequestContext(cluster, self.node_id, version, client_id), body)
        answered, waiting = start_handler(handling)
        if waiting is not None:
            return self._finish(handling, waiting, request)
        if answered is None:
            return None
        return response_frame(api_key, version, correlation_id, answered)

    async def _finish(
        self, handling: HandlerRun, waiting: Wait, request: RequestFrame
    ) -> bytes | None:
        answer = await finish_handler(handling, waiting)
        if answer is None:
            return None
        return response_frame(request.api_key, request.version, request.correlation_id, answer)

    async def _intercepted(self, request: RequestFrame, api: Api, connection: int) -> bytes | None:
        """The response frame to a request while fault controls are registered."""
        answer = await self._decided(request, api, connection)
        if answer is None:
            return None
        return response_frame(request.api_key, request.version, request.correlation_id, answer)

    async def _decided(self, request: RequestFrame, api: Api, connection: int) -> Message | None:
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
            connection=connection,
        )
        decision = cluster.faults.decide(intercepted)
        action = decision.action
        ctx = RequestContext(cluster, self.node_id, request.version, request.client_id)
        if isinstance(action, Hold):
            action = await action.wait()
        if isinstance(action, Drop):
            if action.after_serving:
                await run_handler(api.handler(ctx, body))
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
        return await run_handler(api.handler(ctx, body))

    def _topic_of(self, entry: object) -> str | None:
        name = entry_name(entry)
        if name is not None:
            return name
        topic_id = getattr(entry, "topic_id", None)
        if topic_id is not None:
            topic = self.cluster.model.topic_by_id(topic_id)
            return topic.name if topic is not None else None
        return None


class InProcessConnection:
    """A connection from :meth:`BrokerServer.connect_in_process`, served with no task.

    Its stream hands each write of the client to :meth:`received`, inside the client's call
    (:meth:`PipeStream.deliver_to`): complete requests are answered there and then, and the
    answers are written back at once. A request whose handler waits, or that a fault control
    may hold, is finished by a task in the broker's nursery; the requests behind it stay in
    the decoder until that task has answered it, then it answers them, in order.
    """

    def __init__(self, server: BrokerServer, stream: PipeStream, nursery: trio.Nursery) -> None:
        self._server = server
        self._stream = stream
        self._nursery = nursery
        self._decoder = FrameDecoder(max_frame_size=_MAX_FRAME)
        self._busy = False  # answering: in received, or a task finishes a request
        self._closed = False
        self._number = server.accepted  # this connection's number at its broker

    def received(self, data: bytes) -> None:
        """The client wrote ``data`` (``b""``: it closed its end)."""
        if self._closed:
            return
        if not data:
            self._close()
            return
        if self._busy:
            # Answering already: from a task, or from this very call further up the stack
            # (an answer's delivery wrote again). It reads the new frames when it gets there.
            self._decoder.feed(data)
            return
        self._busy = True
        try:
            self._decoder.feed(data)
            # An answer's delivery may close the connection: nothing after that is served.
            while not self._closed and (frame := self._decoder.next_frame()) is not None:
                answer = self._server.start(frame, self._number)
                if answer is not None and not isinstance(answer, bytes):
                    try:
                        self._nursery.start_soon(self._finish, answer)
                    except RuntimeError:  # the broker is stopping
                        answer.close()
                        raise
                    return  # still busy: the task goes on with the frames behind it
                if answer is not None:
                    self._stream.send_nowait(answer)
        except Exception as exc:
            self._fail(exc)
        self._busy = False

    async def _finish(self, answering: Later) -> None:
        try:
            answer = await answering
            while True:
                if answer is not None:
                    self._stream.send_nowait(answer)
                if self._closed or (frame := self._decoder.next_frame()) is None:
                    break
                answer = await self._server.answer(frame, self._number)
        except Exception as exc:
            self._fail(exc)
        self._busy = False

    def _fail(self, exc: Exception) -> None:
        self._server.log_closing(exc)
        self._close()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._server.forget(self._stream)
            self._stream.close()
