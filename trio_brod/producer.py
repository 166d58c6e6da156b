"""Producers: a worker task per partition, batching, retries, idempotence.

This is ``brod_producer`` in Trio form. Starting a producer for a topic
(:meth:`Client.start_producer <trio_brod.Client.start_producer>`) starts a per-topic nursery
inside the client's producers nursery, and in it one worker task per partition::

    client nursery
    └── producers nursery
        └── "orders" nursery
            ├── partition 0 worker ◄── bounded memory channel ◄── produce(..., partition=0)
            ├── partition 1 worker ◄── ...
            └── ...

``produce`` puts the message into the partition's channel and returns a
:class:`~trio_brod.DeliveryReceipt` at once; when the channel is full
(``partition_buffer_limit`` calls waiting), it waits: that is the back-pressure. The worker
takes calls from the channel as it can send them, groups them into record batches, keeps up
to ``partition_onwire_limit`` Produce requests in flight, and resolves receipts in order as
acknowledgements arrive. When a request fails with a retriable error (the leader moved, the
connection broke) the worker sends the same batches again, in the same order, after a
backoff, to the partition's current leader. With idempotence (the default) the broker uses
the producer id and sequence numbers in each batch to drop the duplicates a retry could
otherwise write.

The batching and ordering rules themselves live in :mod:`trio_brod._producer_buffer`, a plain
data structure; this module only drives it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import trio

from trio_brod._config import check_number, check_type
from trio_brod._connection import Connection
from trio_brod._exceptions import (
    BrokerConnectionError,
    ConfigError,
    MessageTooLarge,
    NoLeader,
    ProducerClosed,
)
from trio_brod._producer_buffer import Call, ProducerBuffer, RecordTuple, WireBatch
from trio_brod._receipt import DeliveryReceipt
from trio_brod.partitioners import Partitioner, checked_partition, resolve_partitioner
from trio_brod.protocol import InitProducerIdRequest, ProduceRequest
from trio_brod.protocol.errors import KafkaError, for_code
from trio_brod.protocol.records import (
    BATCH_OVERHEAD,
    Compression,
    encode_batch,
    estimate_record_size,
    with_producer_state,
)

if TYPE_CHECKING:
    from trio_brod.client import Client

__all__ = ["Message", "PartitionProducer", "ProducerConfig", "TopicProducer"]

Header = tuple[str, bytes | None]
CompressionName = Literal["none", "gzip", "snappy", "lz4", "zstd"]

_COMPRESSION_NAMES: dict[str, Compression] = {
    "none": Compression.NONE,
    "gzip": Compression.GZIP,
    "snappy": Compression.SNAPPY,
    "lz4": Compression.LZ4,
    "zstd": Compression.ZSTD,
}

# Error codes with their own handling (the rest go by KafkaError.retriable).
_MESSAGE_TOO_LARGE = 10
_RECORD_LIST_TOO_LARGE = 18
_OUT_OF_ORDER_SEQUENCE_NUMBER = 45
_DUPLICATE_SEQUENCE_NUMBER = 46
_INVALID_PRODUCER_EPOCH = 47
_UNKNOWN_PRODUCER_ID = 59
_SEQUENCE_RESET_CODES = frozenset(
    {_OUT_OF_ORDER_SEQUENCE_NUMBER, _INVALID_PRODUCER_EPOCH, _UNKNOWN_PRODUCER_ID}
)
#: Produce v3 is the first to carry v2 record batches, which trio-brod writes.
_PRODUCE_MIN_VERSION = 3
#: The broker remembers the last five batches of each producer; more in flight would let a
#: retry be mistaken for a gap.
_IDEMPOTENT_ONWIRE_MAX = 5


@dataclasses.dataclass(frozen=True, slots=True)
class ProducerConfig:
    """How a topic's partition producers batch, send and retry (brod's producer options).

    Args:
        required_acks: ``-1`` (all in-sync replicas, the default), ``1`` (the leader only) or
            ``0`` (no acknowledgement: receipts complete when the request is written, with
            offset ``-1``).
        ack_timeout: Seconds the broker may wait for replicas before answering.
        partition_buffer_limit: How many produce calls may wait per partition before
            ``produce`` blocks (a batch call counts as one).
        partition_onwire_limit: How many Produce requests per partition may await their
            acknowledgement at once. With idempotence at most 5.
        max_batch_size: Bytes of messages gathered into one request (a single larger call
            is sent alone).
        max_retries: Retries of a failed request before its messages fail; ``-1`` retries
            forever.
        retry_backoff: Seconds before the first retry; it doubles per retry, with jitter,
            up to ``retry_backoff_max``.
        retry_backoff_max: The longest wait between retries.
        compression: ``"none"``, ``"gzip"``, ``"snappy"``, ``"lz4"`` or ``"zstd"`` (the
            last three need ``pip install trio-brod[compression]``).
        compression_level: The codec's level, or None for its fast default.
        max_linger: Seconds a message may wait for others to join its batch. 0 sends at
            once; batches still form while earlier requests are on the wire.
        max_linger_count: How many messages may linger before a batch goes regardless.
        enable_idempotence: Let the broker drop duplicates caused by retries. None (the
            default) turns it on when ``required_acks`` is ``-1``, as the Java client does;
            True with other acks is an error.
        max_request_size: The largest message accepted by ``produce``, in bytes; larger ones
            are refused at once with :class:`~trio_brod.MessageTooLarge`.
        partitioner: How ``produce`` picks a partition when none is given: ``"default"``
            (murmur2 of the key as the Java client does, sticky for keyless messages),
            ``"hash"``, ``"random"``, ``"sticky"``, or a callable
            ``(topic, partition_count, key, value) -> int``.
        flush_timeout: When the client closes, seconds to wait for buffered messages to be
            acknowledged; what is left after that fails with :class:`~trio_brod.ProducerClosed`.
    """

    required_acks: Literal[-1, 0, 1] = -1
    ack_timeout: float = 10.0
    partition_buffer_limit: int = 512
    partition_onwire_limit: int = 1
    max_batch_size: int = 1024 * 1024
    max_retries: int = 3
    retry_backoff: float = 0.5
    retry_backoff_max: float = 10.0
    compression: CompressionName | Compression = "none"
    compression_level: int | None = None
    max_linger: float = 0.0
    max_linger_count: int = 0
    enable_idempotence: bool | None = None
    max_request_size: int = 1024 * 1024
    partitioner: str | Partitioner = "default"
    flush_timeout: float = 30.0

    def __post_init__(self) -> None:
        if isinstance(self.required_acks, bool) or self.required_acks not in (-1, 0, 1):
            raise ConfigError(
                f"ProducerConfig.required_acks={self.required_acks!r}: expected -1, 0 or 1"
            )
        check_number(self, "ack_timeout", minimum=0, exclusive_minimum=True, maximum=2**31 / 1000)
        check_number(self, "partition_buffer_limit", minimum=1, integer=True)
        check_number(self, "partition_onwire_limit", minimum=1, integer=True)
        check_number(self, "max_batch_size", minimum=1, integer=True)
        check_number(self, "max_retries", minimum=-1, integer=True)
        check_number(self, "retry_backoff", minimum=0)
        check_number(self, "retry_backoff_max", minimum=0)
        check_number(self, "max_linger", minimum=0)
        check_number(self, "max_linger_count", minimum=0, integer=True)
        check_number(self, "max_request_size", minimum=BATCH_OVERHEAD + 1, integer=True)
        check_number(self, "flush_timeout", minimum=0)
        if self.compression_level is not None:
            check_number(self, "compression_level", minimum=-(2**31), integer=True)
        if not isinstance(self.compression, Compression) and (
            self.compression not in _COMPRESSION_NAMES
        ):
            raise ConfigError(
                f"ProducerConfig.compression={self.compression!r}: expected one of "
                + ", ".join(_COMPRESSION_NAMES)
            )
        if self.enable_idempotence is not None:
            check_type(self, "enable_idempotence", bool, "a bool or None")
        if self.enable_idempotence and self.required_acks != -1:
            raise ConfigError(
                f"ProducerConfig.enable_idempotence=True needs required_acks=-1, "
                f"not {self.required_acks}"
            )
        if self.idempotent and self.partition_onwire_limit > _IDEMPOTENT_ONWIRE_MAX:
            raise ConfigError(
                f"ProducerConfig.partition_onwire_limit={self.partition_onwire_limit}: "
                f"at most {_IDEMPOTENT_ONWIRE_MAX} with idempotence"
            )
        resolve_partitioner(self.partitioner)  # raises ConfigError for a bad spec

    @property
    def idempotent(self) -> bool:
        """Whether idempotence is in effect (``enable_idempotence`` resolved)."""
        if self.enable_idempotence is None:
            return self.required_acks == -1
        return self.enable_idempotence

    @property
    def codec(self) -> Compression:
        """The compression as a :class:`~trio_brod.protocol.records.Compression`."""
        if isinstance(self.compression, Compression):
            return self.compression
        return _COMPRESSION_NAMES[self.compression]


class Message(NamedTuple):
    """One message for :meth:`Client.produce_batch <trio_brod.Client.produce_batch>`.

    A plain ``(key, value)`` tuple is accepted there too.
    """

    value: bytes | None
    key: bytes | None = None
    headers: Sequence[Header] = ()
    #: CreateTime in milliseconds since the epoch; None for now.
    timestamp: int | None = None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _timestamp(timestamp: int | None, now: int) -> int:
    if timestamp is None:
        return now
    if type(timestamp) is not int:
        raise TypeError(f"timestamp must be an int (ms since the epoch), not {timestamp!r}")
    return timestamp


class _Backoff:
    """Exponential backoff with jitter, capped: ``base * 2**n`` times 0.8-1.2."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        delay: float = min(self.cap, self.base * 2.0 ** min(self.failures, 30))
        self.failures += 1
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self.failures = 0


