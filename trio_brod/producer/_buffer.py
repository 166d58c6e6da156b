"""The producer's buffer: accepted calls, batches on the wire, batches to send again.

This is brod's ``brod_producer_buffer`` in Python: a plain data structure with no I/O and no
clock, which the partition worker drives. Keeping it apart makes the ordering rules easy to
state and to test (a hypothesis state machine does, in ``tests/unit/test_producer_buffer.py``):

1. Calls are acknowledged in the order they were accepted, whatever fails and is retried.
2. A batch that must be sent again goes before anything not sent yet.
3. At most ``onwire_limit`` batches are on the wire at once.
4. A batch holds whole calls; it stays under ``max_batch_size`` bytes unless a single call
   is larger (that call then travels alone).
5. No batch is sent more than ``max_retries + 1`` times (:meth:`ProducerBuffer.end_round`).
6. With idempotence, giving up on a batch that carries sequence numbers leaves a gap the
   broker would refuse; :func:`sequence_gap` says whether the batches still pending may be
   renumbered under a new epoch without risking a duplicate.
7. Nothing goes on the wire behind a batch sent again that may already be in the log,
   until that batch is answered. A broker recognises a duplicate only among the last
   five batches it wrote for the producer; batches sent behind the retry could push its
   first copy out of that memory, and the broker would then take the retry for a gap
   (``OUT_OF_ORDER_SEQUENCE_NUMBER``) instead of a duplicate, which a new epoch would write
   twice.

::

    add()           take_batch()          sent()              acknowledge()
   ──────► queued ──────────────► batch ────────► onwire ──────────────────► receipts resolved
              ▲                     ▲                │ fail_first()
              │                     └──── retry ◄────┘ (requeue_failed(): in order, at the front)
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from trio_brod.observe import _hooks as observe
from trio_brod.producer.receipt import DeliveryReceipt, raise_callback_errors
from trio_brod.protocol.errors import (
    ClusterAuthorizationFailedError,
    CorruptMessageError,
    InvalidProducerEpochError,
    InvalidRecordError,
    InvalidRequiredAcksError,
    InvalidTimestampError,
    InvalidTopicError,
    MessageTooLargeError,
    NotEnoughReplicasError,
    NotLeaderOrFollowerError,
    OutOfOrderSequenceNumberError,
    ProducerFencedError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    UnknownProducerIdError,
    UnknownTopicOrPartitionError,
    UnsupportedForMessageFormatError,
)
from trio_brod.protocol.records import IMPLEMENTATION

__all__ = [
    "Call",
    "Failure",
    "ProducerBuffer",
    "RecordTuple",
    "Round",
    "RoundEnd",
    "SequenceGap",
    "WireBatch",
    "hold_in_flight",
    "refused_unwritten",
    "sequence_gap",
]


def _leave_to_the_collector(obj: object) -> None:
    """Without the C extension, the cycle collector keeps tracking calls in flight."""


hold_in_flight: Callable[[object], None] = _leave_to_the_collector
_track: Callable[[object], None] = _leave_to_the_collector
if IMPLEMENTATION == "c":
    # Calls in flight hidden from the cycle collector: see Call's docstring.
    from trio_brod.protocol._speedups import gc_track as _track
    from trio_brod.protocol._speedups import gc_untrack as hold_in_flight

#: One record as the record-batch encoder takes it: (timestamp_ms, key, value, headers).
RecordTuple = tuple[int, bytes | None, bytes | None, Sequence[tuple[str, bytes | None]]]


class Call(DeliveryReceipt):
    """One accepted ``produce`` call, which is also its receipt: one message, or a batch
    that must stay together.

    ``produce`` hands the call back to its caller as the :class:`DeliveryReceipt`. Being one
    object, not a call holding a receipt, matters for speed: a busy producer has tens of
    thousands of calls in flight, and each object the garbage collector tracks makes every
    collection longer. For the same reason ``records`` is a tuple for a single message (the
    collector stops tracking a tuple of atoms, and a tuple of such tuples). Once the call
    is done its records are dropped, so that a caller keeping receipts keeps no messages.

    Going further (with the C extension): once the producer holds a call, the producer
    calls :func:`hold_in_flight`, which stops the collector from tracking it, and it is
    tracked again just before it is resolved or failed. In between it is always reachable
    from the producer, so it cannot be in a garbage cycle; from then on it is an ordinary
    object again, whatever callbacks and errors it gets. Full collections walked every call
    in flight, and at 8 partitions they took a quarter of the producer's CPU time.
    """

    __slots__ = ("records", "size")

    def __init__(
        self, topic: str, partition: int, records: Sequence[RecordTuple], size: int
    ) -> None:
        DeliveryReceipt.__init__(self, topic, partition)
        self.records = records
        self.size = size

    def fail(self, error: BaseException) -> None:
        """Fail the receipt, first giving the call back to the cycle collector."""
        _track(self)
        self.records = ()
        DeliveryReceipt.fail(self, error)


class WireBatch:
    """Calls that travel in one record batch of one Produce request.

    The worker fills in the wire details: the encoded bytes (kept across retries, so a retry
    sends exactly the same batch), the producer id, epoch and first sequence number it was
    encoded with, and the in-flight request.

    Two more things are remembered across attempts, for the idempotence rules:
    ``maybe_written`` is set once an attempt ended in a way that does not rule out that the
    broker wrote the batch under its current sequence numbers (a lost response, or an error
    the broker gives after appending, see :func:`refused_unwritten`); ``cause`` is the error
    of its last real failure, which is what its receipts fail with if it is given up after
    an attempt the producer itself spoiled (a sequence gap it made).
    """

    __slots__ = (
        "_records",
        "attempts",
        "base_sequence",
        "calls",
        "cause",
        "deadline",
        "encoded",
        "maybe_written",
        "pending",
        "producer_epoch",
        "producer_id",
        "record_count",
        "sent_at",
        "size",
    )

    def __init__(
        self,
        calls: list[Call],
        size: int | None = None,
        records: Sequence[RecordTuple] | None = None,
    ) -> None:
        self.calls = calls
        # take_batch() passes what it already counted; the rest is worked out here.
        self.size = sum(call.size for call in calls) if size is None else size
        if records is None:
            records = [record for call in calls for record in call.records]
        self._records = records
        self.record_count = len(records)
        self.attempts = 0
        self.maybe_written = False
        self.cause: BaseException | None = None
        self.encoded: bytes | None = None
        self.producer_id = -1
        self.producer_epoch = -1
        self.base_sequence = -1
        self.pending: Any = None
        self.deadline = 0.0
        #: ``time.perf_counter()`` when last sent (for latency, seen by hooks).
        self.sent_at = 0.0

    def records(self) -> Sequence[RecordTuple]:
        """All records of the batch, in order."""
        return self._records

    def resolve(self, base_offset: int) -> None:
        """Resolve every call's receipt from the batch's base offset (-1 if unknown).

        Every receipt is resolved even if done-callbacks raise; their errors come out after.
        """
        errors: list[Exception] | None = None
        offset = base_offset
        for call in self.calls:
            count = len(call.records)
            call.records = ()
            _track(call)
            try:
                call.resolve(offset)
            except Exception as exc:
                errors = _collect(errors, exc)
            if offset >= 0:
                offset += count
        if errors:
            raise_callback_errors(errors)

    def fail(self, error: BaseException) -> None:
        """Fail every call's receipt with ``error`` (callback errors come out after)."""
        raise_callback_errors(_fail_calls(self.calls, error, None) or [])

    def split(self) -> tuple[WireBatch, WireBatch]:
        """Two batches with the first and second half of the calls (needs two or more).

        The halves are encoded afresh. If this batch was sequenced (idempotence), the halves
        keep its producer id, epoch and sequence numbers: the first starts at this batch's
        base sequence and the second right after the first's records, so together they
        cover exactly the sequence numbers this batch had, and later batches stay valid.
        They inherit whether the batch may have been written (and its last error); not its
        attempts: the halves are new batches, and being too large was not a retry.
        """
        if len(self.calls) < 2:
            raise ValueError("a batch of one call cannot be split")
        middle = len(self.calls) // 2
        first, second = WireBatch(self.calls[:middle]), WireBatch(self.calls[middle:])
        for half in (first, second):
            half.maybe_written = self.maybe_written
            half.cause = self.cause
        if self.base_sequence >= 0:
            for half in (first, second):
                half.producer_id = self.producer_id
                half.producer_epoch = self.producer_epoch
            first.base_sequence = self.base_sequence
            second.base_sequence = (self.base_sequence + first.record_count) & 0x7FFFFFFF
        return first, second


