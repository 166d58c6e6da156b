"""One connection to one broker: a writer task, a reader task, requests pipelined between them.

The life of a :class:`Connection`::

    connect (TCP, TLS)  ->  handshake (ApiVersions, SASL)  ->  pipelining  ->  closed

The handshake is a short sequential conversation on the bare stream
(:mod:`trio_brod._net.handshake`). Once it is done the task
that owns the connection (started in the client nursery with ``nursery.start``) reports itself
started and becomes the parent of three children:

* the **writer** takes encoded request frames from the connection's queue and writes them,
  several at a time when callers are quick, in one ``send_all``;
* the **reader** cuts the byte stream into frames, matches each to the request waiting for it
  by correlation id, decodes it, and wakes that caller;
* the **timer** sleeps until the earliest deadline of a :meth:`Connection.request`, and
  closes the connection if that request is still unanswered (:mod:`~trio_brod._net.deadlines`).

A caller of :meth:`Connection.request` never touches the socket: it encodes its frame, queues
it, and waits for its own response. (The exceptions are for in-process streams, such as the
fake Kafka's pipe. One that can write without blocking gets a request's frame at once from its
caller while the writer is idle with nothing queued, which saves waking the writer; see
:class:`SendsNowait`. One that can hand what arrives to a callback has no reader task: the
reader's work is done in the broker's write; see :class:`DeliversNowait`.)

One-partition Produce and Fetch requests are queued unencoded instead, as *parts*: when the
writer finds several of them waiting that agree on everything but their partition (the
partition workers of a topic, woken by one response, each sending their next request), it
writes them as one request, and the reader splits its response into one response per part
(:mod:`trio_brod._net.merge`). Nothing waits for that to happen: a request sent to an idle
connection is written alone, at once; merging only collects what queued up meanwhile. To
every caller a part behaves as a request of its own, with these differences:

* a part's caller that gives up before it is written (cancelled, :meth:`Connection.abandon`)
  takes it out: it is never written;
* responses arrive in order per partition, but a part may be written ahead of unrelated
  requests queued before it (never ahead of an earlier request for its own partition);
* a timeout is still the caller's: when the earliest deadline among a merged request's
  parts passes, its caller aborts the connection, which fails every request on it, merged
  or not (responses come in order, so nothing after a lost one could be trusted).

Fetch requests, merged or not, go out **one at a time**, as the Java consumer keeps at most
one fetch in flight per broker connection. A fetch may wait at the broker for data (a *long
poll*, up to its ``max_wait_ms``), and the broker answers a connection's requests in order, so
every request written after it waits too. While one fetch is in flight, the fetches sent
meanwhile are held back by the connection, not written; once it is answered they go out
together, merged where they can be. Everything else (metadata, offsets, produce) is written
at once, and so waits behind at most one long poll. A held fetch whose caller gives up
(cancelled, :meth:`Connection.abandon`) is never written: a consumer that subscribes and
leaves again and again leaves at most one long poll behind on the connection, not one per
subscription.

When anything goes wrong with the connection itself
(the broker went away, a frame is malformed, a response is overdue), every request still in
flight fails with a :class:`~trio_brod.BrokerConnectionError` that says why, the connection
closes, and the owner task returns normally: a broker going down is an everyday event that
the caller handles, never a crash of the client. Only a bug in trio-brod escapes the task.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

import trio

from trio_brod._config import ClientConfig
from trio_brod._exceptions import (
    BrokerConnectionError,
    ConnectionClosed,
    ConnectionFailed,
    ConnectionLost,
    RequestTimedOut,
    UnsupportedVersion,
)
from trio_brod._log import connection_log
from trio_brod._net.deadlines import RequestDeadlines
from trio_brod._net.handshake import (
    RECEIVE_SIZE,
    BareExchange,
    DeliversNowait,
    MechanismFactory,
    SendsNowait,
    authenticate,
    negotiate_versions,
    new_mechanism,
    open_stream,
    reauthentication_time,
)
from trio_brod._net.merge import answer_parts, lone_part, merge, part_for, plan
from trio_brod._net.pending import MergedRequest, Part, PendingResponse, Queued, Write
from trio_brod._net.writes import again, fail_queued, write_frames
from trio_brod._util import describe
from trio_brod.observe import _hooks as observe
from trio_brod.protocol import (
    DecodeError,
    FetchRequest,
    FrameDecoder,
    ProtocolError,
    decode_response,
    encode_request,
    peek_correlation_id,
)

__all__ = ["Connection"]

#: How many bytes of queued requests the writer takes in one go, to merge and write them.
_DRAIN_LIMIT = 16 * 1024 * 1024
#: Correlation ids are int32 on the wire; they wrap around well before that.
_CORRELATION_WRAP = 1 << 30


class Connection:
    """A connection to one broker, shared by every task that talks to that broker.

    Do not construct it directly: :meth:`trio_brod.Client.get_connection` and friends return
    connections that live in the client's nursery.

    Attributes:
        host: The broker's host name as given (bootstrap) or advertised (metadata).
        port: The broker's port.
        address: ``"host:port"``.
        api_versions: The broker's supported version range for each API key, as it
            answered ApiVersions.
        finalized_features: The cluster's finalized feature levels as the broker answered
            ApiVersions (``{"transaction.version": 2, ...}``; empty if it sent none).
        sasl_session_lifetime: Seconds the SASL session lasts (the broker's
            ``connections.max.reauth.ms``), counted from authentication; 0 without SASL or
            when the broker sets no limit.
        merging: Whether one-partition Produce and Fetch requests waiting together are
            merged (the default). Set it to False to write every request as it was sent.
        requests_written: How many requests were written (a merged one counts once).
        parts_merged: How many one-partition requests went out merged with others.
    """

    def __init__(
        self, host: str, port: int, config: ClientConfig, hooks: observe.HasHooks = observe.state
    ) -> None:
        self.host = host
        self.port = port
        self.address = f"{host}:{port}"
        self.api_versions: dict[int, tuple[int, int]] = {}
        self.finalized_features: dict[str, int] = {}
        self.sasl_session_lifetime = 0.0
        self._sasl_mechanism: MechanismFactory | None = None
        # When the writer re-authenticates (trio time); never unless the broker limits the
        # SASL session's lifetime.
        self._reauthenticate_at = math.inf
        self._config = config
        # Whose event hooks to tell (its client's, from the pool; the process's by default).
        self._hooks = hooks
        self._client_id = config.client_id
        # What the writer has to write, and the event it waits on while there is nothing.
        # (A deque rather than a memory channel: a channel hands an item straight to a
        # waiting receiver, where closing the connection could not find it.)
        self._queue: deque[Queued] = deque()
        self._writer_wakeup: trio.Event | None = None
        # The stream's send_nowait, while the connection runs on a SendsNowait stream.
        self._send_nowait: Callable[[bytes], None] | None = None
        self._deadlines = RequestDeadlines()
        self.merging = True
        self.requests_written = 0
        self.parts_merged = 0
        self._pending: dict[int, PendingResponse | MergedRequest] = {}
        # The Fetch requests written and not answered yet, by correlation id: one (more only
        # when a merged fetch fell apart because one of its parts could not be encoded).
        # While there is one, the fetches taken off the queue wait in _held_fetches.
        self._fetches_in_flight: set[int] = set()
        self._held_fetches: list[Part] = []
        self._next_correlation_id = 0
        self._decoder = FrameDecoder(max_frame_size=config.max_frame_size)
        self._cancel_scope = trio.CancelScope()
        # Why the connection closed, once it has; every later request fails with it.
        self._close_reason: BrokerConnectionError | None = None
        self.created_at = trio.current_time()
        #: When the connection closed (on Trio's clock), or None while open.
        self.closed_at: float | None = None

    def __repr__(self) -> str:
        state = "open" if self._close_reason is None else f"closed ({self._close_reason.reason})"
        return f"<Connection {self.address} {state}>"

    # ---------------------------------------------------------------- public API

    @property
    def closed(self) -> bool:
        """True once the connection has closed, for whatever reason."""
        return self._close_reason is not None

    @property
    def idle(self) -> bool:
        """True while open with no request queued or awaiting a response (abandoned ones
        included: their answers are still to come), so another owner may take it over."""
        return not (self.closed or self._pending or self._queue or self._held_fetches)

    @property
    def close_reason(self) -> BrokerConnectionError | None:
        """Why the connection closed, or None while it is open."""
        return self._close_reason

    def version_for(self, api_key: int, max_version: int, min_version: int = 0) -> int:
        """The highest version of an API that both sides support.

        Args:
            api_key: The API's key (``ProduceRequest.API_KEY``...).
            max_version: The highest version the caller can speak.
            min_version: The lowest version the caller can speak.

        Raises:
            UnsupportedVersion: The ranges do not overlap.
        """
        broker = self.api_versions.get(api_key)
        if broker is None:
            raise UnsupportedVersion(self.address, f"the broker does not support API {api_key}")
        low, high = max(broker[0], min_version), min(broker[1], max_version)
        if low > high:
            raise UnsupportedVersion(
                self.address,
                f"API {api_key}: the broker speaks versions {broker[0]}-{broker[1]}, "
                f"trio-brod {min_version}-{max_version}",
            )
        return high

    def send(
        self,
        message: Any,
        version: int | None = None,
        *,
        expect_response: bool = True,
        on_done: Callable[[], object] | None = None,
    ) -> PendingResponse:
        """Queue a request for writing and return at once, without waiting for the response.

        Args:
            message: A request object from :mod:`trio_brod.protocol`.
            version: The version to send; by default the highest both sides support.
            expect_response: False for requests the broker does not answer (a Produce with
                ``acks=0``): the handle is done, with response None, once the frame is written.
            on_done: Called (synchronously, from the connection's reader or writer task, or
                from the broker's write to a ``DeliversNowait`` stream) when the handle
                is done, so a worker can wake itself up.

        The caller owns the timeout: if it stops waiting, it calls :meth:`abandon` (or
        :meth:`abort`, which also closes the connection).

        A one-partition Produce or Fetch request may be merged with others (see the module
        docstring); it is encoded when written, so an error encoding it is the handle's. So
        is an error encoding any Fetch request: fetches wait to be written while another
        is in flight, and are encoded then.

        Raises:
            BrokerConnectionError: The connection is closed.
            trio_brod.protocol.EncodeError: The message cannot be written in that version.
        """
        if version is None:
            version = self.best_version(type(message))
        self._raise_if_closed()
        if connection_log.isEnabledFor(logging.DEBUG):
            connection_log.debug("%s: %s v%d", self.address, type(message).__name__, version)
        pending = PendingResponse(message.RESPONSE, version, on_done)
        part = part_for(message, version, expect_response, pending) if self.merging else None
        if part is None and type(message) is FetchRequest:
            part = lone_part(message, version, expect_response, pending)
        if part is not None:
            self._enqueue(part)
            return pending
        correlation_id = self._next_correlation_id
        frame = encode_request(message, version, correlation_id, self._client_id)
        self._next_correlation_id = (correlation_id + 1) % _CORRELATION_WRAP
        if self._hooks.hooks:
            observe.request_sent(self._hooks, self.address, message, version, len(frame))
        if expect_response:
            self._pending[correlation_id] = pending
            self._enqueue((frame, None))
        else:
            self._enqueue((frame, pending))
        return pending

    def _enqueue(self, item: Queued) -> None:
        if (
            self._send_nowait is not None
            and self._writer_wakeup is not None  # the writer waits: it is writing nothing
            and not self._queue
            and self._reauthenticate_at == math.inf
        ):
            left = self._write_now(item)
            if left is None:
                return
            item = left
        self._queue.append(item)
        self._wake_writer()

    def _write_now(self, item: Queued) -> Queued | None:
        """Write ``item`` from the caller, on a :class:`SendsNowait` stream with the writer
        idle: None once written, else what to queue for the writer after all.

        A fetch while none is in flight would go out alone from the writer too, so it is
        encoded here as it would be there. Produce parts go to the writer, which merges
        those sent together, and so do requests that get no response.
        """
        assert self._send_nowait is not None
        if isinstance(item, Part):
            if not item.is_fetch or self._fetches_in_flight:
                return item
            write = self._encode_alone(item)
            if write is None:
                return None  # it cannot be encoded: its caller has the error
            frame, counted = write[0], True
        elif item[1] is None:
            frame, counted = item[0], False
        else:
            return item
        try:
            self._send_nowait(frame)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            # Nothing was written: the writer meets the error, and closes the connection.
            self.requests_written -= counted
            return frame, None
        self.requests_written += not counted
        return None

    def _wake_writer(self) -> None:
        wakeup = self._writer_wakeup
        if wakeup is not None:
            self._writer_wakeup = None
            wakeup.set()

    def best_version(self, api: Any, min_version: int | None = None) -> int:
        """The version to send of a request class: the highest both sides support.

        Versions the schema marks unstable are never chosen.

        Args:
            api: A request class (``MetadataRequest``...).
            min_version: The lowest version the caller can work with (default: the class's).

        Raises:
            UnsupportedVersion: The broker supports none of them.
        """
        low = api.MIN_VERSION if min_version is None else min_version
        return self.version_for(api.API_KEY, api.MAX_STABLE_VERSION, low)

    async def request(
        self,
        message: Any,
        version: int | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (expiry also closes the connection)
        expect_response: bool = True,
    ) -> Any:
        """Send a request and return its decoded response.

        Args:
            message: A request object from :mod:`trio_brod.protocol`.
            version: The version to send; by default the highest both sides support.
            timeout: Seconds to wait for the response (default: the client's
                ``request_timeout``). On expiry the connection is closed and
                :class:`~trio_brod.RequestTimedOut` raised.
            expect_response: False for requests the broker does not answer (a Produce with
                ``acks=0``): the call returns None once the frame has been written.

        Raises:
            BrokerConnectionError: The connection is or became unusable.
            trio_brod.protocol.EncodeError: The message cannot be written in that version.
            trio_brod.protocol.DecodeError: The response could not be decoded.
        """
        if timeout is None:
            timeout = self._config.request_timeout
        pending = self.send(message, version, expect_response=expect_response)
        started = time.perf_counter()
        # Timed by the connection's one timer task, not a cancel scope each (_net/deadlines);
        # an in-process broker may have answered already, from the write.
        if not pending.done.is_set():
            self._deadlines.add(pending, timeout, trio.current_time())
        try:
            await pending.done.wait()
        finally:
            if not pending.done.is_set():
                pending.abandoned = True
        if self._hooks.hooks:
            observe.request_answered(
                self._hooks,
                self.address,
                message,
                pending.version,
                started,
                pending.error,
                pending.size,
            )
        response = pending.result()
        pending.response = None  # the timer may keep the handle a while, not the answer
        return response

    def _timed_out(self, pending: PendingResponse, timeout: float) -> None:
        """A request of :meth:`request` is overdue: it fails, and the connection closes."""
        pending.error = RequestTimedOut(self.address, f"no response within {timeout}s")
        pending.finish()
        self.abort(f"a request got no response within {timeout}s")

    def abandon(self, pending: PendingResponse) -> None:
        """Stop caring about a response: it is dropped when it arrives.

        A part (a one-partition request, or any fetch) not written yet is not written at
        all; a fetch already written still holds back the next fetch until it is answered.
        """
        pending.abandoned = True

    def abort(self, reason: str) -> None:
        """Close the connection because something about it went wrong (a response overdue).

        Requests in flight fail with :class:`~trio_brod.ConnectionLost` naming ``reason``.
        """
        self._shut(ConnectionLost(self.address, reason))

    def close(self) -> None:
        """Close the connection; requests in flight fail with ConnectionClosed.

        It returns at once; the owner task finishes shortly after.
        """
        self._shut(ConnectionClosed(self.address, "closed by the client"))

    # ---------------------------------------------------------------- the owner task

    async def run(
        self,
        *,
        sasl_mechanism: MechanismFactory | None = None,
        task_status: trio.TaskStatus[Connection] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Connect, handshake, then drive the connection until it closes.

        Meant for ``await nursery.start(connection.run)``: ``start`` returns once the
        connection is ready for requests, or raises :class:`~trio_brod.ConnectionFailed`
        (connect refused or timed out, handshake failed). After that this task never raises
        for a connection problem: it fails the requests in flight and returns.
        """
        try:
            with trio.fail_after(self._config.connect_timeout):
                stream = await open_stream(
                    self.host,
                    self.port,
                    self._config.ssl_context,
                    self.address,
                    self._config.connect,
                )
                try:
                    await self._handshake(stream, sasl_mechanism)
                except BaseException:
                    with trio.CancelScope(shield=True):
                        await trio.aclose_forcefully(stream)
                    raise
        except trio.TooSlowError as exc:
            reason = f"no connection within connect_timeout={self._config.connect_timeout}s"
            self._close_reason = ConnectionFailed(self.address, reason)
            raise self._close_reason from exc
        except BrokerConnectionError as exc:
            self._close_reason = exc
            raise
        except (OSError, trio.BrokenResourceError, ProtocolError) as exc:
            self._close_reason = ConnectionFailed(self.address, describe(exc))
            raise self._close_reason from exc
        task_status.started(self)
        if isinstance(stream, SendsNowait):
            self._send_nowait = stream.send_nowait
        try:
            with self._cancel_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, stream)
                    nursery.start_soon(self._deadlines.watch, self._timed_out)
                    if isinstance(stream, DeliversNowait):
                        stream.deliver_to(self._delivered)
                    else:
                        nursery.start_soon(self._reader, stream)
        finally:
            self._send_nowait = None
            if self._close_reason is None:
                # Cancelled from outside: the client is shutting down.
                self._close_reason = ConnectionClosed(self.address, "the client closed")
                self.closed_at = trio.current_time()
            self._fail_pending()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)

    # ---------------------------------------------------------------- handshake

    async def _handshake(
        self, stream: trio.abc.Stream, sasl_mechanism: MechanismFactory | None
    ) -> None:
        """ApiVersions, then SASL if configured, one request at a time on the bare stream."""
        bare = BareExchange(
            stream,
            self._decoder,
            self._client_id,
            self.address,
            tls=self._config.ssl_context is not None,
        )
        self.api_versions, self.finalized_features = await negotiate_versions(bare, self.address)
        if sasl_mechanism is not None:
            # Kept for re-authentication, when the broker limits the session's lifetime.
            self._sasl_mechanism = sasl_mechanism
            mechanism = await new_mechanism(sasl_mechanism, self.address)
            lifetime = await authenticate(bare.request, mechanism, self.address, self.best_version)
            self._authenticated(lifetime)
        self._next_correlation_id = bare.next_correlation_id

    def _authenticated(self, lifetime: float) -> None:
        """Note a SASL session that lasts ``lifetime`` seconds (0: no limit) from now."""
        self.sasl_session_lifetime = lifetime
        self._reauthenticate_at = reauthentication_time(lifetime)

    async def _reauthenticate(self, stream: trio.abc.Stream) -> None:
        """Authenticate again on the open connection, before the broker's session expires.

        A broker with ``connections.max.reauth.ms`` set closes a connection that sends
        anything but a SaslHandshake after its session expired (KIP-368). The writer calls
        this before writing more requests once re-authentication is due. The broker reads
        one request at a time, so the requests already written are answered before it reads
        the SaslHandshake; the requests queued meanwhile wait, since the broker would take
        anything between the SaslHandshake and the last SaslAuthenticate for a SASL token.
        """
        assert self._sasl_mechanism is not None
        timeout = self._config.request_timeout

        async def exchange(message: Any, version: int) -> Any:
            correlation_id = self._next_correlation_id
            self._next_correlation_id = (correlation_id + 1) % _CORRELATION_WRAP
            pending = PendingResponse(message.RESPONSE, version, None)
            self._pending[correlation_id] = pending
            await stream.send_all(encode_request(message, version, correlation_id, self._client_id))
            with trio.move_on_after(timeout):
                await pending.done.wait()
            if not pending.done.is_set():
                pending.abandoned = True
                raise ConnectionLost(
                    self.address, f"SASL re-authentication got no response within {timeout}s"
                )
            return pending.result()

        mechanism = await new_mechanism(self._sasl_mechanism, self.address)
        try:
            lifetime = await authenticate(exchange, mechanism, self.address, self.best_version)
        except DecodeError as exc:
            raise ConnectionLost(self.address, f"SASL re-authentication: {exc}") from exc
        self._authenticated(lifetime)
        connection_log.info("%s: re-authenticated (SASL)", self.address)

    # ---------------------------------------------------------------- the task pair

    async def _writer(self, stream: trio.abc.Stream) -> None:
        queue = self._queue
        try:
            while True:
                if not queue:
                    wakeup = self._writer_wakeup = trio.Event()
                    await wakeup.wait()
                    continue
                # Only connections whose broker limits the SASL session ever look at the clock.
                if self._reauthenticate_at < math.inf and (
                    trio.current_time() >= self._reauthenticate_at
                ):
                    try:
                        await self._reauthenticate(stream)
                    except BrokerConnectionError as exc:
                        self._shut(exc)  # fails what is queued too
                        return
                await self._write_queued(stream)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._shut(ConnectionLost(self.address, f"write failed: {describe(exc)}"), exc)

    async def _write_queued(self, stream: trio.abc.Stream) -> None:
        """Write what is queued (up to ``_DRAIN_LIMIT`` bytes of it) in as few writes as may be.

        A method of its own so that what it wrote is let go when it returns: the writer then
        sleeps until more is queued, and an idle connection must not keep its last requests
        (and their frames) alive.
        """
        queue = self._queue
        # Whatever is queued goes out together: merged where it can be, and small frames
        # joined into one write. Everything taken off the queue is, before the next
        # checkpoint, in _pending, in _held_fetches or in ``writes``, where closing the
        # connection finds it.
        items: list[Queued] = []
        has_parts = False
        size = 0
        while queue and size < _DRAIN_LIMIT:
            item = queue.popleft()
            items.append(item)
            if isinstance(item, Part):
                has_parts = True
                size += item.size
            else:
                size += len(item[0])
        writes: list[Write]
        if has_parts:
            writes = self._encode_parts(items)
        else:
            writes = items  # type: ignore[assignment]  # no parts: all frames
            self.requests_written += len(writes)
        if writes:
            await write_frames(stream, writes, self.address)

    def _encode_parts(self, items: list[Queued]) -> list[Write]:
        """Turn queued items into frames to write: parts merged and encoded, in order.

        Only one fetch goes out while none is in flight; the others are held back until
        it is answered (see the module docstring).
        """
        writes: list[Write] = []
        for entry in plan(items):
            if isinstance(entry, tuple):
                writes.append(entry)
                self.requests_written += 1
                continue
            if self._fetches_in_flight:
                if isinstance(entry, Part):
                    if entry.is_fetch:
                        self._held_fetches.append(entry)
                        continue
                elif entry[0].is_fetch:
                    self._held_fetches.extend(entry)
                    continue
            if isinstance(entry, Part):
                write = self._encode_alone(entry)
                if write is not None:
                    writes.append(write)
            else:
                writes.extend(self._encode_merged(entry))
        return writes

    def _take_correlation_id(self) -> int:
        correlation_id = self._next_correlation_id
        self._next_correlation_id = (correlation_id + 1) % _CORRELATION_WRAP
        return correlation_id

    def _encode_alone(self, part: Part) -> Write | None:
        """A part that goes out as it was sent; None if it cannot be encoded."""
        pending = part.pending
        correlation_id = self._take_correlation_id()
        try:
            frame = encode_request(part.message, pending.version, correlation_id, self._client_id)
        except Exception as exc:
            # The caller's request is at fault, not the connection: it is the caller's error.
            pending.fail(exc)
            return None
        self.requests_written += 1
        if self._hooks.hooks:
            version = pending.version
            observe.request_sent(self._hooks, self.address, part.message, version, len(frame))
        if part.expect_response:
            self._pending[correlation_id] = pending
            if part.is_fetch:
                self._fetches_in_flight.add(correlation_id)
            return frame, None
        return frame, pending

    def _encode_merged(self, parts: list[Part]) -> list[Write]:
        """Parts that go out as one request (or each alone, if one of them cannot)."""
        first = parts[0].pending
        correlation_id = self._take_correlation_id()
        try:
            message = merge(parts, self._config.max_frame_size)
            frame = encode_request(message, first.version, correlation_id, self._client_id)
        except Exception:
            # One part cannot be encoded: send them one by one, so that only it fails.
            alone = (self._encode_alone(part) for part in parts)
            return [write for write in alone if write is not None]
        self.requests_written += 1
        self.parts_merged += len(parts)
        if self._hooks.hooks:
            observe.request_sent(self._hooks, self.address, message, first.version, len(frame))
        for part in parts:
            part.pending.parts = len(parts)
        if parts[0].expect_response:
            self._pending[correlation_id] = MergedRequest(parts, first.response_cls, first.version)
            if parts[0].is_fetch:
                self._fetches_in_flight.add(correlation_id)
            return [(frame, None)]
        return [(frame, [part.pending for part in parts])]

    async def _reader(self, stream: trio.abc.Stream) -> None:
        try:
            while self._close_reason is None:
                # What arrives is handed on, never named here: an idle connection must not
                # keep its last chunk or answer alive while the reader waits for more.
                self._delivered(await stream.receive_some(RECEIVE_SIZE))
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._shut(ConnectionLost(self.address, f"read failed: {describe(exc)}"), exc)

    def _delivered(self, data: bytes | bytearray) -> None:
        """Answer the requests whose responses ``data`` completes; ``b""`` is the end of the
        stream. The reader's step, also called by a :class:`DeliversNowait` stream with each
        chunk the broker writes, from the broker's own call."""
        if self._close_reason is not None:
            return
        if not data:
            self._shut(ConnectionLost(self.address, "the broker closed the connection"))
            return
        decoder = self._decoder
        try:
            decoder.feed(data)
            while (frame := decoder.next_frame()) is not None:
                self._answer(frame)
        except ProtocolError as exc:
            self._shut(ConnectionLost(self.address, f"protocol error: {exc}"), exc)

    def _answer(self, frame: bytes) -> None:
        """Give a response frame to the request waiting for it.

        Raises:
            DecodeError: No request waits for the frame's correlation id.
        """
        correlation_id = peek_correlation_id(frame)
        request = self._pending.pop(correlation_id, None)
        if request is None:
            raise DecodeError(f"response with unknown correlation id {correlation_id}")
        if correlation_id in self._fetches_in_flight:
            self._fetch_answered(correlation_id)
        size = len(frame) + 4  # on the wire, with its size prefix (for the hooks)
        if isinstance(request, MergedRequest):
            for part in request.parts:
                part.pending.size = size
            answer_parts(request, frame)
            return
        if request.abandoned:
            return
        request.size = size
        try:
            request.response = decode_response(frame, request.response_cls, request.version)
        except DecodeError as exc:
            # The frame boundary is intact, so only this request failed.
            request.error = exc
        request.finish()

    def _fetch_answered(self, correlation_id: int) -> None:
        """A fetch in flight was answered (or abandoned, its answer arriving all the same):
        the fetches held back go out next, ahead of fetches queued since, abandoned ones
        left out (:func:`~trio_brod._net.merge.plan` drops them)."""
        in_flight = self._fetches_in_flight
        in_flight.discard(correlation_id)
        if not in_flight and self._held_fetches:
            held, self._held_fetches = self._held_fetches, []
            self._queue.extendleft(reversed(held))
            self._wake_writer()

    # ---------------------------------------------------------------- closing

    def _raise_if_closed(self) -> None:
        reason = self._close_reason
        if reason is not None:
            raise again(reason)

    def _shut(self, reason: BrokerConnectionError, cause: BaseException | None = None) -> None:
        if self._close_reason is None:
            if cause is not None:
                reason.__cause__ = cause
            # The reason is kept as long as the connection, and the client keeps the last
            # one per broker: its traceback keeps where things went wrong, but not the locals
            # of the frames it went through (a failed write's requests, a response frame).
            for error in (reason, cause):
                if error is not None:
                    traceback.clear_frames(error.__traceback__)
            self._close_reason = reason
            self.closed_at = trio.current_time()
        self._fail_pending()
        self._cancel_scope.cancel()

    def _fail_pending(self) -> None:
        reason = self._close_reason
        assert reason is not None
        pending, self._pending = self._pending, {}
        for request in pending.values():
            if isinstance(request, MergedRequest):
                for part in request.parts:
                    part.pending.fail(again(reason))
            else:
                request.fail(again(reason))  # not one that timed out: it is done
        # Never written: frames of requests that expect no response, and parts (which are
        # not in _pending until written), held back fetches included.
        self._fetches_in_flight.clear()
        held, self._held_fetches = self._held_fetches, []
        for part in held:
            fail_queued(part, reason)
        queue = self._queue
        while queue:
            fail_queued(queue.popleft(), reason)