class ProducerIdentity:
    """The producer id and epoch that idempotent batches carry, shared by a client's producers.

    Obtained lazily with InitProducerId. When a partition sees its sequence numbers go out of
    step with the broker's (OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID), the epoch is
    bumped (KIP-360): every partition then starts again at sequence 0, which is how the Java
    client recovers without losing the producer id.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self.producer_id = -1
        self.epoch = -1
        self._lock = trio.Lock()

    async def ensure(self) -> tuple[int, int]:
        """The current (producer id, epoch), initialising them on first use."""
        if self.producer_id < 0:
            async with self._lock:
                if self.producer_id < 0:
                    await self._init(bump=False)
        return self.producer_id, self.epoch

    async def bump(self, seen_epoch: int) -> tuple[int, int]:
        """Move to a new epoch, unless another partition already did since ``seen_epoch``."""
        async with self._lock:
            if self.epoch == seen_epoch or self.producer_id < 0:
                await self._init(bump=self.producer_id >= 0)
        return self.producer_id, self.epoch

    async def _init(self, *, bump: bool) -> None:
        connection = await self._client._any_connection()
        api = InitProducerIdRequest
        version = connection.best_version(api)
        request = api(transactional_id=None, transaction_timeout_ms=2**31 - 1)
        if bump and version >= 3:
            request.producer_id, request.producer_epoch = self.producer_id, self.epoch
        response = await connection.request(request, version)
        if response.error_code:
            raise for_code(response.error_code)("InitProducerId failed")
        self.producer_id, self.epoch = response.producer_id, response.producer_epoch


class PartitionProducer:
    """The producer of one partition: a bounded channel in, a worker task out.

    Get one with :meth:`Client.get_producer <trio_brod.Client.get_producer>`. Its
    :meth:`produce` and :meth:`produce_batch` skip the partitioner.
    """

    def __init__(
        self,
        client: Client,
        topic: str,
        partition: int,
        config: ProducerConfig,
        identity: ProducerIdentity | None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.config = config
        self._client = client
        self._identity = identity
        self._send_channel, self._receive_channel = trio.open_memory_channel[Call](
            config.partition_buffer_limit
        )
        self._buffer = ProducerBuffer(
            max_batch_size=config.max_batch_size, onwire_limit=config.partition_onwire_limit
        )
        self._codec = config.codec
        self._wakeup = trio.Event()
        self._closing = False
        self._closed_error: BaseException | None = None
        # Idempotence: the epoch batches are sequenced for, and the next sequence number.
        self._epoch = -1
        self._next_sequence = 0
        self._needs_new_epoch = False
        self._oldest_queued_at = math.inf
        self._max_message_size = config.max_request_size - BATCH_OVERHEAD

    def __repr__(self) -> str:
        return f"<PartitionProducer {self.topic}[{self.partition}] buffered={len(self._buffer)}>"

    # ---------------------------------------------------------------- producing

    def _call(self, records: list[RecordTuple], size: int) -> Call:
        if self._closed_error is not None:
            raise ProducerClosed(f"producer of {self.topic}[{self.partition}] is closed") from (
                self._closed_error
            )
        return Call(records, size, DeliveryReceipt(self.topic, self.partition))

    async def produce(
        self,
        value: bytes | None,
        key: bytes | None = None,
        *,
        headers: Sequence[Header] = (),
        timestamp: int | None = None,
    ) -> DeliveryReceipt:
        """Accept one message into the buffer and return its receipt.

        Waits (cancellably) while ``partition_buffer_limit`` calls are already waiting.

        Raises:
            MessageTooLarge: The message is over ``max_request_size``.
            ProducerClosed: The producer is closed.
            TypeError: key, value or headers are not bytes/str as required.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        size = estimate_record_size(key, value, headers)  # also checks the types
        if size > self._max_message_size:
            raise MessageTooLarge(self.topic, self.partition, size, self.config.max_request_size)
        call = self._call([(_timestamp(timestamp, _now_ms()), key, value, headers)], size)
        await self._submit(call)
        return call.receipt

    async def produce_batch(self, messages: Iterable[Message | tuple[Any, ...]]) -> DeliveryReceipt:
        """Accept many messages as one call: they stay together, in order, in one request.

        The receipt gives the offset of the first message. This is brod's batch produce
        (``[{Ts, Key, Value}]``) and the cheapest way to send at a high rate.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        now = _now_ms()
        records: list[RecordTuple] = []
        size = 0
        for message in messages:
            if isinstance(message, Message):
                value, key, headers, timestamp = message
            else:
                key, value = message
                headers, timestamp = (), None
            size += estimate_record_size(key, value, headers)
            records.append((_timestamp(timestamp, now), key, value, headers))
        if not records:
            raise ValueError("produce_batch needs at least one message")
        if size > self._max_message_size:
            raise MessageTooLarge(self.topic, self.partition, size, self.config.max_request_size)
        call = self._call(records, size)
        await self._submit(call)
        return call.receipt

    async def _submit(self, call: Call) -> None:
        try:
            self._send_channel.send_nowait(call)
        except trio.WouldBlock:
            try:
                await self._send_channel.send(call)
            except trio.ClosedResourceError:
                raise self._closed() from None
        except trio.ClosedResourceError:
            raise self._closed() from None
        self._wakeup.set()

    def _closed(self) -> ProducerClosed:
        error = ProducerClosed(f"producer of {self.topic}[{self.partition}] is closed")
        error.__cause__ = self._closed_error
        return error

    # ---------------------------------------------------------------- the worker

    def _wake(self) -> None:
        self._wakeup.set()

    def close(self) -> None:
        """Accept no more messages; the worker sends what it has, then ends."""
        if not self._closing:
            self._closing = True
            self._send_channel.close()
            self._wakeup.set()

    def abort(self, error: BaseException) -> None:
        """Fail everything buffered with ``error`` now, and accept no more messages."""
        self.close()
        self._closed_error = error
        self._buffer.fail_all(error)
        while True:
            try:
                call = self._receive_channel.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            call.receipt._fail(error)

    async def run(self) -> None:
        """The worker: send batches to the partition's leader until closed and drained.

        A retriable failure starts a new session (a fresh leader lookup, after a backoff);
        when a batch runs out of retries its calls fail with the broker's error and the
        worker goes on with the next ones.
        """
        backoff = _Backoff(self.config.retry_backoff, self.config.retry_backoff_max)
        refresh = False
        try:
            while True:
                error = await self._session(refresh)
                if error is None:
                    return
                refresh = isinstance(error, (BrokerConnectionError, NoLeader)) or (
                    isinstance(error, KafkaError) and error.invalid_metadata
                )
                await trio.sleep(backoff.next_delay())
        finally:
            # Cancelled, or a bug: whatever is still buffered must not be left hanging.
            self.abort(
                ProducerClosed(
                    f"producer of {self.topic}[{self.partition}] stopped before delivery"
                )
            )

    async def _session(self, refresh: bool) -> BaseException | None:
        """Send to one leader connection until done (None) or a retriable failure (returned)."""
        buffer = self._buffer
        self._pull()
        while buffer.is_empty():
            if self._closing:
                return None
            await self._wait(math.inf)
            self._pull()
        try:
            connection = await self._client.get_leader_connection(
                self.topic, self.partition, refresh=refresh
            )
            version = connection.best_version(ProduceRequest, min_version=_PRODUCE_MIN_VERSION)
            if self._identity is not None:
                await self._sync_epoch()
        except (BrokerConnectionError, NoLeader) as exc:
            self._give_up_if_exhausted(exc)
            return exc
        except KafkaError as exc:
            if not exc.retriable:
                self._fail_first(exc)
                return None if buffer.is_empty() and self._closing else exc
            self._give_up_if_exhausted(exc)
            return exc
        failed: list[WireBatch] = []
        first_error: BaseException | None = None
        while True:
            # Settle what has come back, oldest first.
            while buffer.onwire and buffer.onwire[0].pending.done.is_set():
                error = self._settle(buffer)
                if error is not None:
                    if first_error is None:
                        first_error = error
                    failed.append(buffer.fail_first())
            if first_error is not None and not buffer.onwire:
                break
            # Send while allowed: not after a failure, and not while an epoch bump waits.
            if first_error is None:
                self._pull()
                if self._needs_new_epoch and buffer.onwire:
                    pass  # let the old epoch's requests settle first
                elif buffer.can_send() and self._ready_to_send():
                    if self._needs_new_epoch:
                        await self._sync_epoch()
                    try:
                        self._send(connection, version, buffer.take_batch())
                    except BrokerConnectionError as exc:
                        first_error = exc
                        if not buffer.onwire:
                            break
                    continue
                if self._closing and buffer.is_empty():
                    return None
            deadline = buffer.onwire[0].deadline if buffer.onwire else self._linger_deadline()
            if not await self._wait(deadline) and buffer.onwire:
                oldest = buffer.onwire[0]
                if not oldest.pending.done.is_set() and trio.current_time() >= oldest.deadline:
                    timeout = self._request_timeout()
                    connection.abort(f"a produce request got no response within {timeout:.1f}s")
        self._retry_or_fail(failed, first_error)
        return first_error

    def _retry_or_fail(self, failed: list[WireBatch], error: BaseException) -> None:
        """Failed batches go back to the front of the queue, or fail if out of retries."""
        if not failed:
            return
        retries = self.config.max_retries
        first = failed[0]
        if retries >= 0 and first.attempts > retries:
            first.fail(error)
            if self._identity is not None:
                # The broker never got these sequence numbers: start over in a new epoch.
                self._needs_new_epoch = True
            failed = failed[1:]
        self._buffer.requeue_failed(failed)

    def _give_up_if_exhausted(self, error: BaseException) -> None:
        """Count a failure to even reach the leader against the first waiting batch."""
        buffer = self._buffer
        if buffer.retry:
            batch = buffer.retry[0]
        elif buffer.queued:
            batch = buffer.take_batch()
            buffer.requeue_failed([batch])
        else:
            return
        batch.attempts += 1
        retries = self.config.max_retries
        if retries >= 0 and batch.attempts > retries:
            buffer.retry.popleft().fail(error)

    def _fail_first(self, error: BaseException) -> None:
        buffer = self._buffer
        if buffer.retry:
            buffer.retry.popleft().fail(error)
        elif buffer.queued:
            buffer.take_batch().fail(error)

    async def _sync_epoch(self) -> None:
        """Make sure batches are sequenced for the identity's current epoch."""
        identity = self._identity
        assert identity is not None
        if self._needs_new_epoch:
            await identity.bump(self._epoch)
            self._needs_new_epoch = False
        else:
            await identity.ensure()
        if identity.epoch != self._epoch or identity.producer_id < 0:
            self._epoch = identity.epoch
            self._next_sequence = 0
            for batch in self._buffer.retry:
                batch.base_sequence = -1  # re-sequence on send

    def _pull(self) -> None:
        """Move calls from the channel into the buffer, up to about one batch ahead."""
        buffer = self._buffer
        receive = self._receive_channel
        limit = self.config.max_batch_size * 2
        while buffer.queued_bytes < limit:
            try:
                call = receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            if not buffer.queued:
                self._oldest_queued_at = trio.current_time()
            buffer.add(call)

    def _ready_to_send(self) -> bool:
        """Linger rules: send now unless asked to wait for more messages."""
        config = self.config
        if self._buffer.retry or self._closing:
            return True
        if config.max_linger <= 0 and config.max_linger_count <= 0:
            return True
        buffer = self._buffer
        if buffer.queued_bytes >= config.max_batch_size:
            return True
        if config.max_linger_count > 0 and len(buffer.queued) >= config.max_linger_count:
            return True
        return trio.current_time() - self._oldest_queued_at >= config.max_linger

    def _linger_deadline(self) -> float:
        if self._buffer.queued and self.config.max_linger > 0:
            return self._oldest_queued_at + self.config.max_linger
        return math.inf

    def _request_timeout(self) -> float:
        return self.config.ack_timeout + self._client.config.request_timeout

    def _send(self, connection: Connection, version: int, batch: WireBatch) -> None:
        config = self.config
        if batch.encoded is None:
            batch.encoded = encode_batch(
                batch.records(),
                compression=self._codec,
                compression_level=config.compression_level,
            )
        if self._identity is not None and batch.base_sequence < 0:
            batch.producer_id = self._identity.producer_id
            batch.producer_epoch = self._epoch
            batch.base_sequence = self._next_sequence
            self._next_sequence = (self._next_sequence + batch.record_count) & 0x7FFFFFFF
            batch.encoded = with_producer_state(
                batch.encoded,
                producer_id=batch.producer_id,
                producer_epoch=batch.producer_epoch,
                base_sequence=batch.base_sequence,
            )
        request = ProduceRequest(
            transactional_id=None,
            acks=config.required_acks,
            timeout_ms=int(config.ack_timeout * 1000),
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
        batch.pending = connection.send(
            request,
            version,
            expect_response=config.required_acks != 0,
            on_done=self._wake,
        )
        batch.deadline = trio.current_time() + self._request_timeout()
        self._buffer.sent(batch)

    def _settle(self, buffer: ProducerBuffer) -> BaseException | None:
        """Acknowledge the oldest batch on the wire, or return why it failed."""
        batch = buffer.onwire[0]
        pending = batch.pending
        if pending.error is not None:
            error: BaseException = pending.error
            if isinstance(error, BrokerConnectionError) and not error.retriable:
                buffer.fail_first().fail(error)
                return None
            return error
        response = pending.response
        if response is None:  # acks=0: written is all we learn
            buffer.acknowledge(-1)
            return None
        result = response.responses[0].partition_responses[0]
        code = result.error_code
        if code == 0:
            buffer.acknowledge(result.base_offset)
            return None
        if code == _DUPLICATE_SEQUENCE_NUMBER:
            # Written by an earlier attempt; the broker no longer knows at which offset.
            buffer.acknowledge(-1)
            return None
        error = for_code(code)(result.error_message, topic=self.topic, partition=self.partition)
        if code in (_MESSAGE_TOO_LARGE, _RECORD_LIST_TOO_LARGE) and len(batch.calls) > 1:
            # Too big as a whole: send it again in two halves (not counted as a retry).
            buffer.fail_first()
            buffer.requeue_failed(batch.split())
            return None
        if code in _SEQUENCE_RESET_CODES and self._identity is not None:
            self._needs_new_epoch = True
            return error
        if not error.retriable:
            buffer.fail_first().fail(error)
            if self._identity is not None:
                self._needs_new_epoch = True
            return None
        return error

    async def _wait(self, deadline: float) -> bool:
        """Sleep until woken (a call arrived, a response came) or the deadline; True if woken."""
        self._wakeup = trio.Event()
        with trio.move_on_at(deadline):
            await self._wakeup.wait()
            return True
        return False

    async def flush(self) -> None:
        """Wait until everything accepted so far has been acknowledged (or has failed)."""
        receipts = [call.receipt for call in self._buffer.queued]
        for batch in (*self._buffer.onwire, *self._buffer.retry):
            receipts.extend(call.receipt for call in batch.calls)
        for receipt in receipts:
            if not receipt.done():
                # Failures are the receipts' owners' to see; flushing only waits.
                with contextlib.suppress(Exception):
                    await receipt.wait()
        await trio.lowlevel.checkpoint()


class TopicProducer:
    """The producers of one topic, in their own nursery; one worker per partition."""

    def __init__(
        self,
        client: Client,
        topic: str,
        config: ProducerConfig,
        identity: ProducerIdentity | None,
    ) -> None:
        self.client = client
        self.topic = topic
        self.config = config
        self.partitioner: Partitioner = resolve_partitioner(config.partitioner)
        self._named_partitioners: dict[str, Partitioner] = {}
        self._identity = identity
        self.partitions: dict[int, PartitionProducer] = {}
        self._nursery: trio.Nursery | None = None
        self._done = trio.Event()
        #: Set once every worker of the topic has ended.
        self.finished = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[TopicProducer]) -> None:
        """The topic's nursery: start a worker per partition, then run until closed."""
        try:
            count = await self.client.get_partitions_count(self.topic)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for partition in range(count):
                    self._start_partition(partition)
                task_status.started(self)
                await self._done.wait()
                for producer in self.partitions.values():
                    producer.close()
        finally:
            self.finished.set()

    def _start_partition(self, partition: int) -> PartitionProducer:
        assert self._nursery is not None
        producer = PartitionProducer(
            self.client, self.topic, partition, self.config, self._identity
        )
        self.partitions[partition] = producer
        self._nursery.start_soon(producer.run, name=f"trio_brod producer {self.topic}[{partition}]")
        return producer

    async def producer_for(self, partition: int) -> PartitionProducer:
        """The worker of a partition; partitions added to the topic since start get one."""
        producer = self.partitions.get(partition)
        if producer is not None:
            return producer
        count = await self.client.get_partitions_count(self.topic)
        if not 0 <= partition < count:
            raise ValueError(f"{self.topic} has {count} partitions, no partition {partition}")
        producer = self.partitions.get(partition)
        return producer if producer is not None else self._start_partition(partition)

    async def pick(
        self,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        partitioner: str | Partitioner | None,
    ) -> PartitionProducer:
        """The worker for an explicit partition, or the one the partitioner picks."""
        if partition is None:
            count = len(self.partitions)
            chooser = self.partitioner if partitioner is None else self._override(partitioner)
            partition = checked_partition(chooser, self.topic, count, key, value)
        return await self.producer_for(partition)

    def _override(self, spec: str | Partitioner) -> Partitioner:
        """A per-call partitioner; named ones are made once, so sticky ones stay sticky."""
        if not isinstance(spec, str):
            return spec
        chooser = self._named_partitioners.get(spec)
        if chooser is None:
            chooser = self._named_partitioners[spec] = resolve_partitioner(spec)
        return chooser

    def close(self) -> None:
        """Close every partition's worker; they drain and end, then the nursery closes."""
        self._done.set()
        for producer in self.partitions.values():
            producer.close()

    def abort(self, error: BaseException) -> None:
        """Fail everything buffered in every partition and close."""
        self._done.set()
        for producer in self.partitions.values():
            producer.abort(error)


ProduceCallback = Callable[[DeliveryReceipt], object]
