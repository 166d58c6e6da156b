"""Idempotence: the client's producer id, and each partition's epoch and sequence numbers.

With idempotence (the default) every record batch carries a producer id, an epoch and the
sequence number of its first record. The broker keeps, per partition, the last sequence
numbers it wrote for each producer id, and so drops a retry it has written already and
refuses a batch that would leave a gap. :class:`ProducerIdentity` is the id the client's
partition producers share; :class:`SequenceState` is one partition's place in it, which the
partition producer asks to number its batches and tells what went wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar, Final

import trio

from trio_brod._backoff import Retry
from trio_brod._exceptions import BrokerConnectionError
from trio_brod._log import producer_log
from trio_brod.producer._buffer import SequenceGap, WireBatch
from trio_brod.protocol import InitProducerIdRequest
from trio_brod.protocol.errors import (
    InvalidProducerEpochError,
    KafkaError,
    OutOfOrderSequenceNumberError,
    ProducerFencedError,
    UnknownProducerIdError,
    for_code,
)

if TYPE_CHECKING:
    from trio_brod._cluster import ConnectionPool

__all__ = ["ProducerIdentity", "ProducerState", "SequenceState"]

#: Backoff between InitProducerId attempts (the broker may still be loading its state).
_INIT_BACKOFF_START: Final = 0.05
_INIT_BACKOFF_MAX: Final = 1.0
#: Epochs are int16 on the wire; past the last one a partition needs a fresh producer id.
MAX_EPOCH: Final = 32767
#: Sequence numbers are int32 and wrap around to 0 after the largest.
_SEQUENCE_MASK: Final = 0x7FFFFFFF

#: The broker lost track of our sequence numbers: a new epoch starts them again at 0.
_NEW_EPOCH_CODES: Final = frozenset(
    {OutOfOrderSequenceNumberError.code, UnknownProducerIdError.code}
)
#: The broker has seen a newer epoch of our producer id: only a fresh id will do.
_NEW_ID_CODES: Final = frozenset({InvalidProducerEpochError.code, ProducerFencedError.code})
#: The error codes of a Produce response that :meth:`SequenceState.sequence_error` handles.
SEQUENCE_CODES: Final = _NEW_EPOCH_CODES | _NEW_ID_CODES

# What a partition producer must do to its producer state before the next round.
_KEEP: Final = 0
_NEW_EPOCH: Final = 1
_NEW_ID: Final = 2

#: Where a partition producer's idempotence state stands: (producer id, epoch, next sequence).
ProducerState = tuple[int, int, int]


class ProducerIdentity:
    """The producer id that a client's idempotent partition producers start from.

    Obtained lazily, once, with InitProducerId (any broker answers it for a producer without
    a transactional id). The broker keeps producer state per partition, so from there on
    each partition producer keeps its own epoch and sequence numbers. When one finds its
    sequence numbers out of step with the broker's (a batch given up on left a gap, or the
    broker forgot the producer), it bumps *its own* epoch and starts again at sequence 0, as
    the Java client does since KIP-360; the broker accepts a higher epoch that starts at 0.
    The other partitions are not disturbed, which matters: re-sequencing a partition whose
    batches may already be written would let their retries be written twice.

    A partition producer that ends (``stop_producer``) leaves its state here, so that a new
    one for the same partition goes on from it instead of starting at an epoch the broker
    would call stale.
    """

    #: The (lowest, highest) Produce version of partition producers outside transactions v2:
    #: v3 is the first to carry v2 record batches, which trio-brod writes. Produce v12 is v11
    #: on the wire, but in a transaction under transactions v2 (KIP-890 part 2) it also adds
    #: the partition to the transaction, so a transactional producer may send it only then;
    #: idempotent and plain producers have nothing to gain from it and stay at v11.
    PLAIN_PRODUCE: ClassVar[tuple[int, int]] = (3, 11)

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        #: None for the client's idempotent producers; a transactional producer's id (its
        #: partition producers then take the producer id and epoch from here, as the
        #: transaction coordinator gives them, and never start epochs of their own).
        self.transactional_id: str | None = None
        self.producer_id = -1
        self.epoch = -1
        #: The (lowest, highest) Produce version its partition producers send.
        self.produce_versions = self.PLAIN_PRODUCE
        self._lock = trio.Lock()
        self._left: dict[tuple[str, int], ProducerState] = {}

    async def initial(self) -> tuple[int, int]:
        """The shared (producer id, epoch), initialising them on first use."""
        if self.producer_id < 0:
            async with self._lock:
                if self.producer_id < 0:
                    self.producer_id, self.epoch = await self.fresh()
        return self.producer_id, self.epoch

    async def fresh(self) -> tuple[int, int]:
        """A new producer id and its epoch, from InitProducerId.

        Retriable failures (a broker still loading its transaction state right after it
        started, a lost connection) are retried with a short backoff for up to the client's
        ``request_timeout``: they are not the messages' fault, so they should not use up
        the messages' retries.
        """
        retry = Retry(
            self._pool.config.request_timeout, base=_INIT_BACKOFF_START, cap=_INIT_BACKOFF_MAX
        )
        while True:
            try:
                return await self._init_producer_id()
            except (KafkaError, BrokerConnectionError) as exc:
                if not exc.retriable or retry.expired:
                    raise
            await retry.wait()

    async def _init_producer_id(self) -> tuple[int, int]:
        connection = await self._pool.any_connection()
        version = connection.best_version(InitProducerIdRequest)
        request = InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=2**31 - 1)
        response = await connection.request(request, version)
        if response.error_code:
            raise for_code(response.error_code)("InitProducerId failed")
        return response.producer_id, response.producer_epoch

    def leave(self, topic: str, partition: int, state: ProducerState) -> None:
        """Remember where a partition producer that is ending left off."""
        self._left[topic, partition] = state

    def take(self, topic: str, partition: int) -> ProducerState | None:
        """Where the previous producer of a partition left off, if there was one."""
        return self._left.pop((topic, partition), None)


class SequenceState:
    """One partition's producer id, epoch and next sequence number, and what must change.

    The partition producer numbers each batch with :meth:`number` when it first sends it,
    and tells this object what went wrong: a gap it made by giving up a batch
    (:meth:`note_gap`, :meth:`new_epoch_due`) or the broker's sequence and epoch errors
    (:meth:`sequence_error`). Between rounds, when :attr:`needs_update` says so, it calls
    :meth:`update`, which starts a new epoch or gets a fresh producer id; the numbers then
    start again at 0.

    Attributes:
        producer_id: The producer id batches are sent with (-1 until the first
            :meth:`update`).
        epoch: Its epoch.
        next_sequence: The sequence number of the next record.
    """

    __slots__ = (
        "_identity",
        "_reset",
        "_unresolved",
        "epoch",
        "next_sequence",
        "partition",
        "producer_id",
        "topic",
    )

    def __init__(self, identity: ProducerIdentity, topic: str, partition: int) -> None:
        self._identity = identity
        self.topic = topic
        self.partition = partition
        self.producer_id = -1
        self.epoch = -1
        self.next_sequence = 0
        self._reset = _KEEP
        # Set when batches were given up that may be in the log, while batches that may be
        # in the log too are pending: their numbers stay, and an OUT_OF_ORDER_SEQUENCE_NUMBER
        # for the next one is the gap the producer made, not the batch's fault.
        self._unresolved = False

    @property
    def needs_update(self) -> bool:
        """Whether :meth:`update` must run before anything more is sent."""
        if self.producer_id < 0 or self._reset != _KEEP:
            return True
        identity = self._identity
        # A transactional producer's epoch moves when its coordinator bumps it.
        return identity.transactional_id is not None and (
            identity.producer_id != self.producer_id or identity.epoch != self.epoch
        )

    def current(self) -> tuple[int, int]:
        """The producer id and epoch to number a new batch under.

        A transactional producer's partition follows its coordinator's at once: under
        transactions v2 every EndTxn moves the epoch, and the next transaction's first batch
        must carry the new one, numbered from 0. A batch numbered under the old epoch would
        be written into the transaction that just ended (its commit marker carries the new
        epoch). Nothing of the old epoch is in flight then: a transaction ends only once all
        its batches are settled (or its partition producers are stopped).
        """
        identity = self._identity
        if identity.transactional_id is not None and (
            identity.producer_id != self.producer_id or identity.epoch != self.epoch
        ):
            self.producer_id, self.epoch = identity.producer_id, identity.epoch
            self.next_sequence = 0
            self._reset = _KEEP
            self._unresolved = False
        return self.producer_id, self.epoch

    def number(self, record_count: int) -> int:
        """The first sequence number for a batch of ``record_count`` records, taken."""
        sequence = self.next_sequence
        self.next_sequence = (sequence + record_count) & _SEQUENCE_MASK
        return sequence

    def new_epoch_due(self) -> None:
        """A gap is known that nothing pending can fall into: renumber under a new epoch."""
        self._reset = max(self._reset, _NEW_EPOCH)

    def note_gap(self, gap: SequenceGap) -> None:
        """Batches were given up (see :func:`~trio_brod.producer._buffer.sequence_gap`):
        a new epoch before anything more is sent, or, when that could write a pending batch
        twice, the old numbers until the broker's answer tells."""
        if gap is SequenceGap.RENUMBER:
            self.new_epoch_due()
        elif gap is SequenceGap.UNRESOLVED:
            self._unresolved = True

    def sequence_error(
        self,
        code: int,
        error: BaseException,
        batch: WireBatch,
        round_error: BaseException | None,
    ) -> BaseException:
        """Note what a sequence or epoch error (a code of :data:`SEQUENCE_CODES`) asks for;
        return the batch's real cause.

        ``round_error`` is the first error of the round the batch was sent in, if any.
        """
        if code in _NEW_ID_CODES:
            # The broker knows a newer epoch of our producer id: only a fresh id will do.
            self._reset = _NEW_ID
            return error
        if round_error is not None:
            # Refused only because a batch ahead of it failed this round: that is the cause.
            return round_error
        # The first failure of the round: a real gap, or a broker that forgot us.
        self.new_epoch_due()
        if self._unresolved and batch.cause is not None:
            # The gap a batch given up left (see note_gap): the producer made it.
            return batch.cause
        return error

    async def update(self, retry: Iterable[WireBatch]) -> None:
        """Get the producer id to send with, or change it as the last round asked.

        ``retry`` holds the batches waiting to be sent again: they are renumbered.
        """
        identity = self._identity
        if identity.transactional_id is not None:
            self._update_transactional(retry)
            return
        if self.producer_id < 0:
            left = identity.take(self.topic, self.partition)
            if left is not None and left[0] >= 0:
                self.producer_id, self.epoch, self.next_sequence = left
                return
            if left is not None:  # the previous producer left a gap and no epoch to bump
                producer_id, epoch = await identity.fresh()
            else:
                producer_id, epoch = await identity.initial()
        elif self._reset == _NEW_EPOCH and self.epoch < MAX_EPOCH:
            producer_id, epoch = self.producer_id, self.epoch + 1
            producer_log.info(
                "%s[%d]: new epoch %d of producer id %d (its sequence numbers start again)",
                self.topic,
                self.partition,
                epoch,
                producer_id,
            )
        else:
            producer_id, epoch = await identity.fresh()
            producer_log.info(
                "%s[%d]: new producer id %d (epoch %d)",
                self.topic,
                self.partition,
                producer_id,
                epoch,
            )
        self.producer_id, self.epoch, self.next_sequence = producer_id, epoch, 0
        self._reset = _KEEP
        self._unresolved = False
        # Nothing is on the wire between rounds; what waits to be sent again gets new
        # sequence numbers (its bytes stay; only the producer fields are rewritten). Under
        # them the broker has never seen it.
        for batch in retry:
            batch.base_sequence = -1
            batch.maybe_written = False

    def _update_transactional(self, retry: Iterable[WireBatch]) -> None:
        """A transactional producer's partition: take the coordinator's producer id and
        epoch; sequence numbers start at 0 under a new epoch.

        It may not start an epoch of its own: when its numbers are out of step with the
        broker's under the current epoch, what it has fails (the transaction must abort),
        until the transactional producer has the coordinator bump the epoch.

        Raises:
            InvalidProducerEpochError: The broker knows a newer epoch (fenced).
            OutOfOrderSequenceNumberError: The sequence numbers are out of step.
        """
        identity = self._identity
        if identity.producer_id == self.producer_id and identity.epoch == self.epoch:
            if self._reset == _NEW_ID:
                raise InvalidProducerEpochError(
                    "the broker knows a newer epoch of this transactional producer"
                )
            raise OutOfOrderSequenceNumberError(
                "the transaction's sequence numbers are out of step; it must abort"
            )
        self.producer_id, self.epoch, self.next_sequence = identity.producer_id, identity.epoch, 0
        self._reset = _KEEP
        self._unresolved = False
        for batch in retry:
            batch.base_sequence = -1
            batch.maybe_written = False

    def leave(self, holds_sequenced_batches: bool) -> None:
        """The partition producer is ending: leave its state to the next one, if it has any.

        If batches with sequence numbers are about to be failed unsent or unacknowledged
        (``holds_sequenced_batches``, or a gap is already known), the next producer must not
        continue the numbers: it starts a new epoch at 0 (or, past the last epoch or when a
        fresh id was due, gets a fresh producer id: a negative id says so). The broker then
        also refuses any request of this producer's that it has not handled yet, as it is of
        an older epoch.
        """
        if self.producer_id < 0:
            return
        state: ProducerState
        if self._reset == _KEEP and not (self._unresolved or holds_sequenced_batches):
            state = (self.producer_id, self.epoch, self.next_sequence)
        elif self._reset == _NEW_ID or self.epoch >= MAX_EPOCH:
            state = (-1, -1, 0)
        else:
            state = (self.producer_id, self.epoch + 1, 0)
        self._identity.leave(self.topic, self.partition, state)