#: Errors a broker answers a Produce request with before it appends anything: an attempt
#: that ends with one of these wrote nothing.
_REFUSED_BEFORE_APPEND: tuple[type[BaseException], ...] = (
    ClusterAuthorizationFailedError,
    CorruptMessageError,
    InvalidProducerEpochError,
    InvalidRecordError,
    InvalidRequiredAcksError,
    InvalidTimestampError,
    InvalidTopicError,
    MessageTooLargeError,
    NotEnoughReplicasError,
    NotLeaderOrFollowerError,
    OutOfOrderSequenceNumberError,
    ProducerFencedError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    UnknownProducerIdError,
    UnknownTopicOrPartitionError,
    UnsupportedForMessageFormatError,
)


def refused_unwritten(error: BaseException) -> bool:
    """Whether a Produce attempt that failed with ``error`` certainly wrote nothing.

    True for the errors a broker checks before it appends (not the leader, too few in-sync
    replicas, a bad batch, a sequence or epoch problem). False for a lost or late response,
    for errors that come after the append (``NOT_ENOUGH_REPLICAS_AFTER_APPEND``,
    ``REQUEST_TIMED_OUT`` while waiting for replicas) and for anything unknown: there the
    batch may be in the log, and only its sequence numbers can keep a retry from writing it
    twice.
    """
    return isinstance(error, _REFUSED_BEFORE_APPEND)


