"""The transactional producer: brod's ``brod_transaction`` in Trio form.

:func:`open_transactional_producer` (``client.transactional_producer(id)``) sends
InitProducerId with the transactional id. That fences any older producer with the same id
(it gets ProducerFencedError from then on) and makes the coordinator finish or abort that
producer's open transaction. Then :meth:`TransactionalProducer.transaction` blocks run one
after another::

    async with tp.transaction() as txn:     # commit on normal exit, abort otherwise
        await txn.produce("invoices", b"...", key=b"k")
        await txn.send_offsets(member, {("orders", 0): 43})

Records go through partition producers of the producer's own (the same workers as
``client.produce``, :mod:`trio_brod.producer.worker`), whose batches carry the producer id,
its epoch, sequence numbers and the transactional flag. Before a partition's first record
in a transaction the coordinator is told about the partition (AddPartitionsToTxn), except
under transactions v2.

The state (:mod:`trio_brod.transaction._state`) decides what is allowed; this module does
the I/O. Errors are sorted by what the caller can do (:mod:`trio_brod.transaction._errors`):
retriable coordinator errors are retried here within the transaction timeout, through
:class:`~trio_brod._backoff.Retry`; fatal ones make the producer unusable; anything else
makes the transaction abort.

Transactions v2 (KIP-890 part 2) is used when the transaction coordinator's broker
supports it (:func:`~trio_brod.transaction._state.transaction_version`: Kafka 4.x finalizes
``transaction.version`` 2 by default): partitions are added implicitly by Produce v12 and
groups by TxnOffsetCommit v5 (no AddPartitionsToTxn, no AddOffsetsToTxn), and every EndTxn
v5 bumps the epoch, which the producer adopts from the answer (its partition producers then
number from 0 again). An abort after a failed record needs no InitProducerId then: the
EndTxn's bump fences what the failure left behind. Otherwise (Kafka 3.x, or a 4.x cluster
kept at ``transaction.version`` 1) transactions v1 is used; such brokers check (KIP-890
part 1) that a partition was added before taking a transactional Produce, so a late record
cannot start a hanging transaction. The choice is made at InitProducerId and kept for the
producer's life.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import trio

from trio_brod._backoff import Retry
from trio_brod._cluster import CoordinatorType
from trio_brod._config_transaction import TransactionConfig
from trio_brod._exceptions import BrokerConnectionError, ProducerClosed
from trio_brod._log import producer_log as log
from trio_brod._util import unwrap_single_exception
from trio_brod.groups._coordinator import GroupCoordinator
from trio_brod.producer.identity import ProducerIdentity
from trio_brod.producer.topic import TopicProducer
from trio_brod.protocol import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    InitProducerIdRequest,
    ProduceRequest,
    TxnOffsetCommitRequest,
)
from trio_brod.protocol.errors import (
    BrodError,
    CoordinatorNotAvailableError,
    InvalidProducerEpochError,
    KafkaError,
    NotCoordinatorError,
    ProducerFencedError,
    TransactionalIdAuthorizationFailedError,
    for_code,
)
from trio_brod.transaction._errors import (
    AbortableTransactionError,
    FatalTransactionError,
    TransactionStateError,
)
from trio_brod.transaction._group import GroupMetadata, group_metadata
from trio_brod.transaction._state import (
    TV1_MAX_VERSIONS,
    TV2_VERSIONS,
    TransactionState,
    identity_after_end,
    transaction_version,
)
from trio_brod.transaction._txn import Transaction

if TYPE_CHECKING:
    from trio_brod._cluster import ConnectionPool, MetadataCache
    from trio_brod._metadata import BrokerMetadata

__all__ = [
    "GroupMetadata",
    "Transaction",
    "TransactionalProducer",
    "group_metadata",
    "is_fatal",
    "open_transactional_producer",
]

#: Errors that make a transactional producer unusable for good.
FATAL_ERRORS: Final = (
    ProducerFencedError,
    InvalidProducerEpochError,
    TransactionalIdAuthorizationFailedError,
)
#: Answers meaning the broker asked is not the coordinator (any more).
_MOVED: Final = (NotCoordinatorError, CoordinatorNotAvailableError)
#: Backoff of the coordinator requests' retries (seconds): first, and largest.
_RETRY_BACKOFF_START: Final = 0.002
_RETRY_BACKOFF_MAX: Final = 0.5
#: TxnOffsetCommit v3 is the first to carry the member's generation (KIP-447).
_TXN_COMMIT_MEMBER_VERSION: Final = 3
#: InitProducerId v3 is the first that bumps the epoch of a given producer id (KIP-360).
_INIT_BUMP_VERSION: Final = 3
#: AddPartitionsToTxn up to v3 is the client's form (v4+ is for brokers verifying).
_ADD_PARTITIONS_MAX_VERSION: Final = 3


def is_fatal(error: BaseException | None) -> bool:
    """Whether an error makes a transactional producer unusable (fenced, a stale epoch,
    the transactional id not authorised)."""
    return isinstance(error, (*FATAL_ERRORS, FatalTransactionError))


class _TransactionalIdentity(ProducerIdentity):
    """The producer id and epoch the coordinator gave; partition producers follow them."""

    def __init__(self, pool: ConnectionPool, transactional_id: str) -> None:
        super().__init__(pool)
        self.transactional_id = transactional_id

    async def initial(self) -> tuple[int, int]:
        await trio.lowlevel.checkpoint()
        return self.producer_id, self.epoch

    async def fresh(self) -> tuple[int, int]:
        await trio.lowlevel.checkpoint()
        raise FatalTransactionError("a transactional producer's epoch comes from its coordinator")


class TransactionalProducer:
    """A producer with a transactional id; made by
    :func:`~trio_brod.transaction.open_transactional_producer`.

    Attributes:
        transactional_id: The id.
        config: Its :class:`~trio_brod.TransactionConfig`.
        state: The pure state machine (:class:`~trio_brod.transaction._state.TransactionState`).
    """

    def __init__(
        self,
        pool: ConnectionPool,
        metadata: MetadataCache,
        transactional_id: str,
        config: TransactionConfig,
        nursery: trio.Nursery,
    ) -> None:
        if not isinstance(transactional_id, str) or not transactional_id:
            raise TypeError(f"transactional_id must be a non-empty str, not {transactional_id!r}")
        self.transactional_id = transactional_id
        self.config = config
        self.state = TransactionState()
        self._pool = pool
        self._metadata = metadata
        self._nursery = nursery
        self._producer_config = config.effective_producer_config
        self._identity = _TransactionalIdentity(pool, transactional_id)
        self._coordinator = GroupCoordinator(
            pool, metadata, transactional_id, key_type=CoordinatorType.TRANSACTION
        )
        self._group_coordinators: dict[str, GroupCoordinator] = {}
        self._topics: dict[str, TopicProducer] = {}
        self._topics_lock = trio.Lock()
        self._add_lock = trio.Lock()
        self._current: Transaction | None = None
        self._closed = False
        #: The partitions the last transaction wrote to. At the first partition a
        #: transaction adds, these are added with it, in the same AddPartitionsToTxn:
        #: a producer that writes to the same partitions in each transaction (the common
        #: case) then pays one round trip to the coordinator per transaction, not one per
        #: partition, each a write to the transaction log. A partition added but not
        #: written to costs a transaction marker at the end, nothing more.
        self.last_partitions: set[tuple[str, int]] = set()

    def __repr__(self) -> str:
        return (
            f"<TransactionalProducer {self.transactional_id!r} {self.state.state.value} "
            f"producer_id={self.producer_id} epoch={self.epoch}>"
        )

    @property
    def producer_id(self) -> int:
        """The producer id from InitProducerId (-1 before)."""
        return self._identity.producer_id

    @property
    def epoch(self) -> int:
        """Its current epoch."""
        return self._identity.epoch

    @property
    def coordinator(self) -> BrokerMetadata | None:
        """The transaction coordinator as last found (None while it must be looked up)."""
        return self._coordinator.broker

    # -- starting ------------------------------------------------------------------------

    async def initialize(self) -> None:
        """InitProducerId with the transactional id: fence older instances, get the id.

        Raises:
            FatalTransactionError: Fenced (a newer instance started meanwhile) or not
                authorised.
            KafkaError, BrokerConnectionError: The coordinator refused for another reason,
                or could not be reached within ``transaction_timeout``.
        """
        self.state.start_init()
        producer_id, epoch = await self._init_producer_id(bump=False)
        self._identity.producer_id, self._identity.epoch = producer_id, epoch
        _broker, connection = await self._coordinator.connection()
        version = transaction_version(connection.finalized_features, connection.api_versions)
        if version >= 2:
            produce = TV2_VERSIONS[ProduceRequest.API_KEY]
            self._identity.produce_versions = (produce, produce)
        self.state.init_done(version)
        log.info(
            "transactional producer %r: producer id %d, epoch %d, transactions v%d",
            self.transactional_id,
            producer_id,
            epoch,
            version,
        )

    @property
    def transaction_version(self) -> int:
        """The transaction protocol in use: 2 (KIP-890 transactions v2, where the broker
        supports it) or 1."""
        return self.state.transaction_version

    def _versions(self, api: Any) -> tuple[int | None, int]:
        """The (lowest, highest) version of a request that changes meaning under
        transactions v2 (Produce, EndTxn, TxnOffsetCommit) for the protocol in use."""
        if self.state.transaction_version >= 2:
            return TV2_VERSIONS[api.API_KEY], TV2_VERSIONS[api.API_KEY]
        return None, TV1_MAX_VERSIONS[api.API_KEY]

    async def _init_producer_id(self, *, bump: bool) -> tuple[int, int]:
        def build(version: int) -> InitProducerIdRequest:
            request = InitProducerIdRequest(
                transactional_id=self.transactional_id,
                transaction_timeout_ms=self.config.transaction_timeout_ms,
            )
            if bump and version >= _INIT_BUMP_VERSION:
                request.producer_id = self._identity.producer_id
                request.producer_epoch = self._identity.epoch
            return request

        response = await self._call(
            self._coordinator, InitProducerIdRequest, build, lambda r: [r.error_code]
        )
        return response.producer_id, response.producer_epoch

    # -- coordinator requests ------------------------------------------------------------

    async def _call(
        self,
        coordinator: GroupCoordinator,
        api: Any,
        build: Callable[[int], Any],
        codes: Callable[[Any], Iterable[int]],
        *,
        min_version: int | None = None,
        max_version: int | None = None,
    ) -> Any:
        """Send a request to a coordinator until it has no error, retrying the retriable
        ones (CONCURRENT_TRANSACTIONS, a coordinator loading or moved, a lost connection)
        for up to ``transaction_timeout``.

        Raises:
            FatalTransactionError: A fatal answer (the state is made fatal too).
            KafkaError, BrokerConnectionError: Anything else, or retriable errors that
                outlasted the timeout.
        """
        # A short first backoff: CONCURRENT_TRANSACTIONS right after a commit (the coordinator
        # is still writing the markers of the previous transaction) clears in milliseconds,
        # and every transaction's first AddPartitionsToTxn meets it. Measured on one local
        # broker, back-to-back transactions of 1,000 records spent 15 ms before their first
        # record with a 10 ms first backoff, 8 ms with 2 ms; the backoff doubles from there,
        # so a coordinator that is loading or moving costs only a few more quick tries.
        retry = Retry(
            self.config.transaction_timeout, base=_RETRY_BACKOFF_START, cap=_RETRY_BACKOFF_MAX
        )
        while True:
            try:
                response = await coordinator.request_versioned(
                    api, build, min_version=min_version, max_version=max_version
                )
                error_code = next((code for code in codes(response) if code), 0)
                if not error_code:
                    return response
                raise for_code(error_code)(transactional_id=self.transactional_id)
            except (KafkaError, BrokerConnectionError) as exc:
                if is_fatal(exc):
                    raise self._fatal(exc) from None
                if not exc.retriable or retry.expired:
                    raise
                if isinstance(exc, _MOVED):
                    coordinator.mark_dead()
                log.debug("transactional producer %r: retrying: %s", self.transactional_id, exc)
            await retry.wait()

    def _fatal(self, error: BaseException) -> FatalTransactionError:
        """Make the producer unusable for good; the error every later call raises."""
        if self.state.fatal is None:
            log.warning("transactional producer %r is unusable: %s", self.transactional_id, error)
            self.state.fail_fatal(
                FatalTransactionError(
                    f"transactional producer {self.transactional_id!r} is unusable: {error}",
                    error,
                )
            )
        assert self.state.fatal is not None
        return self.state.fatal

    def _abortable(self, message: str, error: BaseException | None) -> BrodError:
        """The error a failed step raises: fatal if its cause is, else abortable (and the
        open transaction must abort)."""
        if is_fatal(error):
            assert error is not None
            return self._fatal(error)
        exc = AbortableTransactionError(message, error)
        self.state.fail_abortable(exc)
        return exc

    async def _add_partitions(
        self, partitions: Sequence[tuple[str, int]], *, predicted: Iterable[tuple[str, int]] = ()
    ) -> None:
        """Add ``partitions`` to the open transaction, with ``predicted`` ones in the same
        request (see :attr:`last_partitions`); if that fails, ``partitions`` alone are
        tried before the transaction is given up (a predicted topic may be gone)."""
        async with self._add_lock:
            wanted = self.state.partitions_to_add(partitions)
            if not wanted:
                return
            extra = self.state.partitions_to_add(predicted)
            if extra:
                try:
                    await self._send_add(sorted({*wanted, *extra}))
                except FatalTransactionError:
                    raise
                except (KafkaError, BrokerConnectionError) as exc:
                    log.info("adding the predicted partitions failed (%s): without them", exc)
                    self.last_partitions = set()
                else:
                    return
            try:
                await self._send_add(wanted)
            except (KafkaError, BrokerConnectionError) as exc:
                raise self._abortable(f"could not add {wanted} to the transaction", exc) from exc

    async def _send_add(self, wanted: list[tuple[str, int]]) -> None:
        topics: dict[str, list[int]] = {}
        for topic, partition in wanted:
            topics.setdefault(topic, []).append(partition)

        def build(version: int) -> AddPartitionsToTxnRequest:
            return AddPartitionsToTxnRequest(
                v3_and_below_transactional_id=self.transactional_id,
                v3_and_below_producer_id=self._identity.producer_id,
                v3_and_below_producer_epoch=self._identity.epoch,
                v3_and_below_topics=[
                    AddPartitionsToTxnRequest.AddPartitionsToTxnTopic(name=t, partitions=ps)
                    for t, ps in topics.items()
                ],
            )

        def codes(response: Any) -> list[int]:
            return [response.error_code] + [
                p.partition_error_code
                for t in response.results_by_topic_v3_and_below
                for p in t.results_by_partition
            ]

        await self._call(
            self._coordinator,
            AddPartitionsToTxnRequest,
            build,
            codes,
            max_version=_ADD_PARTITIONS_MAX_VERSION,
        )
        self.state.partitions_added(wanted)

    async def _send_offsets(
        self, group: GroupMetadata, offsets: Mapping[tuple[str, int], int]
    ) -> None:
        self.state.check_can_produce()
        try:
            if self.state.needs_offsets_added(group.group_id):
                await self._call(
                    self._coordinator,
                    AddOffsetsToTxnRequest,
                    lambda _version: AddOffsetsToTxnRequest(
                        transactional_id=self.transactional_id,
                        producer_id=self._identity.producer_id,
                        producer_epoch=self._identity.epoch,
                        group_id=group.group_id,
                    ),
                    lambda r: [r.error_code],
                )
                self.state.offsets_added(group.group_id)
            coordinator = self._group_coordinators.get(group.group_id)
            if coordinator is None:
                coordinator = GroupCoordinator(self._pool, self._metadata, group.group_id)
                self._group_coordinators[group.group_id] = coordinator
            topics: dict[str, list[TxnOffsetCommitRequest.TxnOffsetCommitRequestPartition]] = {}
            for (topic, partition), offset in sorted(offsets.items()):
                topics.setdefault(topic, []).append(
                    TxnOffsetCommitRequest.TxnOffsetCommitRequestPartition(
                        partition_index=partition, committed_offset=offset
                    )
                )

            def build(version: int) -> TxnOffsetCommitRequest:
                request = TxnOffsetCommitRequest(
                    transactional_id=self.transactional_id,
                    group_id=group.group_id,
                    producer_id=self._identity.producer_id,
                    producer_epoch=self._identity.epoch,
                    topics=[
                        TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic(name=t, partitions=ps)
                        for t, ps in topics.items()
                    ],
                )
                if version >= _TXN_COMMIT_MEMBER_VERSION:
                    request.generation_id = group.generation_id
                    request.member_id = group.member_id
                    request.group_instance_id = group.group_instance_id
                return request

            low, high = self._versions(TxnOffsetCommitRequest)
            await self._call(
                coordinator,
                TxnOffsetCommitRequest,
                build,
                lambda r: [p.error_code for t in r.topics for p in t.partitions],
                min_version=low,
                max_version=high,
            )
        except (KafkaError, BrokerConnectionError) as exc:
            raise self._abortable(
                f"the offsets of group {group.group_id!r} were refused: {exc}", exc
            ) from exc

    async def _end_txn(self, *, commit: bool) -> None:
        """EndTxn; under transactions v2 the producer goes on with the id and epoch its
        answer carries (the coordinator bumped the epoch), its partition producers'
        sequence numbers then start again at 0."""
        low, high = self._versions(EndTxnRequest)
        response = await self._call(
            self._coordinator,
            EndTxnRequest,
            lambda _version: EndTxnRequest(
                transactional_id=self.transactional_id,
                producer_id=self._identity.producer_id,
                producer_epoch=self._identity.epoch,
                committed=commit,
            ),
            lambda r: [r.error_code],
            min_version=low,
            max_version=high,
        )
        identity = self._identity
        current = (identity.producer_id, identity.epoch)
        answered = (response.producer_id, response.producer_epoch)
        identity.producer_id, identity.epoch = identity_after_end(current, answered)

    # -- partition producers -------------------------------------------------------------

    async def _topic(self, topic: str) -> TopicProducer:
        producer = self._topics.get(topic)
        if producer is not None:
            return producer
        if not isinstance(topic, str):
            raise TypeError(f"topic must be a str, not {type(topic).__name__}: {topic!r:.100}")
        async with self._topics_lock:
            producer = self._topics.get(topic)
            if producer is None:
                producer = TopicProducer(
                    self._metadata, topic, self._producer_config, self._identity
                )
                await self._nursery.start(
                    producer.run, name=f"trio_brod transactional producers {topic}"
                )
                self._topics[topic] = producer
        return producer

    async def _close_topics(self) -> None:
        for producer in self._topics.values():
            producer.close()
        with trio.move_on_after(self._producer_config.flush_timeout):
            for producer in self._topics.values():
                await producer.finished.wait()
        for producer in self._topics.values():
            if not producer.finished.is_set():
                producer.abort(ProducerClosed("the transactional producer closed"))

    # -- transactions --------------------------------------------------------------------

    def _check_usable(self) -> None:
        self.state.raise_if_fatal()
        if self._closed:
            raise TransactionStateError(
                f"transactional producer {self.transactional_id!r} is closed"
            )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A transaction: commit when the block ends normally, abort when it raises or is
        cancelled (the abort is shielded from the cancellation, for up to ``end_timeout``).

        Raises:
            FatalTransactionError: The producer is unusable (now or while committing).
            AbortableTransactionError: The transaction could not commit and was aborted
                (a record failed, offsets were refused, a timeout); the next may.
            TransactionStateError: A transaction is open already on this producer.
        """
        self._check_usable()
        self.state.begin()
        txn = Transaction(self)
        self._current = txn
        try:
            try:
                yield txn
            except BaseException:
                txn.open = False
                with trio.CancelScope(shield=True):
                    await self._abort(txn)
                raise
            txn.open = False
            await self._commit(txn)
        finally:
            self._current = None
            if txn.workers:
                self.last_partitions = {(w.topic, w.partition) for w in txn.workers}

    async def _flush(self, txn: Transaction) -> BaseException | None:
        """Wait until every record of the transaction is acknowledged or failed; return
        the first failure."""
        for worker in txn.workers:
            await worker.flush()
        for receipt in txn.receipts:
            error = receipt.exception()
            if error is not None:
                return error
        return None

    async def _commit(self, txn: Transaction) -> None:
        try:
            with trio.move_on_at(txn.deadline) as timeout:
                error = await self._flush(txn)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._abort(txn)
            raise
        if timeout.cancelled_caught:
            error = AbortableTransactionError(
                "the transaction's records were not all acknowledged within "
                f"transaction_timeout={self.config.transaction_timeout}"
            )
        if error is not None:
            exc = self._abortable(f"a record of the transaction failed: {error}", error)
            with trio.CancelScope(shield=True):
                await self._abort(txn)
            raise exc
        needed = self.state.begin_commit()
        if needed:
            try:
                # Shielded: once EndTxn is sent, whether it committed must be known.
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + self.config.end_timeout
                    await self._end_txn(commit=True)
                if scope.cancelled_caught:
                    raise AbortableTransactionError(
                        f"EndTxn (commit) took longer than end_timeout={self.config.end_timeout}"
                    )
            except (KafkaError, BrokerConnectionError, AbortableTransactionError) as error_:
                exc = self._abortable(f"the commit failed: {error_}", error_)
                with trio.CancelScope(shield=True):
                    await self._abort(txn)
                raise exc from error_
        self.state.end_done()
        txn.committed = True

    async def _abort(self, txn: Transaction) -> None:
        """Abort the transaction (from a shielded scope), bounded by ``end_timeout``.

        Never raises: a fatal error is kept in the state (every later call raises it); an
        abort that fails otherwise (INVALID_TXN_STATE, a timeout) is recovered from by
        having the coordinator bump the epoch (InitProducerId with our id and epoch), which
        aborts whatever it still had open.
        """
        try:
            needed = self.state.begin_abort()
        except (FatalTransactionError, TransactionStateError):
            return
        bump = False
        with trio.move_on_after(self.config.end_timeout) as scope:
            try:
                error = await self._flush(txn)
                # A failed record may have left the sequence numbers out of step: a new
                # epoch must fence them. Under transactions v2 the EndTxn bumps it.
                bump = error is not None and not (needed and self.state.transaction_version >= 2)
                if needed:
                    await self._end_txn(commit=False)
            except FatalTransactionError:
                return
            except (KafkaError, BrokerConnectionError) as exc:
                log.warning(
                    "transactional producer %r: abort failed (%s); bumping the epoch instead",
                    self.transactional_id,
                    exc,
                )
                bump = True
        if scope.cancelled_caught:
            bump = True
        if bump:
            with trio.move_on_after(self.config.end_timeout):
                try:
                    await self._bump_epoch(txn)
                except FatalTransactionError:
                    return
                except (KafkaError, BrokerConnectionError) as exc:
                    self._fatal(exc)
                    return
            if self.state.fatal is not None:
                return
        self.state.end_done()

    async def _bump_epoch(self, txn: Transaction) -> None:
        """Fail what is still buffered (its topics' producers start afresh), then have
        the coordinator bump the epoch: sequence numbers start again at 0."""
        for topic in sorted({w.topic for w in txn.workers}):
            producer = self._topics.pop(topic, None)
            if producer is not None:
                producer.abort(AbortableTransactionError("the transaction was aborted"))
        producer_id, epoch = await self._init_producer_id(bump=True)
        self._identity.producer_id, self._identity.epoch = producer_id, epoch

    async def aclose(self) -> None:
        """Stop the partition producers. A transaction still open is not touched (its
        block aborts it); nothing is raised for an earlier fatal error."""
        self._closed = True
        await self._close_topics()


@asynccontextmanager
async def open_transactional_producer(
    pool: ConnectionPool,
    metadata: MetadataCache,
    transactional_id: str,
    config: TransactionConfig | None = None,
) -> AsyncIterator[TransactionalProducer]:
    """Start a transactional producer for the block (``client.transactional_producer``).

    InitProducerId fences any older producer with the same id and ends its open
    transaction. Leaving the block stops the producer's partition producers. It does not
    raise an earlier fatal error again: that was raised where it happened.

    Raises:
        FatalTransactionError: Fenced or not authorised at the start.
    """
    if config is None:
        config = TransactionConfig()
    with unwrap_single_exception():
        async with trio.open_nursery() as nursery:
            producer = TransactionalProducer(pool, metadata, transactional_id, config, nursery)
            try:
                await producer.initialize()
                yield producer
            finally:
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + max(
                        config.end_timeout, config.effective_producer_config.flush_timeout
                    )
                    await producer.aclose()
                nursery.cancel_scope.cancel()
