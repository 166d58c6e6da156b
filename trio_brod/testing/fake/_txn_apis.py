"""The fake Kafka's transaction coordinator on the wire: InitProducerId (with a
transactional id), AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn, the
checks of transactional Produce, the markers, and the transaction timeout.

The rules live in :mod:`._transactions` (pure, driven by hypothesis in the unit tests);
this module checks that the request reached the transactional id's (or, for
TxnOffsetCommit, the group's) coordinator, translates requests and answers, writes the
commit or abort markers to every partition of an ended transaction through
:meth:`PartitionLog.append_control <._log.PartitionLog.append_control>` (the partition logs
then lower the last stable offset and keep the aborted ranges), publishes a committed
transaction's offsets to the group coordinator, and runs the timeout timer as one task in
:attr:`FakeCluster.nursery`, on Trio's clock: under ``MockClock(autojump_threshold=0)`` a
transaction timeout takes no wall time.

Transactions v1 only: AddPartitionsToTxn v0-3, AddOffsetsToTxn v0-4, TxnOffsetCommit v0-4,
EndTxn v0-4, and Produce up to v11, with no ``transaction.version`` feature finalized, so
clients do not use KIP-890's implicit AddPartitions. PRODUCER_FENCED is answered as
INVALID_PRODUCER_EPOCH to versions before KIP-588 (InitProducerId v0-3, the others v0-1),
as Kafka does.
"""

from __future__ import annotations

from typing import Any

import trio

from trio_brod.protocol import (
    AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    EndTxnRequest,
    EndTxnResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)
from trio_brod.protocol.errors import (
    CoordinatorNotAvailableError,
    FencedInstanceIdError,
    IllegalGenerationError,
    InvalidProducerEpochError,
    KafkaError,
    NotCoordinatorError,
    OperationNotAttemptedError,
    ProducerFencedError,
    StaleMemberEpochError,
    UnknownMemberIdError,
    UnknownTopicOrPartitionError,
)
from trio_brod.protocol.records import ControlRecordType, encode_control_batch
from trio_brod.testing.fake._group_apis import GroupCoordinator
from trio_brod.testing.fake._groups import DEAD, EMPTY, Committed
from trio_brod.testing.fake._model import ModelError
from trio_brod.testing.fake._runtime import Api, FakeCluster, RequestContext
from trio_brod.testing.fake._transactions import Ended, Transactions

__all__ = ["TransactionCoordinator", "install_transaction_apis"]

#: The first version of each API that may answer PRODUCER_FENCED (KIP-588).
_FENCED_SINCE = {
    InitProducerIdRequest.API_KEY: 4,
    AddPartitionsToTxnRequest.API_KEY: 2,
    AddOffsetsToTxnRequest.API_KEY: 2,
    EndTxnRequest.API_KEY: 2,
    TxnOffsetCommitRequest.API_KEY: 2,
}
#: TxnOffsetCommit carries the member's generation from this version on (KIP-447).
_TXN_COMMIT_MEMBER_VERSION = 3


def _code(error: type[KafkaError] | None, ctx: RequestContext, api_key: int) -> int:
    """An error's code as this request's version knows it."""
    if error is None:
        return 0
    if error is ProducerFencedError and ctx.version < _FENCED_SINCE[api_key]:
        return InvalidProducerEpochError.code
    return error.code