class SequenceGap(enum.Enum):
    """What giving up on batches did to an idempotent partition's sequence numbers."""

    #: Nothing given up carried sequence numbers: they still follow on.
    NONE = "none"
    #: A batch given up left a gap (or may have): start a new epoch and renumber the
    #: pending batches from 0 before sending anything. None of them can be in the log.
    RENUMBER = "renumber"
    #: A batch given up may be in the log, and so may a pending batch: renumbering could
    #: write that one twice. Keep the numbers; the broker's answer to the next batch tells
    #: (accepted: there was no gap; ``OUT_OF_ORDER_SEQUENCE_NUMBER``: there was, and
    #: nothing pending is in the log, so a new epoch may renumber it).
    UNRESOLVED = "unresolved"


def sequence_gap(batches: Iterable[tuple[WireBatch, bool]]) -> SequenceGap:
    """Whether the batches given up leave a gap, and whether renumbering is safe.

    ``batches`` are the failed and pending batches of a partition in sequence order, each
    with whether it is being given up. A broker writes a producer's batches in sequence
    order, so a batch that certainly was not written (``maybe_written`` false) proves that
    none after it was either. Renumbering is safe when every pending batch that may have
    been written comes after such a batch. Batches without sequence numbers (not sent yet
    in this epoch) take no part.
    """
    gave_up = unsafe = unwritten = False
    for batch, given_up in batches:
        if batch.base_sequence < 0:
            continue
        if given_up:
            gave_up = True
        elif batch.maybe_written and not unwritten:
            unsafe = True
        if not batch.maybe_written:
            unwritten = True
    if not gave_up:
        return SequenceGap.NONE
    return SequenceGap.UNRESOLVED if unsafe else SequenceGap.RENUMBER


class Failure(NamedTuple):
    """A batch whose request failed in the current round.

    ``error`` is the real cause (for a batch refused only because one ahead of it failed,
    that one's error); ``final`` is set when it must not be sent again, whatever its
    attempts (the broker refused it for good).
    """

    batch: WireBatch
    error: BaseException
    final: bool = False


