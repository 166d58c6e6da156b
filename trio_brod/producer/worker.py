"""The producer of one partition: its worker task, batching, retries, idempotence.

This is ``brod_producer`` in Trio form. ``produce`` puts the message into the partition's
channel (:mod:`~trio_brod.producer._intake`) and returns a
:class:`~trio_brod.DeliveryReceipt` at once. The worker takes calls from the channel as it
can send them, groups them into record batches, keeps up to ``partition_onwire_limit``
Produce requests in flight, and resolves receipts in order as acknowledgements arrive.

Failures are handled in *rounds*. A round sends batches until one of them fails; then it
sends nothing more, waits for every request still on the wire to come back, and puts the
failed batches back at the front of the queue, in their original order. What happens next
depends on why they failed:

* a retriable error (the leader moved, the connection broke, too few replicas): back off,
  look the leader up again, and send the same batches, byte for byte, in the same order;
* a batch the broker found too large: split it in two and send the halves at once;
* a sequence-number error (idempotence): start a new epoch, then send at once.

A batch that fails more than ``max_retries`` times is given up: its receipts fail with the
broker's error and the worker goes on with the next one. With idempotence (the default) the
broker uses the producer id, epoch and sequence numbers in each batch to drop the duplicates
that a retry could otherwise write, and to refuse a batch that would leave a gap.

Giving up on a batch (out of retries, or refused for good) therefore leaves a gap in the
sequence numbers, which the broker would refuse the next batch for. As the Java producer
does since KIP-360, the partition then sends nothing more until its requests on the wire are
back, starts a new epoch of its producer id (a fresh producer id after the last epoch), and
renumbers the batches still pending from 0. Nothing is renumbered that the broker may hold
already: if a batch given up and a batch still pending may both have been written (their
responses were lost), the numbers stay, and the broker's answer to the next one decides
(see :func:`~trio_brod.producer._buffer.sequence_gap`). Either way no batch is sent more
than ``max_retries + 1`` times, and receipts fail with the real cause, never with a
sequence error that the producer made itself.

The batching and ordering rules themselves live in :mod:`trio_brod.producer._buffer`, a
plain data structure, and the sequence numbers in :mod:`trio_brod.producer.identity`; this
module only drives them.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import trio

from trio_brod._backoff import Backoff
from trio_brod._exceptions import (
    BrokerConnectionError,
    ConnectionFailed,
    MessageTooLarge,
    NoLeader,
    ProducerClosed,
)
from trio_brod._log import producer_log
from trio_brod._util import ack_timeout_ms
from trio_brod.observe import _hooks, messages_with_traceparent, with_traceparent
from trio_brod.producer._buffer import (
    Call,
    ProducerBuffer,
    RecordTuple,
    Round,
    SequenceGap,
    WireBatch,
    refused_unwritten,
)
from trio_brod.producer._intake import Intake
from trio_brod.producer.identity import SEQUENCE_CODES, ProducerIdentity, SequenceState
from trio_brod.producer.message import (
    Header,
    Message,
    check_messages_container,
    checked_bytes,
    checked_headers,
    checked_timestamp,
)
from trio_brod.producer.receipt import DeliveryReceipt, raise_callback_errors
from trio_brod.protocol import ProduceRequest
from trio_brod.protocol.errors import (
    BrodError,
    DecodeError,
    DuplicateSequenceNumberError,
    KafkaError,
    MessageTooLargeError,
    ProtocolError,
    RecordListTooLargeError,
    for_code,
)
from trio_brod.protocol.records import (
    BATCH_OVERHEAD,
    IMPLEMENTATION,
    encode_batch,
    estimate_record_size,
    with_producer_state,
)

if TYPE_CHECKING:
    from trio_brod._cluster import MetadataCache
    from trio_brod._config import ProducerConfig
    from trio_brod._net import Connection

__all__ = ["PartitionProducer", "ack_timeout_ms"]

# Error codes with their own handling (the rest go by their ``retriable`` flag).
_TOO_LARGE_CODES: Final = frozenset({MessageTooLargeError.code, RecordListTooLargeError.code})
_DUPLICATE_SEQUENCE_NUMBER: Final = DuplicateSequenceNumberError.code

# produce_batch's loop over its messages, for plain messages, in C (see there), when
# records.py uses the C extension. Its argument ``overhead`` is the estimate of a record with
# no key, value or headers: the C code adds the lengths of key and value to it, as
# estimate_record_size does, and the constant stays in records.py.
_c_prepare_records: (
    Callable[
        [Iterable[Message | tuple[Any, ...]], int, int, type[Message]],
        tuple[list[RecordTuple], int] | None,
    ]
    | None
) = None
if IMPLEMENTATION == "c":
    from trio_brod.protocol._speedups import prepare_records as _c_prepare_records
_EMPTY_RECORD_SIZE: Final = estimate_record_size(None, None, ())


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _needs_refresh(error: BaseException) -> bool:
    """Whether an error means the leader may have moved, so metadata must be read again."""
    if isinstance(error, (BrokerConnectionError, NoLeader)):
        return True
    return isinstance(error, KafkaError) and error.invalid_metadata


class PartitionProducer(Intake):
    """The producer of one partition: a bounded channel in (its
    :class:`~trio_brod.producer._intake.Intake`), a worker
    task out.

    Get one with :meth:`Client.get_producer <trio_brod.Client.get_producer>`. Its
    :meth:`produce` and :meth:`produce_batch` skip the partitioner.

    Attributes:
        topic: The topic.
        partition: The partition.
        config: The topic producer's configuration.
    """

    def __init__(
        self,
        metadata: MetadataCache,
        topic: str,
        partition: int,
        config: ProducerConfig,
        identity: ProducerIdentity | None,
    ) -> None:
        super().__init__(
            topic, partition, config.partition_buffer_limit, config.partition_buffer_bytes
        )
        self.config = config
        self._metadata = metadata
        # Idempotence: the producer id, epoch and sequence numbers this partition sends
        # with (None without idempotence).
        self._sequence = None if identity is None else SequenceState(identity, topic, partition)
        # A transactional producer's partition: its batches are part of transactions.
        self._transactional_id = None if identity is None else identity.transactional_id
        self._identity = identity  # its produce_versions: a transactional producer's differ
        # Records go into a batch up to the smaller of the two limits.
        self._max_records_size = config.max_request_size - BATCH_OVERHEAD
        self._buffer = ProducerBuffer(
            max_batch_size=min(config.max_batch_size, self._max_records_size),
            onwire_limit=config.partition_onwire_limit,
            hooks=_hooks.hooks_of(getattr(metadata, "pool", None)),
        )
        self._pull_limit = 2 * self._buffer.max_batch_size
        self._codec = config.codec
        self._acks = config.required_acks
        self._ack_timeout_ms = ack_timeout_ms(config.ack_timeout)
        self._linger = config.max_linger
        self._cancel_scope = trio.CancelScope()
        self._closing = False
        self._flushing = 0
        self._oldest_queued_at = math.inf
        # The batches that failed in the current round, until it ends and they go back
        # into the buffer's retry queue; kept here so that flush and abort can find them.
        self._round = Round()
        # Whether a retry was logged since the last acknowledged batch (see _recovered).
        self._retrying = False
        #: Set when the worker task has ended.
        self.finished = trio.Event()
        _hooks.track_producer(self._buffer, topic, partition)

    def __repr__(self) -> str:
        return f"<PartitionProducer {self.topic}[{self.partition}] buffered={len(self._buffer)}>"

    # ---------------------------------------------------------------- producing

    async def produce(
        self,
        value: bytes | None,
        key: bytes | None = None,
        *,
        headers: Sequence[Header] = (),
        timestamp: int | None = None,
    ) -> DeliveryReceipt:
        """Accept one message into the buffer and return its receipt.

        Waits (cancellably) while ``partition_buffer_limit`` calls or ``partition_buffer_bytes``
        of messages are already waiting.
        Otherwise it returns without letting other tasks run (it is still a cancellation
        point): a loop of ``produce`` calls fills the channel in one go, and the worker
        then sends all of it in a few big batches. That is most of the speed.

        A ``bytearray`` or ``memoryview`` key, value or header value is copied before this
        returns: changing it afterwards does not change what is sent.

        Raises:
            MessageTooLarge: The message cannot fit in ``max_request_size``.
            ProducerClosed: The producer is closed.
            TypeError: key, value, headers or timestamp have the wrong type (the message
                names which).
            ValueError: ``timestamp`` is negative or past 2**63-1.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        # Checked and copied now: the record holds only immutable data from here on.
        if key is not None and type(key) is not bytes:
            key = checked_bytes(key, "key")
        if value is not None and type(value) is not bytes:
            value = checked_bytes(value, "value")
        headers = checked_headers(headers) if headers else ()
        if self.config.trace_context:
            headers = with_traceparent(headers)
        record = (
            _now_ms() if timestamp is None else checked_timestamp(timestamp),
            key,
            value,
            headers,
        )
        size = estimate_record_size(key, value, headers)
        if size > self._max_records_size:
            raise self._too_large(size)
        call = Call(self.topic, self.partition, (record,), size)
        if not self._hand_over_now(call):
            await self._hand_over_waiting(call)
        return call

    async def produce_batch(self, messages: Iterable[Message | tuple[Any, ...]]) -> DeliveryReceipt:
        """Accept many messages as one call: they stay together, in order, in one batch.

        ``messages`` holds :class:`Message` objects or ``(key, value)`` tuples. The receipt
        gives the offset of the first message. This is brod's batch produce
        (``[{Ts, Key, Value}]``) and the cheapest way to send at a high rate.

        Raises:
            ValueError: ``messages`` is empty.
            MessageTooLarge: The messages together cannot fit in ``max_request_size``.
            ProducerClosed: The producer is closed.
            TypeError: ``messages`` is not a collection of messages, or a message has the
                wrong shape or types (the error names the message and the field).
            ValueError: A message's timestamp is negative or past 2**63-1 (likewise named).

        As in :meth:`produce`, mutable keys, values and header values are copied before
        this returns.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.config.trace_context:
            messages = messages_with_traceparent(messages)
        now = _now_ms()
        # Two paths to the same records and size. The loop below is the reference, and takes
        # anything. The C extension takes the common case -- a list or tuple of (key, value)
        # tuples and Messages without headers or timestamp, keys and values bytes or None --
        # in one call, about ten times faster; for anything else it returns None having
        # consumed nothing (it never iterates ``messages``), and the loop starts from scratch.
        prepared = None
        if _c_prepare_records is not None:
            prepared = _c_prepare_records(messages, now, _EMPTY_RECORD_SIZE, Message)
        if prepared is not None:
            records, size = prepared
        else:
            check_messages_container(messages)
            records, size = [], 0
            for index, message in enumerate(messages):
                try:
                    if isinstance(message, Message):
                        value, key, headers, timestamp = message
                        timestamp = now if timestamp is None else checked_timestamp(timestamp)
                        headers = checked_headers(headers) if headers else ()
                    elif isinstance(message, tuple) and len(message) == 2:
                        key, value = message
                        headers, timestamp = (), now
                    else:
                        raise TypeError(
                            f"expected a Message or a (key, value) tuple, not {message!r:.100}"
                        )
                    key = checked_bytes(key, "key")
                    value = checked_bytes(value, "value")
                except (TypeError, ValueError) as exc:
                    raise type(exc)(f"message {index}: {exc}") from None
                size += estimate_record_size(key, value, headers)
                records.append((timestamp, key, value, headers))
        if not records:
            raise ValueError("produce_batch needs at least one message")
        if size > self._max_records_size:
            raise self._too_large(size)
        call = Call(self.topic, self.partition, records, size)
        if not self._hand_over_now(call):
            await self._hand_over_waiting(call)
        return call

    def _too_large(self, records_size: int) -> MessageTooLarge:
        return MessageTooLarge(
            self.topic,
            self.partition,
            records_size + BATCH_OVERHEAD,
            self.config.max_request_size,
        )

    async def flush(self) -> None:
        """Wait until every message accepted so far is acknowledged or has failed.

        Lingering stops while a flush waits. Failures are not raised here: they are for
        the receipts' owners to see.
        """
        self._pull(math.inf)
        receipts: list[DeliveryReceipt] = list(self._buffer.queued)
        batches = (
            *self._buffer.onwire,
            *(f.batch for f in self._round.failed),
            *self._buffer.retry,
        )
        for batch in batches:
            receipts.extend(batch.calls)
        self._flushing += 1
        self._wakeup.set()
        try:
            for receipt in receipts:
                if not receipt.done():
                    with contextlib.suppress(Exception):
                        await receipt.wait()
        finally:
            self._flushing -= 1
        await trio.lowlevel.checkpoint()

    # ---------------------------------------------------------------- stopping

    def close(self) -> None:
        """Accept no more messages; the worker sends what it has, then ends."""
        if not self._closing:
            self._closing = True
            self._send_channel.close()
            self._admit(everyone=True)  # to find the channel closed
            self._wakeup.set()

    def abort(self, error: BaseException) -> None:
        """Fail everything buffered with ``error`` now, accept no more, and stop the worker.

        Raises:
            Exception: What receipts' done-callbacks raised, after every receipt failed.
        """
        self.close()
        if self._closed_error is None:
            self._closed_error = error
        self._cancel_scope.cancel()
        if self._sequence is not None and self._holds_sequenced_batches():
            # Their sequence numbers will never reach the broker: a gap, which the next
            # producer of this partition must not continue from (see SequenceState.leave).
            self._sequence.new_epoch_due()
        errors: list[Exception] = []
        failed, self._round.failed = self._round.failed, []
        for failure in failed:
            try:
                failure.batch.fail(error)
            except Exception as exc:
                errors.append(exc)
        try:
            self._buffer.fail_all(error)
        except Exception as exc:
            errors.append(exc)
        while True:
            try:
                call = self._receive_channel.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            self._channel_bytes -= call.size
            try:
                call.fail(error)
            except Exception as exc:
                errors.append(exc)
        raise_callback_errors(errors)

    # ---------------------------------------------------------------- the worker

    async def run(self) -> None:
        """The worker: send batches to the partition's leader until closed and drained.

        Returns when the producer was closed and everything accepted is settled, or when
        :meth:`abort` stopped it. Cancelled from outside, or crashing on a bug (or on an
        exception from a receipt's done-callback), it first fails whatever it still holds
        with :class:`~trio_brod.ProducerClosed`, then lets the exception out.
        """
        where = f"{self.topic}[{self.partition}]"
        try:
            with self._cancel_scope:
                await self._work()
        except trio.Cancelled:
            self._end(ProducerClosed(f"producer of {where} was cancelled before delivery"))
            raise
        except BaseException as exc:
            error = ProducerClosed(f"producer of {where} crashed before delivery: {exc!r}")
            error.__cause__ = exc
            self._end(error)
            raise
        else:
            self._end(ProducerClosed(f"producer of {where} stopped before delivery"))

    def _end(self, error: ProducerClosed) -> None:
        if self._sequence is not None:
            self._sequence.leave(self._holds_sequenced_batches())
        try:
            self.abort(self._closed_error or error)
        finally:
            self.finished.set()

    def _holds_sequenced_batches(self) -> bool:
        """Whether batches with sequence numbers are still waiting for their answer or a
        retry (and would leave a gap if failed now)."""
        buffer = self._buffer
        batches = (*buffer.onwire, *buffer.retry, *(f.batch for f in self._round.failed))
        return any(batch.base_sequence >= 0 for batch in batches)

    def _wake(self) -> None:
        self._wakeup.set()

    async def _wait(self, deadline: float) -> None:
        """Sleep until woken (a call arrived, a response came) or the deadline."""
        self._wakeup = trio.Event()
        if deadline == math.inf:
            # No cancel scope for the idle wait: it would cost every idle partition
            # producer about 1 KB for as long as it idles.
            await self._wakeup.wait()
            return
        with trio.move_on_at(deadline):
            await self._wakeup.wait()

    async def _work(self) -> None:
        backoff = Backoff(self.config.retry_backoff, self.config.retry_backoff_max)
        refresh = False
        while True:
            error = await self._serve_leader(refresh, backoff)
            if error is None:
                return
            refresh = _needs_refresh(error)
            delay = backoff.next_delay()
            self._retrying = True
            self._metadata.pool.repeats.warning(
                producer_log,
                ("produce", self.topic, self.partition),
                "%s[%d]: %s; trying again in %.2f s",
                self.topic,
                self.partition,
                error,
                delay,
            )
            # Let go of the error before serving the leader again, which may idle for hours:
            # its traceback keeps the frames it was raised through alive, with the batch they
            # were sending (sent again and acknowledged since).
            del error
            await trio.sleep(delay)

    async def _serve_leader(self, refresh: bool, backoff: Backoff) -> BaseException | None:
        """Send to the partition's current leader until done (None) or a failure that
        needs a backoff and a new leader lookup (returned)."""
        buffer = self._buffer
        self._pull()
        while buffer.is_empty():
            if self._closing:
                return None
            await self._wait(math.inf)
            self._pull()
        try:
            connection = await self._leader_connection(refresh)
            identity = self._identity
            low, high = identity.produce_versions if identity else ProducerIdentity.PLAIN_PRODUCE
            version = connection.version_for(ProduceRequest.API_KEY, high, low)
        except BrodError as exc:
            self._could_not_send(exc)
            return exc
        while True:
            if self._sequence is not None and self._sequence.needs_update:
                try:
                    await self._sequence.update(self._buffer.retry)
                except BrodError as exc:
                    self._could_not_send(exc)
                    return exc
            if not await self._send_round(connection, version, backoff):
                return None
            error = self._end_round()
            if error is not None:
                return error

    async def _leader_connection(self, refresh: bool) -> Connection:
        """The connection to the partition's leader, waiting out a reconnect cool-down.

        Within the client's ``reconnect_cool_down`` of a failed connection the client
        answers with that failure again, without trying. That is not an attempt to send, so
        it must not use up a retry: wait until the cool-down is over and ask again (a real
        attempt then, which counts if it fails).
        """
        while True:
            try:
                return await self._metadata.leader_connection(
                    self.topic, self.partition, refresh=refresh
                )
            except ConnectionFailed as exc:
                retry_at = exc.retry_at
                if retry_at is None:
                    raise
            await trio.sleep_until(retry_at)

    def _could_not_send(self, error: BrodError) -> None:
        """The leader could not be reached (or the producer id not had): count that as a
        failed attempt of the first waiting batch; a non-retriable error fails them all."""
        buffer = self._buffer
        if not error.retriable:
            if self._sequence is not None and any(b.base_sequence >= 0 for b in buffer.retry):
                # Their sequence numbers will not reach the broker: a gap (nothing pending
                # remains, so a new epoch is safe).
                self._sequence.new_epoch_due()
            buffer.fail_all(error)
            return
        given_up, gap = buffer.attempt_failed(error, self.config.max_retries)
        self._give_up(given_up, gap)

    def _recovered(self) -> None:
        """A request went through after failures: say so once (see :mod:`trio_brod._log`)."""
        self._retrying = False
        self._metadata.pool.repeats.recovered(
            producer_log,
            ("produce", self.topic, self.partition),
            "%s[%d]: producing again",
            self.topic,
            self.partition,
        )

    def _give_up(self, given_up: list[tuple[WireBatch, BaseException]], gap: SequenceGap) -> None:
        """Fail the batches given up, after deciding what their gap asks for (see the
        module docstring): a new epoch before anything more is sent, or, when that could
        write a pending batch twice, the old numbers until the broker's answer tells."""
        if self._sequence is not None:
            self._sequence.note_gap(gap)
        if given_up:
            self._metadata.pool.repeats.warning(
                producer_log,
                ("give-up", self.topic, self.partition),
                "%s[%d]: %d messages failed: %s",
                self.topic,
                self.partition,
                sum(batch.record_count for batch, _ in given_up),
                given_up[0][1],
            )
        errors: list[Exception] = []
        for batch, error in given_up:
            try:
                batch.fail(error)
            except Exception as exc:
                errors.append(exc)
        raise_callback_errors(errors)

    async def _send_round(self, connection: Connection, version: int, backoff: Backoff) -> bool:
        """One round: send until a failure, then let the wire drain.

        Returns False when the producer is closing and everything has been settled, True
        when the round ended with failures (in ``self._round``).
        """
        buffer = self._buffer
        round_ = self._round = Round()
        while True:
            while buffer.onwire and buffer.onwire[0].pending.done.is_set():
                self._settle_oldest(round_, backoff)
            if round_.error is not None:
                if not buffer.onwire:
                    return True
            else:
                self._pull()
                if buffer.can_send() and self._ready_to_send():
                    self._send_next(connection, version, round_)
                    continue
                if self._closing and buffer.is_empty():
                    return False
            deadline = math.inf
            if buffer.onwire:
                # No name for the oldest batch: this frame sleeps below, and an idle worker
                # would keep its last batch (calls, records and bytes) alive until it wakes.
                deadline = buffer.onwire[0].deadline
                if trio.current_time() >= deadline:
                    self._time_out(connection, round_, backoff)
                    continue
            if round_.error is None and buffer.queued and buffer.can_send():
                deadline = min(deadline, self._oldest_queued_at + self._linger)
            await self._wait(deadline)

    def _time_out(self, connection: Connection, round_: Round, backoff: Backoff) -> None:
        """The oldest request is overdue: close its connection, which fails every request
        on it (responses come in order, so nothing after a lost one can be trusted)."""
        timeout = self.config.ack_timeout + self._metadata.config.request_timeout
        connection.abort(f"a Produce request got no response within {timeout:.1f}s")
        oldest = self._buffer.onwire[0]
        if not oldest.pending.done.is_set():
            # The connection had closed without completing it; count it as lost.
            reason = connection.close_reason or BrokerConnectionError(
                connection.address, "connection closed"
            )
            self._settle_oldest(round_, backoff, lost=reason)

    def _end_round(self) -> BaseException | None:
        """Put the round's failed batches back in front, in order, giving up on those out
        of retries or refused for good. Returns the error to back off for, if any."""
        round_ = self._round
        self._round = Round()
        if round_.failed:
            given_up, gap = self._buffer.end_round(round_.failed, self.config.max_retries)
            self._give_up(given_up, gap)
        return round_.reconnect

    def _pull(self, limit: float | None = None) -> None:
        """Move calls from the channel into the buffer, up to about two batches ahead."""
        buffer = self._buffer
        receive = self._receive_channel.receive_nowait
        if limit is None:
            limit = self._pull_limit
        taken = 0
        while buffer.queued_bytes < limit:
            try:
                call = receive()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            if not buffer.queued:
                self._oldest_queued_at = trio.current_time()
            buffer.add(call)
            taken += call.size
        if taken:
            self._channel_bytes -= taken
            if self._room_waiters:
                self._admit()

    def _ready_to_send(self) -> bool:
        """Linger rules: send now unless asked to wait for more messages."""
        if self._linger <= 0:
            return True
        buffer = self._buffer
        if buffer.retry or self._closing or self._flushing:
            return True
        if buffer.queued_bytes >= buffer.max_batch_size:
            return True
        count = self.config.max_linger_count
        if count > 0 and len(buffer.queued) >= count:
            return True
        return trio.current_time() >= self._oldest_queued_at + self._linger

    def _send_next(self, connection: Connection, version: int, round_: Round) -> None:
        """Send the next batch (a retry first), or note why it could not go."""
        buffer = self._buffer
        batch = buffer.take_batch()
        if buffer.queued:
            # What is left starts a new batch now: its linger starts now too.
            self._oldest_queued_at = trio.current_time()
        try:
            request = self._request(batch)
            pending = connection.send(
                request, version, expect_response=self._acks != 0, on_done=self._wake
            )
        except BrokerConnectionError as exc:
            # It never left: first in line again, after what failed before it this round.
            buffer.requeue_failed([batch])
            round_.add((), exc, reconnect=True)
            return
        except (ProtocolError, TypeError, ValueError) as exc:
            # It cannot be written at all (checked earlier, so this is rare): give up on
            # it. Its sequence numbers were not taken.
            batch.fail(exc)
            return
        batch.pending = pending
        batch.deadline = (
            trio.current_time() + self.config.ack_timeout + self._metadata.config.request_timeout
        )
        buffer.sent(batch)

    def _request(self, batch: WireBatch) -> ProduceRequest:
        """The Produce request for a batch, encoding (or re-sequencing) it as needed."""
        state = self._sequence
        if state is not None and batch.base_sequence < 0:
            producer_id, epoch = state.current()
            sequence = state.number(batch.record_count)
            if batch.encoded is None:
                batch.encoded = encode_batch(
                    batch.records(),
                    compression=self._codec,
                    compression_level=self.config.compression_level,
                    producer_id=producer_id,
                    producer_epoch=epoch,
                    base_sequence=sequence,
                    is_transactional=self._transactional_id is not None,
                )
            else:
                batch.encoded = with_producer_state(
                    batch.encoded,
                    producer_id=producer_id,
                    producer_epoch=epoch,
                    base_sequence=sequence,
                )
            batch.producer_id, batch.producer_epoch = producer_id, epoch
            batch.base_sequence = sequence
        elif batch.encoded is None:
            # No idempotence, or the half of a split batch that kept its sequence numbers.
            batch.encoded = encode_batch(
                batch.records(),
                compression=self._codec,
                compression_level=self.config.compression_level,
                producer_id=batch.producer_id,
                producer_epoch=batch.producer_epoch,
                base_sequence=batch.base_sequence,
                is_transactional=self._transactional_id is not None,
            )
        return ProduceRequest(
            transactional_id=self._transactional_id,
            acks=self._acks,
            timeout_ms=self._ack_timeout_ms,
            topic_data=[
                ProduceRequest.TopicProduceData(
                    name=self.topic,
                    partition_data=[
                        ProduceRequest.PartitionProduceData(
                            index=self.partition, records=batch.encoded
                        )
                    ],
                )
            ],
        )

    def _settle_oldest(
        self, round_: Round, backoff: Backoff, lost: BaseException | None = None
    ) -> None:
        """The oldest request on the wire is done: acknowledge its batch or note why not."""
        buffer = self._buffer
        batch = buffer.onwire[0]
        pending = batch.pending
        error = lost if lost is not None else pending.error
        if error is None:
            response = pending.response
            if response is None:  # acks=0: written is all we learn
                buffer.acknowledge(-1)
                return
            try:
                result = response.responses[0].partition_responses[0]
            except IndexError:
                error = DecodeError(
                    f"the Produce response holds no result for {self.topic}[{self.partition}]"
                )
            else:
                code = result.error_code
                if code == 0:
                    backoff.reset()
                    buffer.acknowledge(result.base_offset)
                    if self._retrying:
                        self._recovered()
                    return
                if code == _DUPLICATE_SEQUENCE_NUMBER:
                    # Written by an earlier attempt, too long ago for the broker to say at
                    # which offset.
                    buffer.acknowledge(-1)
                    return
                error = for_code(code)(
                    result.error_message, topic=self.topic, partition=self.partition
                )
                if code in _TOO_LARGE_CODES and len(batch.calls) > 1:
                    # Too big as a whole (compression made a poor guess of the size, or the
                    # broker's limit is lower): send it again as two halves, at once. Not a
                    # retry; the halves keep its sequence numbers.
                    buffer.fail_first(error)
                    round_.add(batch.split(), error, reconnect=False)
                    return
                if code in SEQUENCE_CODES and self._sequence is not None:
                    cause = self._sequence.sequence_error(code, error, batch, round_.error)
                    round_.add([buffer.fail_first(error)], cause, reconnect=False)
                    return
        if not refused_unwritten(error):
            batch.maybe_written = True  # a lost response, or an error after the append
        if getattr(error, "retriable", False):
            round_.add([buffer.fail_first(error)], error, reconnect=True)
        elif self._sequence is not None and batch.base_sequence >= 0:
            # Given up for good. It leaves a gap in the sequence numbers: send nothing more
            # this round; at its end the batches behind it are renumbered (end_round).
            round_.add([buffer.fail_first(error)], error, reconnect=False, final=True)
        else:
            buffer.fail_first(error).fail(error)
