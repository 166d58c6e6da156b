"""The fake Kafka's partition-level APIs: Produce, Fetch, ListOffsets, DeleteRecords, and
InitProducerId for idempotent producers.

The partition logs (:mod:`._log`) decide; these handlers find the partition, check that the
broker serving the request leads it (NOT_LEADER_OR_FOLLOWER otherwise, with leader epoch
checks as Kafka makes them), apply injected faults, and translate. Fetch long polls wait on
Trio's clock for new data, so MockClock runs them in no wall time.

Transactions: Fetch and ListOffsets read up to the partition log's ``last_stable_offset``
under read_committed, and answer aborted transactions from
:attr:`FakeCluster.aborted_transactions`; Produce hands transactional batches to
:attr:`FakeCluster.verify_transactional`. The transaction coordinator (:mod:`._txn_apis`)
sets those hooks; without it, transactional batches are refused (INVALID_TXN_STATE).
"""

from __future__ import annotations

from typing import Any

import trio

from trio_brod.protocol import (
    DeleteRecordsRequest,
    DeleteRecordsResponse,
    FetchRequest,
    FetchResponse,
    InitProducerIdResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
    Message,
    ProduceRequest,
    ProduceResponse,
)
from trio_brod.protocol.errors import (
    CoordinatorNotAvailableError,
    FencedLeaderEpochError,
    InvalidRequiredAcksError,
    InvalidTxnStateError,
    NotLeaderOrFollowerError,
    TransactionalIdAuthorizationFailedError,
    UnknownLeaderEpochError,
    UnknownTopicIdError,
    UnknownTopicOrPartitionError,
)
from trio_brod.testing.fake._log import LogError, holds_transactional
from trio_brod.testing.fake._model import ModelError, Partition
from trio_brod.testing.fake._runtime import (
    Api,
    CloseConnection,
    FakeCluster,
    RequestContext,
    wait_for,
)
from trio_brod.testing.fake._sessions import FetchSessions, SessionError

__all__ = ["install_data_apis"]

_READ_COMMITTED = 1
_LATEST, _EARLIEST, _MAX_TIMESTAMP, _EARLIEST_LOCAL = -1, -2, -3, -4
_UUID_ZERO = FetchRequest.FetchTopic().topic_id


def install_data_apis(cluster: FakeCluster) -> None:
    """Register the partition-level APIs (with the versions this fake implements)."""
    for api in (
        Api(0, 3, 11, produce, partial_failures=True),
        Api(1, 4, 17, fetch, partial_failures=True),
        Api(2, 1, 10, list_offsets, partial_failures=True),
        Api(21, 0, 2, delete_records, partial_failures=True),
        Api(22, 0, 5, init_producer_id),
    ):
        cluster.register(api)


def led_partition(ctx: RequestContext, topic: str, index: int, leader_epoch: int = -1) -> Partition:
    """The partition, if this broker leads it (and the client's leader epoch is current).

    Raises:
        ModelError: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH
            or UNKNOWN_LEADER_EPOCH, as Kafka answers.
    """
    partition = ctx.model.partition(topic, index)
    if partition.leader != ctx.broker:
        raise ModelError(
            NotLeaderOrFollowerError, f"broker {ctx.broker} does not lead {topic}-{index}"
        )
    if leader_epoch >= 0:
        if leader_epoch < partition.leader_epoch:
            raise ModelError(FencedLeaderEpochError, "the client's leader epoch is old")
        if leader_epoch > partition.leader_epoch:
            raise ModelError(UnknownLeaderEpochError, "the client's leader epoch is newer")
    return partition


# -- Produce ---------------------------------------------------------------------------------


