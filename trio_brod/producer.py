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
(``partition_buffer_limit`` calls or ``partition_buffer_bytes`` of messages waiting), it
waits: that is the back-pressure. The worker
takes calls from the channel as it can send them, groups them into record batches, keeps up
to ``partition_onwire_limit`` Produce requests in flight, and resolves receipts in order as
acknowledgements arrive.

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
(see :func:`~trio_brod._producer_buffer.sequence_gap`). Either way no batch is sent more
than ``max_retries + 1`` times, and receipts fail with the real cause, never with a
sequence error that the producer made itself.

The batching and ordering rules themselves live in :mod:`trio_brod._producer_buffer`, a plain
data structure; this module only drives it.
"""

from __future__ import annotations

import collections
import contextlib
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import trio

from trio_brod._config import ProducerConfig
from trio_brod._exceptions import (
    BrokerConnectionError,
    ConnectionFailed,
    MessageTooLarge,
    NoLeader,
    ProducerClosed,
)
from trio_brod._net import Connection
from trio_brod._producer_buffer import (
    Call,
    Failure,
    ProducerBuffer,
    RecordTuple,
    SequenceGap,
    WireBatch,
    hold_in_flight,
    refused_unwritten,
)
from trio_brod._receipt import DeliveryReceipt, raise_callback_errors
from trio_brod.partitioners import (
    Partitioner,
    PartitionerName,
    checked_partition,
    resolve_partitioner,
)
from trio_brod.protocol import InitProducerIdRequest, ProduceRequest
from trio_brod.protocol.errors import BrodError, DecodeError, KafkaError, ProtocolError, for_code
from trio_brod.protocol.records import (
    BATCH_OVERHEAD,
    IMPLEMENTATION,
    encode_batch,
    estimate_record_size,
    with_producer_state,
)

if TYPE_CHECKING:
    from trio_brod._cluster import ConnectionPool, MetadataCache

__all__ = ["Message", "PartitionProducer", "TopicProducer"]

Header = tuple[str, bytes | None]
# Error codes with their own handling (the rest go by their ``retriable`` flag).
_MESSAGE_TOO_LARGE: Final = 10
_RECORD_LIST_TOO_LARGE: Final = 18
_OUT_OF_ORDER_SEQUENCE_NUMBER: Final = 45
_DUPLICATE_SEQUENCE_NUMBER: Final = 46
_INVALID_PRODUCER_EPOCH: Final = 47
_UNKNOWN_PRODUCER_ID: Final = 59
_PRODUCER_FENCED: Final = 90
_TOO_LARGE_CODES: Final = frozenset({_MESSAGE_TOO_LARGE, _RECORD_LIST_TOO_LARGE})
#: The broker lost track of our sequence numbers: a new epoch starts them again at 0.
_NEW_EPOCH_CODES: Final = frozenset({_OUT_OF_ORDER_SEQUENCE_NUMBER, _UNKNOWN_PRODUCER_ID})
#: The broker has seen a newer epoch of our producer id: only a fresh id will do.
_NEW_ID_CODES: Final = frozenset({_INVALID_PRODUCER_EPOCH, _PRODUCER_FENCED})
_SEQUENCE_CODES: Final = _NEW_EPOCH_CODES | _NEW_ID_CODES
#: Produce v3 is the first to carry v2 record batches, which trio-brod writes.
_PRODUCE_MIN_VERSION: Final = 3
#: Epochs are int16 on the wire; past the last one a partition needs a fresh producer id.
_MAX_EPOCH: Final = 32767
#: Sequence numbers are int32 and wrap around to 0 after the largest.
_SEQUENCE_MASK: Final = 0x7FFFFFFF
#: Record timestamps are int64 milliseconds; the Java producer refuses negative ones.
_MAX_TIMESTAMP: Final = 2**63 - 1
#: Backoff between InitProducerId attempts (the broker may still be loading its state).
_INIT_BACKOFF_START: Final = 0.05
_INIT_BACKOFF_MAX: Final = 1.0


class Message(NamedTuple):
    """One message for :meth:`Client.produce_batch <trio_brod.Client.produce_batch>`.

    A plain ``(key, value)`` tuple is accepted there too. Note the order of the fields:
    ``Message(value, key)``. Nothing is checked when a Message is made; ``produce_batch``
    checks each one, naming the message and the field at fault, and copies a ``bytearray``
    or ``memoryview`` key, value or header value then, so that the Message's buffers may be
    reused once ``produce_batch`` has returned.
    """

    value: bytes | None
    key: bytes | None = None
    #: ``(name, value)`` tuples, the name a str, the value bytes or None.
    headers: Sequence[Header] = ()
    #: CreateTime in milliseconds since the epoch (an int >= 0); None for now.
    timestamp: int | None = None


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


def checked_timestamp(timestamp: object) -> int:
    """A record timestamp given by the caller, checked: int milliseconds, not negative.

    A wrong type is a TypeError and a number out of range a ValueError, each naming the
    field, so that a caller who passed ``-1`` (Kafka's "no timestamp") or seconds as a float
    sees at once which argument is wrong.
    """
    if type(timestamp) is not int:
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            raise TypeError(
                "timestamp must be an int of milliseconds since the epoch (or None for now), "
                f"not {type(timestamp).__name__}"
            )
        timestamp = int(timestamp)  # an IntEnum or other subclass: its plain value
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise ValueError(
            f"timestamp must be milliseconds since the epoch, from 0 to 2**63-1, not {timestamp}"
        )
    return timestamp


def checked_bytes(data: object, what: str) -> bytes | None:
    """``data`` as immutable ``bytes`` (or None), or a TypeError naming ``what``.

    A ``bytearray`` or ``memoryview`` is copied: what the caller passed at the moment of the
    call is what is sent, even if the caller changes the buffer afterwards (as the Java
    producer serialises at ``send()``).
    """
    if data is None or type(data) is bytes:
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(
        f"{what} must be bytes, bytearray, memoryview or None, not {type(data).__name__}"
    )


def checked_headers(headers: object) -> tuple[Header, ...]:
    """``headers`` as a tuple of ``(str, bytes | None)`` tuples, or a TypeError naming the
    header at fault.

    Header values that the caller could change later (``bytearray``, ``memoryview``) are
    copied, as keys and values are (see :func:`checked_bytes`); names that are a ``str``
    subclass become plain ``str``. Headers that are already plain come back as they are.
    """
    if not isinstance(headers, Sequence) or isinstance(
        headers, (str, bytes, bytearray, memoryview)
    ):
        hint = " (for a dict, pass list(headers.items()))" if isinstance(headers, dict) else ""
        raise TypeError(
            "headers must be a sequence of (name, value) pairs, name a str and value bytes "
            f"or None, not {type(headers).__name__}{hint}"
        )
    frozen: list[Header] | None = None
    for number, header in enumerate(headers):
        if type(header) is tuple and len(header) == 2:
            name, value = header
            if type(name) is str and (value is None or type(value) is bytes):
                if frozen is not None:
                    frozen.append(header)
                continue
        if not isinstance(header, tuple) or len(header) != 2:
            raise TypeError(f"header {number} must be a (name, value) tuple, not {header!r:.100}")
        name, value = header
        if not isinstance(name, str):
            raise TypeError(f"header {number} name must be a str, not {type(name).__name__}")
        if frozen is None:
            frozen = list(headers)[:number]
        frozen.append((str.__str__(name), checked_bytes(value, f"header {name!r} value")))
    if frozen is not None:
        return tuple(frozen)
    return headers if type(headers) is tuple else tuple(headers)


def ack_timeout_ms(seconds: float) -> int:
    """``ack_timeout`` in seconds as the Produce request's ``timeout_ms``.

    The nearest millisecond, and at least 1, as the setting is positive. (Truncating made
    1.001 s 1000 ms, through the float, and 0.0004 s 0 ms: no wait for the replicas at all.)
    """
    return max(1, round(seconds * 1000))


def _check_messages_container(messages: object) -> None:
    """A TypeError for what ``produce_batch`` would otherwise take apart by mistake: one
    message, or bytes, given instead of a collection of messages."""
    if isinstance(messages, (Message, str, bytes, bytearray, memoryview)):
        raise TypeError(
            "messages must be an iterable of Message objects or (key, value) tuples, "
            f"not {type(messages).__name__} (for one message, pass [message])"
        )
    if not isinstance(messages, Iterable):
        raise TypeError(
            "messages must be an iterable of Message objects or (key, value) tuples, "
            f"not {type(messages).__name__}"
        )


def _needs_refresh(error: BaseException) -> bool:
    """Whether an error means the leader may have moved, so metadata must be read again."""
    if isinstance(error, (BrokerConnectionError, NoLeader)):
        return True
    return isinstance(error, KafkaError) and error.invalid_metadata


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

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self.producer_id = -1
        self.epoch = -1
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
        deadline = trio.current_time() + self._pool.config.request_timeout
        backoff = _INIT_BACKOFF_START
        while True:
            try:
                return await self._init_producer_id()
            except (KafkaError, BrokerConnectionError) as exc:
                if not exc.retriable or trio.current_time() + backoff > deadline:
                    raise
            await trio.sleep(backoff)
            backoff = min(backoff * 2, _INIT_BACKOFF_MAX)

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


# What a partition producer must do to its producer state before the next round.
_KEEP: Final = 0
_NEW_EPOCH: Final = 1
_NEW_ID: Final = 2


class _RoomWaiter(NamedTuple):
    """A produce call waiting for ``partition_buffer_bytes`` to have room for ``size``."""

    task: trio.lowlevel.Task
    size: int


class _Round:
    """What went wrong in one round of sending (see the module docstring).

    Attributes:
        failed: The batches whose requests failed, in the order they were sent, each with
            its real cause (see :class:`~trio_brod._producer_buffer.Failure`); split
            batches appear as their two halves.
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
        self.failed.extend(Failure(batch, error, final) for batch in batches)
        if self.error is None:
            self.error = error
        if reconnect and self.reconnect is None:
            self.reconnect = error


class PartitionProducer:
    """The producer of one partition: a bounded channel in, a worker task out.

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
        self.topic = topic
        self.partition = partition
        self.config = config
        self._metadata = metadata
        self._identity = identity
        self._send_channel, self._receive_channel = trio.open_memory_channel[Call](
            config.partition_buffer_limit
        )
        # The channel counts calls; bytes are counted here. ``_channel_bytes`` is the size of
        # the calls in the channel plus those admitted on their way into it; callers that
        # would go over ``partition_buffer_bytes`` wait in ``_room_waiters``, first come
        # first served, until the worker has taken enough out (see ``_admit``).
        self._channel_bytes = 0
        self._channel_bytes_limit = config.partition_buffer_bytes
        self._room_waiters: collections.deque[_RoomWaiter] = collections.deque()
        # Records go into a batch up to the smaller of the two limits.
        self._max_records_size = config.max_request_size - BATCH_OVERHEAD
        self._buffer = ProducerBuffer(
            max_batch_size=min(config.max_batch_size, self._max_records_size),
            onwire_limit=config.partition_onwire_limit,
        )
        self._pull_limit = 2 * self._buffer.max_batch_size
        self._codec = config.codec
        self._acks = config.required_acks
        self._ack_timeout_ms = ack_timeout_ms(config.ack_timeout)
        self._linger = config.max_linger
        self._wakeup = trio.Event()
        self._cancel_scope = trio.CancelScope()
        self._closing = False
        self._closed_error: BaseException | None = None
        self._flushing = 0
        self._oldest_queued_at = math.inf
        # The batches that failed in the current round, until it ends and they go back
        # into the buffer's retry queue; kept here so that flush and abort can find them.
        self._round = _Round()
        # Idempotence: the producer id and epoch this partition sends with, the sequence
        # number of its next record, and whether they must change before the next round.
        self._producer_id = -1
        self._epoch = -1
        self._next_sequence = 0
        self._reset = _KEEP
        # Set when batches were given up that may be in the log, while batches that may be
        # in the log too are pending: their numbers stay, and an OUT_OF_ORDER_SEQUENCE_NUMBER
        # for the next one is the gap the producer made, not the batch's fault.
        self._unresolved = False
        #: Set when the worker task has ended.
        self.finished = trio.Event()

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
            _check_messages_container(messages)
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

    def _hand_over_now(self, call: Call) -> bool:
        """Put ``call`` in the channel if there is room for it now, in bytes and in calls,
        and nobody is waiting before it; False if not (then ``_hand_over_waiting``).

        Raises:
            ProducerClosed: The producer is closed.
        """
        size = call.size
        if self._room_waiters or self._channel_bytes + size > self._channel_bytes_limit:
            return False
        try:
            self._send_channel.send_nowait(call)
        except trio.WouldBlock:
            return False
        except trio.ClosedResourceError:
            raise self._closed() from None
        self._channel_bytes += size
        self._handed_over(call)
        return True

    async def _hand_over_waiting(self, call: Call) -> None:
        """Back-pressure: wait for room in bytes, then in calls (cancellable; nothing is
        sent then), and put ``call`` in the channel."""
        await self._wait_for_room(call.size)
        try:
            self._send_channel.send_nowait(call)
        except trio.WouldBlock:
            await self._submit_waiting(call)
        except trio.ClosedResourceError:
            self._give_back(call.size)
            raise self._closed() from None
        self._handed_over(call)

    def _handed_over(self, call: Call) -> None:
        """``call`` is in the channel: the producer holds it, and the worker has work."""
        hold_in_flight(call)
        # Its records too: numbers, bytes and header tuples, never in a cycle. Left to the
        # collector, the tuple around a single message's record often stays tracked (a
        # collection can meet it before the record inside, which it untracks only then) and
        # reaches the oldest generation, which then fills up and is collected again and again.
        hold_in_flight(call.records)
        self._wakeup.set()

    async def _submit_waiting(self, call: Call) -> None:
        """Wait for room in the channel, the call's bytes counted (cancellable; nothing is
        sent then)."""
        try:
            await self._send_channel.send(call)
        except BaseException as exc:
            self._give_back(call.size)
            if isinstance(exc, trio.ClosedResourceError):
                raise self._closed() from None
            raise

    async def _wait_for_room(self, size: int) -> None:
        """Back-pressure by bytes: wait until ``_admit`` counts ``size`` in (cancellable).

        A call larger than the whole limit is admitted once the channel is empty, so it
        waits but never forever. Closing the producer admits every waiter, and the closed
        channel then refuses their calls.
        """
        if not self._room_waiters and (
            self._channel_bytes == 0  # even a call larger than the limit goes, alone
            or self._channel_bytes + size <= self._channel_bytes_limit
        ):
            self._channel_bytes += size
            return
        waiter = _RoomWaiter(trio.lowlevel.current_task(), size)
        self._room_waiters.append(waiter)

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._room_waiters.remove(waiter)
            # A large waiter at the front may have held back smaller ones behind it.
            self._admit()
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _give_back(self, size: int) -> None:
        """Uncount an admitted call that did not go into the channel after all."""
        self._channel_bytes -= size
        if self._room_waiters:
            self._admit()

    def _admit(self, everyone: bool = False) -> None:
        """Let waiting callers in, in order, while their calls fit (or all, when closing)."""
        waiters = self._room_waiters
        while waiters:
            waiter = waiters[0]
            if (
                not everyone
                and self._channel_bytes
                and self._channel_bytes + waiter.size > self._channel_bytes_limit
            ):
                return
            waiters.popleft()
            self._channel_bytes += waiter.size
            trio.lowlevel.reschedule(waiter.task)

    def _too_large(self, records_size: int) -> MessageTooLarge:
        return MessageTooLarge(
            self.topic,
            self.partition,
            records_size + BATCH_OVERHEAD,
            self.config.max_request_size,
        )

    def _closed(self) -> ProducerClosed:
        error = ProducerClosed(f"producer of {self.topic}[{self.partition}] is closed")
        error.__cause__ = self._closed_error
        return error

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
        if self._identity is not None and self._holds_sequenced_batches():
            # Their sequence numbers will never reach the broker: a gap, which the next
            # producer of this partition must not continue from (see _state_to_leave).
            self._reset = max(self._reset, _NEW_EPOCH)
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
                call._fail(error)
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
        if self._identity is not None and self._producer_id >= 0:
            self._identity.leave(self.topic, self.partition, self._state_to_leave())
        try:
            self.abort(self._closed_error or error)
        finally:
            self.finished.set()

    def _state_to_leave(self) -> ProducerState:
        """Where a producer for this partition started later should go on from.

        If batches with sequence numbers are about to be failed unsent or unacknowledged (or
        a gap is already known), the next producer must not continue the numbers: it starts
        a new epoch at 0 (or, past the last epoch or when a fresh id was due, gets a fresh
        producer id: a negative id says so). The broker then also refuses any request of
        this producer's that it has not handled yet, as it is of an older epoch.
        """
        gap = self._unresolved or self._holds_sequenced_batches()
        if self._reset == _KEEP and not gap:
            return (self._producer_id, self._epoch, self._next_sequence)
        if self._reset == _NEW_ID or self._epoch >= _MAX_EPOCH:
            return (-1, -1, 0)
        return (self._producer_id, self._epoch + 1, 0)

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
        with trio.move_on_at(deadline):
            await self._wakeup.wait()

    async def _work(self) -> None:
        backoff = _Backoff(self.config.retry_backoff, self.config.retry_backoff_max)
        refresh = False
        while True:
            error = await self._session(refresh, backoff)
            if error is None:
                return
            refresh = _needs_refresh(error)
            # Let go of the error before the next session, which may idle for hours: its
            # traceback keeps the frames it was raised through alive, with the batch they
            # were sending (sent again and acknowledged since).
            del error
            await trio.sleep(backoff.next_delay())

    async def _session(self, refresh: bool, backoff: _Backoff) -> BaseException | None:
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
            version = connection.best_version(ProduceRequest, min_version=_PRODUCE_MIN_VERSION)
        except BrodError as exc:
            self._could_not_send(exc)
            return exc
        while True:
            if self._identity is not None and (self._producer_id < 0 or self._reset):
                try:
                    await self._update_producer_state()
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
                wait = exc.cool_down_left
                if wait <= 0:
                    raise
            await trio.sleep(wait)

    def _could_not_send(self, error: BrodError) -> None:
        """The leader could not be reached (or the producer id not had): count that as a
        failed attempt of the first waiting batch; a non-retriable error fails them all."""
        buffer = self._buffer
        if not error.retriable:
            if self._identity is not None and any(b.base_sequence >= 0 for b in buffer.retry):
                # Their sequence numbers will not reach the broker: a gap (nothing pending
                # remains, so a new epoch is safe).
                self._reset = max(self._reset, _NEW_EPOCH)
            buffer.fail_all(error)
            return
        given_up, gap = buffer.attempt_failed(error, self.config.max_retries)
        self._give_up(given_up, gap)

    def _give_up(self, given_up: list[tuple[WireBatch, BaseException]], gap: SequenceGap) -> None:
        """Fail the batches given up, after deciding what their gap asks for (see the
        module docstring): a new epoch before anything more is sent, or, when that could
        write a pending batch twice, the old numbers until the broker's answer tells."""
        if self._identity is not None:
            if gap is SequenceGap.RENUMBER:
                self._reset = max(self._reset, _NEW_EPOCH)
            elif gap is SequenceGap.UNRESOLVED:
                self._unresolved = True
        errors: list[Exception] = []
        for batch, error in given_up:
            try:
                batch.fail(error)
            except Exception as exc:
                errors.append(exc)
        raise_callback_errors(errors)

    async def _update_producer_state(self) -> None:
        """Get the producer id to send with, or change it as the last round asked."""
        identity = self._identity
        assert identity is not None
        if self._producer_id < 0:
            left = identity.take(self.topic, self.partition)
            if left is not None and left[0] >= 0:
                self._producer_id, self._epoch, self._next_sequence = left
                return
            if left is not None:  # the previous producer left a gap and no epoch to bump
                producer_id, epoch = await identity.fresh()
            else:
                producer_id, epoch = await identity.initial()
        elif self._reset == _NEW_EPOCH and self._epoch < _MAX_EPOCH:
            producer_id, epoch = self._producer_id, self._epoch + 1
        else:
            producer_id, epoch = await identity.fresh()
        self._producer_id, self._epoch, self._next_sequence = producer_id, epoch, 0
        self._reset = _KEEP
        self._unresolved = False
        # Nothing is on the wire between rounds; what waits to be sent again gets new
        # sequence numbers (its bytes stay; only the producer fields are rewritten). Under
        # them the broker has never seen it.
        for batch in self._buffer.retry:
            batch.base_sequence = -1
            batch.maybe_written = False

    async def _send_round(self, connection: Connection, version: int, backoff: _Backoff) -> bool:
        """One round: send until a failure, then let the wire drain.

        Returns False when the producer is closing and everything has been settled, True
        when the round ended with failures (in ``self._round``).
        """
        buffer = self._buffer
        round_ = self._round = _Round()
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

    def _time_out(self, connection: Connection, round_: _Round, backoff: _Backoff) -> None:
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
        self._round = _Round()
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

    def _send_next(self, connection: Connection, version: int, round_: _Round) -> None:
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
        if self._identity is not None and batch.base_sequence < 0:
            sequence = self._next_sequence
            if batch.encoded is None:
                batch.encoded = encode_batch(
                    batch.records(),
                    compression=self._codec,
                    compression_level=self.config.compression_level,
                    producer_id=self._producer_id,
                    producer_epoch=self._epoch,
                    base_sequence=sequence,
                )
            else:
                batch.encoded = with_producer_state(
                    batch.encoded,
                    producer_id=self._producer_id,
                    producer_epoch=self._epoch,
                    base_sequence=sequence,
                )
            batch.producer_id, batch.producer_epoch = self._producer_id, self._epoch
            batch.base_sequence = sequence
            self._next_sequence = (sequence + batch.record_count) & _SEQUENCE_MASK
        elif batch.encoded is None:
            # No idempotence, or the half of a split batch that kept its sequence numbers.
            batch.encoded = encode_batch(
                batch.records(),
                compression=self._codec,
                compression_level=self.config.compression_level,
                producer_id=batch.producer_id,
                producer_epoch=batch.producer_epoch,
                base_sequence=batch.base_sequence,
            )
        return ProduceRequest(
            transactional_id=None,
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
        self, round_: _Round, backoff: _Backoff, lost: BaseException | None = None
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
                    buffer.fail_first()
                    round_.add(batch.split(), error, reconnect=False)
                    return
                if code in _SEQUENCE_CODES and self._identity is not None:
                    cause = self._sequence_error(round_, batch, code, error)
                    round_.add([buffer.fail_first()], cause, reconnect=False)
                    return
        if not refused_unwritten(error):
            batch.maybe_written = True  # a lost response, or an error after the append
        if getattr(error, "retriable", False):
            round_.add([buffer.fail_first()], error, reconnect=True)
        elif self._identity is not None and batch.base_sequence >= 0:
            # Given up for good. It leaves a gap in the sequence numbers: send nothing more
            # this round; at its end the batches behind it are renumbered (end_round).
            round_.add([buffer.fail_first()], error, reconnect=False, final=True)
        else:
            buffer.fail_first().fail(error)

    def _sequence_error(
        self, round_: _Round, batch: WireBatch, code: int, error: BaseException
    ) -> BaseException:
        """Note what a sequence or epoch error asks for; return the batch's real cause."""
        if code in _NEW_ID_CODES:
            # The broker knows a newer epoch of our producer id: only a fresh id will do.
            self._reset = _NEW_ID
            return error
        if round_.error is not None:
            # Refused only because a batch ahead of it failed this round: that is the cause.
            return round_.error
        # The first failure of the round: a real gap, or a broker that forgot us.
        self._reset = max(self._reset, _NEW_EPOCH)
        if self._unresolved and batch.cause is not None:
            # The gap a batch given up left (see _give_up): the producer made it.
            return batch.cause
        return error


class TopicProducer:
    """The producers of one topic, in their own nursery; one worker per partition.

    Attributes:
        topic: The topic.
        config: The configuration its partition producers share.
        partitioner: The partitioner of ``config``, made once (sticky ones keep state).
        partitions: The partition producers, by partition.
        partition_count: How many partitions the topic has, as far as the producer knows.
        finished: Set once every worker of the topic has ended.
    """

    def __init__(
        self,
        metadata: MetadataCache,
        topic: str,
        config: ProducerConfig,
        identity: ProducerIdentity | None,
    ) -> None:
        self._metadata = metadata
        self._auto_create = metadata.config.allow_topic_auto_creation
        self.topic = topic
        self.config = config
        self.partitioner: Partitioner = resolve_partitioner(config.partitioner)
        self._named_partitioners: dict[str, Partitioner] = {}
        self._identity = identity
        self.partitions: dict[int, PartitionProducer] = {}
        self.partition_count = 0
        self._nursery: trio.Nursery | None = None
        self._done = trio.Event()
        self.finished = trio.Event()

    def __repr__(self) -> str:
        return f"<TopicProducer {self.topic} partitions={self.partition_count}>"

    async def run(self, *, task_status: trio.TaskStatus[TopicProducer]) -> None:
        """The topic's nursery: start a worker per partition, then run until closed."""
        try:
            self.partition_count = await self._metadata.partitions_count(
                self.topic, auto_create=self._auto_create
            )
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for partition in range(self.partition_count):
                    self._start_partition(partition)
                watcher = trio.CancelScope()
                nursery.start_soon(self._watch_partitions, watcher)
                task_status.started(self)
                await self._done.wait()
                watcher.cancel()
                for producer in self.partitions.values():
                    producer.close()
        finally:
            self.finished.set()

    async def _watch_partitions(self, scope: trio.CancelScope) -> None:
        """Look at the partition count again every ``metadata_max_age``.

        Partitions added to the topic get workers, and the partitioner spreads messages
        over them from then on, as the Java client does when its metadata shows them. (Keys
        then map to other partitions: see :mod:`trio_brod.partitioners`.)
        """
        with scope:
            while True:
                await trio.sleep(self._metadata.config.metadata_max_age)
                try:
                    count = await self._metadata.partitions_count(self.topic, auto_create=False)
                except BrodError:
                    continue  # the workers report what matters; try again next time
                for partition in range(self.partition_count, count):
                    if partition not in self.partitions:
                        self._start_partition(partition)
                self.partition_count = max(self.partition_count, count)

    def _start_partition(self, partition: int) -> PartitionProducer:
        assert self._nursery is not None
        producer = PartitionProducer(
            self._metadata, self.topic, partition, self.config, self._identity
        )
        self.partitions[partition] = producer
        self._nursery.start_soon(producer.run, name=f"trio_brod producer {self.topic}[{partition}]")
        return producer

    async def producer_for(self, partition: int) -> PartitionProducer:
        """The worker of a partition; partitions added to the topic since start get one.

        Raises:
            TypeError: ``partition`` is not an int.
            ValueError: The topic has no such partition.
            ProducerClosed: The topic's producers are closed.
        """
        if isinstance(partition, bool) or not isinstance(partition, int):
            raise TypeError(f"partition must be an int, not {partition!r}")
        producer = self.partitions.get(partition)
        if producer is not None:
            await trio.lowlevel.checkpoint_if_cancelled()
            return producer
        count = await self._metadata.partitions_count(self.topic, auto_create=self._auto_create)
        if not 0 <= partition < count:
            raise ValueError(f"{self.topic} has {count} partitions, no partition {partition}")
        producer = self.partitions.get(partition)
        if producer is not None:
            return producer
        if self._done.is_set():
            raise ProducerClosed(f"the producers of {self.topic} are closed")
        self.partition_count = max(self.partition_count, count)
        return self._start_partition(partition)

    def choose(
        self,
        key: bytes | None,
        value: bytes | None,
        partitioner: PartitionerName | Partitioner | None,
    ) -> int:
        """The partition the partitioner (or ``partitioner``, for this call) picks.

        Raises:
            ConfigError: ``partitioner`` is not a partitioner, or it returned a partition
                the topic does not have.
        """
        chooser = self.partitioner if partitioner is None else self._override(partitioner)
        return checked_partition(chooser, self.topic, self.partition_count, key, value)

    def _override(self, spec: PartitionerName | Partitioner) -> Partitioner:
        """A per-call partitioner; named ones are made once, so sticky ones stay sticky."""
        if isinstance(spec, str):
            chooser = self._named_partitioners.get(spec)
            if chooser is None:
                chooser = self._named_partitioners[spec] = resolve_partitioner(spec)
            return chooser
        if callable(spec) and not isinstance(spec, type):
            return spec
        return resolve_partitioner(spec)  # raises the ConfigError that explains why not

    def close(self) -> None:
        """Close every partition's worker; they drain and end, then the nursery closes."""
        self._done.set()
        for producer in self.partitions.values():
            producer.close()

    def abort(self, error: BaseException) -> None:
        """Fail everything buffered in every partition, and stop the workers.

        Raises:
            Exception: What receipts' done-callbacks raised, after every receipt failed.
        """
        self._done.set()
        errors: list[Exception] = []
        for producer in self.partitions.values():
            try:
                producer.abort(error)
            except Exception as exc:
                errors.append(exc)
        raise_callback_errors(errors)