class Round:
    """What went wrong in one round of sending (see :mod:`trio_brod.producer.worker`).

    Attributes:
        failed: The batches whose requests failed, in the order they were sent, each with
            its real cause (see :class:`Failure`); split batches appear as their two halves.
        error: The first error of the round; once set, nothing more is sent.
        reconnect: The first error that calls for a backoff and a new leader lookup, if
            any (a split or a sequence reset alone is followed at once).
    """

    __slots__ = ("error", "failed", "reconnect")

    def __init__(self) -> None:
        self.failed: list[Failure] = []
        self.error: BaseException | None = None
        self.reconnect: BaseException | None = None

    def add(
        self,
        batches: Iterable[WireBatch],
        error: BaseException,
        *,
        reconnect: bool,
        final: bool = False,
    ) -> None:
        """Note failed batches (each to be sent again, or given up if ``final``)."""
        self.failed.extend(Failure(batch, error, final) for batch in batches)
        if self.error is None:
            self.error = error
        if reconnect and self.reconnect is None:
            self.reconnect = error


class RoundEnd(NamedTuple):
    """What :meth:`ProducerBuffer.end_round` decided: the batches given up, each with the
    error to fail it with, and what that did to the sequence numbers."""

    given_up: list[tuple[WireBatch, BaseException]]
    gap: SequenceGap


_NOTHING_GIVEN_UP = RoundEnd([], SequenceGap.NONE)


def _collect(errors: list[Exception] | None, error: Exception) -> list[Exception]:
    if errors is None:
        return [error]
    errors.append(error)
    return errors


def _fail_calls(
    calls: Iterable[Call], error: BaseException, errors: list[Exception] | None
) -> list[Exception] | None:
    """Fail the calls' receipts, collecting (not raising) what their callbacks raise."""
    for call in calls:
        try:
            call.fail(error)
        except Exception as exc:
            errors = _collect(errors, exc)
    return errors