async def produce(ctx: RequestContext, request: ProduceRequest) -> ProduceResponse | None:
    """Produce: validate and append each partition's batch; no answer with acks=0 (and
    the connection closed if any partition failed, as Kafka does).

    acks=1 and acks=-1 are the same here: there is one copy of the data.
    """
    response = ProduceResponse()
    acks_error = 0 if request.acks in (0, 1, -1) else InvalidRequiredAcksError.code
    if request.transactional_id is None and any(
        holds_transactional(data.records)
        for topic_data in request.topic_data
        for data in topic_data.partition_data
    ):
        # Kafka checks the transactional id's authorisation first: without one, the
        # whole request fails.
        acks_error = TransactionalIdAuthorizationFailedError.code
    appended = False
    for topic_data in request.topic_data:
        topic_response = ProduceResponse.TopicProduceResponse(name=topic_data.name)
        response.responses.append(topic_response)
        for data in topic_data.partition_data:
            result = ProduceResponse.PartitionProduceResponse(index=data.index, base_offset=-1)
            topic_response.partition_responses.append(result)
            error = acks_error or ctx.injected(topic_data.name, data.index)
            if error:
                result.error_code = error
                continue
            try:
                partition = led_partition(ctx, topic_data.name, data.index)
                log = partition.log
                batch = log.validate(data.records)
                if batch.is_transactional:
                    verify = ctx.cluster.verify_transactional
                    code = (
                        InvalidTxnStateError.code
                        if verify is None
                        else verify(
                            request.transactional_id or "",
                            topic_data.name,
                            data.index,
                            batch.producer_id,
                            batch.producer_epoch,
                        )
                    )
                    if code:
                        result.error_code = code
                        continue
                appended_at = log.append(data.records, leader_epoch=partition.leader_epoch)
            except (ModelError, LogError) as exc:
                result.error_code = exc.error.code
                result.error_message = str(exc)
                continue
            result.base_offset = appended_at.base_offset
            result.log_start_offset = appended_at.log_start_offset
            appended = appended or not appended_at.duplicate
    if appended:
        ctx.cluster.data_changed()
    if request.acks != 0:
        return response
    if any(p.error_code for t in response.responses for p in t.partition_responses):
        raise CloseConnection  # as Kafka does: the producer's only way to learn of it
    return None


# -- Fetch -----------------------------------------------------------------------------------


async def fetch(ctx: RequestContext, request: FetchRequest) -> FetchResponse:
    """Fetch, with long polls: wait up to ``max_wait_ms`` until ``min_bytes`` are there.

    Fetch sessions (v7+) as Kafka keeps them (see :mod:`._sessions`): an incremental fetch
    reads every partition of its session and answers those with something new.
    """
    sessions = ctx.cluster.fetch_sessions.setdefault(ctx.broker, FetchSessions())
    try:
        session, incremental, topics = sessions.open(request, ctx.version)
    except SessionError as exc:
        return FetchResponse(error_code=exc.error.code)
    deadline = trio.current_time() + max(request.max_wait_ms, 0) / 1000
    while True:
        response, size, failed = _fetch_once(ctx, request, topics)
        if failed or size >= request.min_bytes or trio.current_time() >= deadline:
            break
        await wait_for(ctx.cluster.next_change, deadline)
    if session is not None:
        FetchSessions.answer(session, incremental, response, ctx.version)
    return response


def _fetch_once(
    ctx: RequestContext, request: FetchRequest, topics: list[FetchRequest.FetchTopic]
) -> tuple[FetchResponse, int, bool]:
    response = FetchResponse()
    budget = request.max_bytes
    size = 0
    failed = False
    min_one = True
    committed = request.isolation_level == _READ_COMMITTED
    for entry in topics:
        name = entry.topic
        unknown_error = UnknownTopicOrPartitionError.code
        if ctx.version >= 13:
            found = ctx.model.topic_by_id(entry.topic_id)
            name = found.name if found is not None else ""
            unknown_error = UnknownTopicIdError.code
        topic_response = FetchResponse.FetchableTopicResponse(
            topic=entry.topic, topic_id=entry.topic_id
        )
        response.responses.append(topic_response)
        for asked in entry.partitions:
            data = FetchResponse.PartitionData(
                partition_index=asked.partition,
                high_watermark=-1,
                aborted_transactions=None,
                records=b"",
            )
            topic_response.partitions.append(data)
            error = ctx.injected(name, asked.partition) if name else unknown_error
            if not error:
                try:
                    partition = led_partition(
                        ctx, name, asked.partition, asked.current_leader_epoch
                    )
                    log = partition.log
                    upto = log.last_stable_offset if committed else log.high_watermark
                    records = log.read(
                        asked.fetch_offset,
                        min(asked.partition_max_bytes, budget),
                        upto=upto,
                        min_one=min_one,
                    )
                except (ModelError, LogError) as exc:
                    error = exc.error.code
                    if isinstance(exc, ModelError) and exc.error is UnknownTopicOrPartitionError:
                        error = unknown_error
            if error:
                data.error_code = error
                failed = True
                continue
            data.high_watermark = log.high_watermark
            data.last_stable_offset = log.last_stable_offset
            data.log_start_offset = log.log_start_offset
            if committed:
                aborted = ctx.cluster.aborted_transactions
                data.aborted_transactions = [
                    FetchResponse.AbortedTransaction(producer_id=pid, first_offset=first)
                    for pid, first in (
                        aborted(name, asked.partition, asked.fetch_offset, upto)
                        if aborted is not None
                        else []
                    )
                ]
            data.records = records
            if records:
                min_one = False
                budget -= len(records)
                size += len(records)
    return response, size, failed