class TransactionCoordinator:
    """The transactional ids of a fake cluster, their markers, and the timeout timer."""

    def __init__(self, cluster: FakeCluster, groups: GroupCoordinator) -> None:
        self.cluster = cluster
        self.groups = groups
        self.transactions: Transactions[Committed] = Transactions(cluster.model.new_producer_id)
        self._changed = trio.Event()
        self._timer_started = False

    # -- plumbing ------------------------------------------------------------------------

    def changed(self) -> None:
        """Wake the timer (a transaction opened or ended)."""
        self._changed.set()
        self._changed = trio.Event()

    def ensure_timer(self) -> None:
        """Start the timeout timer in the fake's nursery (once)."""
        if not self._timer_started and self.cluster.nursery is not None:
            self._timer_started = True
            self.cluster.nursery.start_soon(self._run_timer)

    async def _run_timer(self) -> None:
        while True:
            deadline = self.transactions.next_deadline()
            with trio.move_on_at(deadline if deadline is not None else float("inf")):
                await self._changed.wait()
            for ended in self.transactions.expire(trio.current_time()):
                self.complete(ended)

    def refused(self, ctx: RequestContext, key: str) -> int:
        """NOT_COORDINATOR unless this broker coordinates *key*, else 0."""
        self.ensure_timer()
        if ctx.cluster.coordinator_for(key) != ctx.broker:
            return NotCoordinatorError.code
        return 0

    def complete(self, ended: Ended[Committed]) -> None:
        """Write an ended transaction's markers and, on commit, publish its offsets."""
        control = ControlRecordType.COMMIT if ended.commit else ControlRecordType.ABORT
        marker = encode_control_batch(
            control,
            producer_id=ended.producer_id,
            producer_epoch=ended.epoch,
            coordinator_epoch=0,
            timestamp_ms=int(trio.current_time() * 1000),
        )
        for topic, index in ended.partitions:
            try:
                partition = self.cluster.model.partition(topic, index)
            except ModelError:  # deleted meanwhile: nothing to mark
                continue
            partition.log.append_control(marker, leader_epoch=partition.leader_epoch)
        for group_id, offsets in ended.offsets.items():
            for (topic, index), committed in offsets.items():
                self.groups.groups.commit(group_id, topic, index, committed)
        self.cluster.data_changed()
        self.changed()

    def verify_produce(
        self, transactional_id: str, topic: str, partition: int, producer_id: int, epoch: int
    ) -> int:
        """The Produce hook: 0 if a transactional batch may be written, else its error."""
        error = self.transactions.verify_produce(
            transactional_id, topic, partition, producer_id, epoch
        )
        return 0 if error is None else error.code

    def aborted_transactions(
        self, topic: str, partition: int, start: int, upto: int
    ) -> list[tuple[int, int]]:
        """The Fetch hook: the aborted transactions a read_committed fetch is told about."""
        try:
            log = self.cluster.model.partition(topic, partition).log
        except ModelError:
            return []
        return log.aborted_between(start, upto)

    # -- handlers ------------------------------------------------------------------------

    async def init_producer_id(
        self, ctx: RequestContext, request: InitProducerIdRequest
    ) -> InitProducerIdResponse:
        """InitProducerId with a transactional id: a new producer id or a bumped epoch,
        fencing older instances (their open transaction is aborted first).
        """
        key = InitProducerIdRequest.API_KEY
        transactional_id = request.transactional_id or ""
        error = self.refused(ctx, transactional_id)
        if error:
            return InitProducerIdResponse(error_code=error, producer_id=-1, producer_epoch=-1)
        expected = (request.producer_id, request.producer_epoch) if ctx.version >= 3 else (-1, -1)
        result = self.transactions.init(transactional_id, request.transaction_timeout_ms, *expected)
        if result.aborted is not None:
            self.complete(result.aborted)
        self.changed()
        return InitProducerIdResponse(
            error_code=_code(result.error, ctx, key),
            producer_id=result.producer_id,
            producer_epoch=result.epoch,
        )

    async def add_partitions(
        self, ctx: RequestContext, request: AddPartitionsToTxnRequest
    ) -> AddPartitionsToTxnResponse:
        """AddPartitionsToTxn v0-3: every partition gets the same answer; partitions of
        unknown topics are UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED.
        """
        wanted = [(t.name, p) for t in request.v3_and_below_topics for p in t.partitions]
        unknown = {
            (name, p)
            for name, p in wanted
            if name not in ctx.model.topics or not 0 <= p < len(ctx.model.topics[name].partitions)
        }
        codes: dict[tuple[str, int], int]
        error = self.refused(ctx, request.v3_and_below_transactional_id)
        if error:
            codes = dict.fromkeys(wanted, error)
        elif unknown:
            codes = {
                tp: (
                    UnknownTopicOrPartitionError.code
                    if tp in unknown
                    else OperationNotAttemptedError.code
                )
                for tp in wanted
            }
        else:
            refusal = self.transactions.add_partitions(
                trio.current_time(),
                request.v3_and_below_transactional_id,
                request.v3_and_below_producer_id,
                request.v3_and_below_producer_epoch,
                wanted,
            )
            codes = dict.fromkeys(wanted, _code(refusal, ctx, AddPartitionsToTxnRequest.API_KEY))
            self.changed()
        response = AddPartitionsToTxnResponse()
        by_topic: dict[str, AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult] = {}
        for (name, p), code in codes.items():
            result = by_topic.get(name)
            if result is None:
                result = by_topic[name] = AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult(
                    name=name
                )
                response.results_by_topic_v3_and_below.append(result)
            result.results_by_partition.append(
                AddPartitionsToTxnResponse.AddPartitionsToTxnPartitionResult(
                    partition_index=p, partition_error_code=code
                )
            )
        return response

    async def add_offsets(
        self, ctx: RequestContext, request: AddOffsetsToTxnRequest
    ) -> AddOffsetsToTxnResponse:
        """AddOffsetsToTxn: the group's offsets join the transaction."""
        error = self.refused(ctx, request.transactional_id)
        if not error:
            refusal = self.transactions.add_offsets(
                trio.current_time(),
                request.transactional_id,
                request.producer_id,
                request.producer_epoch,
                request.group_id,
            )
            error = _code(refusal, ctx, AddOffsetsToTxnRequest.API_KEY)
            self.changed()
        return AddOffsetsToTxnResponse(error_code=error)

    async def txn_offset_commit(
        self, ctx: RequestContext, request: TxnOffsetCommitRequest
    ) -> TxnOffsetCommitResponse:
        """TxnOffsetCommit (to the group's coordinator): offsets staged in the transaction,
        visible to OffsetFetch once it commits; the member's generation checked (v3+) as
        Kafka checks a transactional commit.
        """
        error = self.groups.refused(ctx, request.group_id)
        if not error:
            refusal = self.transactions.verify_offsets(
                request.transactional_id,
                request.producer_id,
                request.producer_epoch,
                request.group_id,
            )
            error = _code(refusal, ctx, TxnOffsetCommitRequest.API_KEY)
        if not error:
            error = self._check_member(ctx, request)
        response = TxnOffsetCommitResponse()
        staged: dict[tuple[str, int], Committed] = {}
        for topic in request.topics:
            result = TxnOffsetCommitResponse.TxnOffsetCommitResponseTopic(name=topic.name)
            response.topics.append(result)
            known = ctx.model.topics.get(topic.name)
            for p in topic.partitions:
                code = error
                if not code and (
                    known is None or not 0 <= p.partition_index < len(known.partitions)
                ):
                    code = UnknownTopicOrPartitionError.code
                if not code:
                    staged[(topic.name, p.partition_index)] = Committed(
                        p.committed_offset,
                        p.committed_leader_epoch if ctx.version >= 2 else -1,
                        p.committed_metadata,
                    )
                result.partitions.append(
                    TxnOffsetCommitResponse.TxnOffsetCommitResponsePartition(
                        partition_index=p.partition_index, error_code=code
                    )
                )
        if staged:
            self.transactions.stage_offsets(request.transactional_id, request.group_id, staged)
        return response

    def _check_member(self, ctx: RequestContext, request: TxnOffsetCommitRequest) -> int:
        """Kafka's checks of a transactional offset commit against the group: 0 or the
        error (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID ...).
        """
        if ctx.version >= _TXN_COMMIT_MEMBER_VERSION:
            generation = request.generation_id
            member_id = request.member_id
            instance_id = request.group_instance_id
        else:
            generation, member_id, instance_id = -1, "", None
        consumer = self.groups.consumer.check_commit(request.group_id, member_id, generation)
        if consumer is not None:
            # A consumer group (KIP-848): a commit without a member is a simple one, and a
            # stale member epoch is ILLEGAL_GENERATION to a transactional commit.
            if generation < 0 and not member_id:
                return 0
            stale = consumer == StaleMemberEpochError.code
            return IllegalGenerationError.code if stale else consumer
        group = self.groups.groups.get(request.group_id)
        if group is None:
            if generation >= 0:
                return IllegalGenerationError.code
            self.groups.groups.get(request.group_id, create=True)
            return 0
        if group.state == DEAD:
            return CoordinatorNotAvailableError.code
        if generation < 0 and group.state == EMPTY:
            return 0
        if generation >= 0 or member_id or instance_id is not None:
            if instance_id is not None and group.static.get(instance_id, member_id) != member_id:
                return FencedInstanceIdError.code
            if member_id not in group.members:
                return UnknownMemberIdError.code
            if generation != group.generation:
                return IllegalGenerationError.code
        return 0

    async def end_txn(self, ctx: RequestContext, request: EndTxnRequest) -> EndTxnResponse:
        """EndTxn: commit or abort, writing the markers before answering."""
        error = self.refused(ctx, request.transactional_id)
        if not error:
            refusal, ended = self.transactions.end(
                request.transactional_id,
                request.producer_id,
                request.producer_epoch,
                commit=request.committed,
            )
            if ended is not None:
                self.complete(ended)
            error = _code(refusal, ctx, EndTxnRequest.API_KEY)
        return EndTxnResponse(error_code=error)


def install_transaction_apis(
    cluster: FakeCluster, groups: GroupCoordinator
) -> TransactionCoordinator:
    """Register the transaction coordinator's APIs and hooks; returns the coordinator."""
    coordinator = TransactionCoordinator(cluster, groups)
    handlers: list[tuple[int, int, int, Any]] = [
        (AddPartitionsToTxnRequest.API_KEY, 0, 3, coordinator.add_partitions),
        (AddOffsetsToTxnRequest.API_KEY, 0, 4, coordinator.add_offsets),
        (EndTxnRequest.API_KEY, 0, 4, coordinator.end_txn),
        (TxnOffsetCommitRequest.API_KEY, 0, 4, coordinator.txn_offset_commit),
    ]
    for key, low, high, handler in handlers:
        cluster.register(Api(key, low, high, handler))
    cluster.init_transactional_producer = coordinator.init_producer_id
    cluster.verify_transactional = coordinator.verify_produce
    cluster.aborted_transactions = coordinator.aborted_transactions
    cluster.unstable_offsets = coordinator.transactions.unstable_offsets
    return coordinator