class ProducerBuffer:
    """The ordered queues of one partition producer. See the module docstring."""

    def __init__(
        self,
        *,
        max_batch_size: int,
        onwire_limit: int,
        hooks: observe.HasHooks = observe.state,
    ) -> None:
        if max_batch_size < 1 or onwire_limit < 1:
            raise ValueError("max_batch_size and onwire_limit must be positive")
        # Whom to tell about batches acknowledged, failed and retried: the client's hooks
        # (its pool's), passed in rather than looked up, so that this core stays pure.
        self.hooks = hooks
        self.max_batch_size = max_batch_size
        self.onwire_limit = onwire_limit
        self.queued: deque[Call] = deque()
        self.queued_bytes = 0
        # Lists, not deques: both hold at most about ``onwire_limit`` batches, and an empty
        # deque costs 760 bytes against a list's 56, per idle partition producer.
        self.retry: list[WireBatch] = []
        self.onwire: list[WireBatch] = []

    def __len__(self) -> int:
        """How many calls are in the buffer, in any queue."""
        batches = (*self.retry, *self.onwire)
        return len(self.queued) + sum(len(batch.calls) for batch in batches)

    def add(self, call: Call) -> None:
        """Accept a call at the back of the queue."""
        self.queued.append(call)
        self.queued_bytes += call.size

    def is_empty(self) -> bool:
        """True when nothing waits to be sent or acknowledged."""
        return not (self.queued or self.retry or self.onwire)

    def can_send(self) -> bool:
        """True if a batch may go on the wire now (rules 2, 3 and 7)."""
        onwire = self.onwire
        if onwire and onwire[-1].maybe_written:
            return False  # nothing behind a retry that may be a duplicate (rule 7)
        return len(onwire) < self.onwire_limit and bool(self.retry or self.queued)

    def take_batch(self) -> WireBatch:
        """The next batch to send: a retry first, else new calls up to ``max_batch_size``."""
        if self.retry:
            return self.retry.pop(0)
        queued = self.queued
        if not queued:
            raise IndexError("nothing to send")
        first = queued.popleft()
        calls = [first]
        records = first.records
        size = first.size
        limit = self.max_batch_size
        if queued and size + queued[0].size <= limit:
            gathered = list(records)  # the call's own records stay as they are
            while queued and size + queued[0].size <= limit:
                call = queued.popleft()
                calls.append(call)
                gathered += call.records
                size += call.size
            records = gathered
        self.queued_bytes -= size
        return WireBatch(calls, size, records)

    def sent(self, batch: WireBatch) -> None:
        """Record that ``batch`` is now on the wire (after every batch sent before it)."""
        if len(self.onwire) >= self.onwire_limit:
            raise RuntimeError("onwire limit exceeded")
        if batch.attempts and self.hooks.hooks:
            call = batch.calls[0]
            observe.retried(self.hooks, "send", call.topic, call.partition, batch.cause)
        batch.attempts += 1
        batch.sent_at = time.perf_counter()
        self.onwire.append(batch)

    def acknowledge(self, base_offset: int) -> WireBatch:
        """The oldest batch on the wire was written at ``base_offset``: resolve its calls."""
        batch = self.onwire.pop(0)
        if self.hooks.hooks:
            observe.produced(self.hooks, batch, base_offset, None)
        batch.resolve(base_offset)
        return batch

    def fail_first(self, error: BaseException | None = None) -> WireBatch:
        """Take the oldest batch off the wire because its request failed (with ``error``,
        which hooks are told about).

        The caller decides its fate: :meth:`requeue_failed` to send it again, or
        ``batch.fail(error)`` to give up on it.
        """
        batch = self.onwire.pop(0)
        if self.hooks.hooks:
            observe.produced(self.hooks, batch, -1, error)
        return batch

    def waiting_records(self) -> tuple[int, int]:
        """How many records wait to be sent (new or to retry), and how many are on the
        wire (read by the records-waiting gauge, not on any hot path)."""
        queued = sum(len(call.records) for call in self.queued)
        queued += sum(batch.record_count for batch in self.retry)
        return queued, sum(batch.record_count for batch in self.onwire)

    def requeue_failed(self, batches: Iterable[WireBatch]) -> None:
        """Put failed batches, given oldest first, at the front of the retry queue."""
        self.retry[:0] = batches

    def end_round(self, failures: Sequence[Failure], max_retries: int) -> RoundEnd:
        """Settle a round's failed batches, given in the order they were sent.

        Each goes back to the front of the retry queue, in order, unless it is given up:
        because it failed for good (``final``) or because it has been sent ``max_retries +
        1`` times already (``max_retries`` -1: never). *Every* batch out of attempts is
        given up, not only the first: one left behind would be sent again past its limit.
        The caller fails the batches given up (their receipts are not touched here) and
        acts on the :class:`SequenceGap`.
        """
        kept: list[WireBatch] = []
        given_up: list[tuple[WireBatch, BaseException]] = []
        order: list[tuple[WireBatch, bool]] = []
        for batch, error, final in failures:
            out = final or 0 <= max_retries < batch.attempts
            if out:
                given_up.append((batch, error))
            else:
                batch.cause = error
                kept.append(batch)
            order.append((batch, out))
        if not given_up:
            self.retry[:0] = kept
            return _NOTHING_GIVEN_UP
        order.extend((batch, False) for batch in self.retry)
        self.retry[:0] = kept
        return RoundEnd(given_up, sequence_gap(order))

    def attempt_failed(self, error: BaseException, max_retries: int) -> RoundEnd:
        """The first waiting batch could not be sent because its leader could not be
        reached: a real attempt to send it that failed, so it counts as one. Gives the
        batch up (see :meth:`end_round`) if that was its last."""
        if self.retry:
            batch = self.retry[0]
        elif self.queued:
            batch = self.take_batch()
            self.retry.insert(0, batch)
        else:
            return _NOTHING_GIVEN_UP
        batch.attempts += 1
        if not 0 <= max_retries < batch.attempts:
            batch.cause = error
            return _NOTHING_GIVEN_UP
        self.retry.pop(0)
        order = [(batch, True), *((pending, False) for pending in self.retry)]
        return RoundEnd([(batch, error)], sequence_gap(order))

    def fail_all(self, error: BaseException) -> None:
        """Fail every call in the buffer with ``error`` and empty it.

        Every receipt fails even if done-callbacks raise; their errors come out after.
        """
        batches = (*self.onwire, *self.retry)
        calls = list(self.queued)
        self.onwire.clear()
        self.retry.clear()
        self.queued.clear()
        self.queued_bytes = 0
        errors: list[Exception] | None = None
        for batch in batches:
            errors = _fail_calls(batch.calls, error, errors)
        errors = _fail_calls(calls, error, errors)
        if errors:
            raise_callback_errors(errors)