# -- ListOffsets, DeleteRecords, InitProducerId -----------------------------------------------


async def list_offsets(ctx: RequestContext, request: ListOffsetsRequest) -> ListOffsetsResponse:
    """ListOffsets: earliest, latest (the last stable offset under read_committed), max
    timestamp, or the first record at or after a timestamp.
    """
    response = ListOffsetsResponse()
    committed = request.isolation_level == _READ_COMMITTED
    for entry in request.topics:
        topic_response = ListOffsetsResponse.ListOffsetsTopicResponse(name=entry.name)
        response.topics.append(topic_response)
        for asked in entry.partitions:
            result = ListOffsetsResponse.ListOffsetsPartitionResponse(
                partition_index=asked.partition_index
            )
            topic_response.partitions.append(result)
            error = ctx.injected(entry.name, asked.partition_index)
            if error:
                result.error_code = error
                continue
            try:
                partition = led_partition(
                    ctx, entry.name, asked.partition_index, asked.current_leader_epoch
                )
            except ModelError as exc:
                result.error_code = exc.error.code
                continue
            log = partition.log
            found: tuple[int, int] | None
            if asked.timestamp == _LATEST:
                found = (log.last_stable_offset if committed else log.high_watermark, -1)
            elif asked.timestamp in (_EARLIEST, _EARLIEST_LOCAL):
                found = (log.log_start_offset, -1)
            elif asked.timestamp == _MAX_TIMESTAMP:
                found = log.max_timestamp_offset()
            elif asked.timestamp < 0:
                found = None
            else:
                found = log.offset_for_timestamp(asked.timestamp)
            if found is not None:
                result.offset, result.timestamp = found
                result.leader_epoch = partition.leader_epoch
    return response


async def delete_records(
    ctx: RequestContext, request: DeleteRecordsRequest
) -> DeleteRecordsResponse:
    """DeleteRecords: move log start offsets up (-1: to the high watermark)."""
    response = DeleteRecordsResponse()
    for entry in request.topics:
        topic_result = DeleteRecordsResponse.DeleteRecordsTopicResult(name=entry.name)
        response.topics.append(topic_result)
        for asked in entry.partitions:
            result = DeleteRecordsResponse.DeleteRecordsPartitionResult(
                partition_index=asked.partition_index, low_watermark=-1
            )
            topic_result.partitions.append(result)
            error = ctx.injected(entry.name, asked.partition_index)
            if error:
                result.error_code = error
                continue
            try:
                partition = led_partition(ctx, entry.name, asked.partition_index)
                result.low_watermark = partition.log.delete_records(asked.offset)
            except (ModelError, LogError) as exc:
                result.error_code = exc.error.code
    ctx.cluster.data_changed()
    return response


async def init_producer_id(ctx: RequestContext, request: Any) -> Message | None:
    """InitProducerId for idempotent producers: a new producer id, epoch 0, every time (as
    Kafka does when there is no transactional id). Transactional ids go to the transaction
    coordinator, when one is plugged in (COORDINATOR_NOT_AVAILABLE until then).
    """
    if request.transactional_id:
        init = ctx.cluster.init_transactional_producer
        if init is None:
            return InitProducerIdResponse(error_code=CoordinatorNotAvailableError.code)
        return await init(ctx, request)
    return InitProducerIdResponse(producer_id=ctx.model.new_producer_id(), producer_epoch=0)
