"""Exceptions of the protocol layer, and every Kafka error code as an exception class.

The root of every exception trio-brod raises on purpose is :class:`BrodError`. Below it:

* :class:`ProtocolError` -- bytes that are not valid Kafka protocol (:class:`DecodeError`) or a
  message that cannot be written in the requested version (:class:`EncodeError`);
* :class:`KafkaError` -- an error code a broker answered with. Each code has its own subclass,
  named as in Kafka's documentation (``UNKNOWN_TOPIC_OR_PARTITION`` becomes
  :class:`UnknownTopicOrPartitionError`), carrying ``code``, ``name``, ``retriable``,
  ``invalid_metadata`` and a default ``message``.

Catching broker errors
----------------------

One error::

    try:
        await client.produce("orders", b"value")
    except TopicAuthorizationFailedError:
        ...  # this principal may not write to the topic

Every error that trying again may cure (Kafka's ``RetriableException`` family)::

    except RetriableKafkaError as exc:
        ...  # back off, then retry; exc.retriable is True

Of those, the ones that mean "your view of the cluster is stale: refresh metadata, then
retry" (a leader moved, a topic is being created; Kafka's ``InvalidMetadataException``)::

    except InvalidMetadataKafkaError as exc:
        ...  # exc.invalid_metadata is True

Any error code at all, with what the broker said and where::

    except KafkaError as exc:
        print(exc.code, exc.name, exc.broker_message, exc.context)
        print(exc)  # NOT_LEADER_OR_FOLLOWER (6) for orders[3]: For requests intended ...

The flags are also plain class attributes, so code that already holds an exception can ask
``exc.retriable`` and ``exc.invalid_metadata`` instead of using ``isinstance``. Errors the
client raises itself (a lost connection, a timeout) are not here: they are other
:class:`BrodError` subclasses, see :mod:`trio_brod`.

Raising broker errors
---------------------

A response carries an ``error_code`` per topic, partition or group. :func:`raise_for_code`
does nothing for 0 and raises the matching class otherwise::

    raise_for_code(p.error_code, p.error_message, topic=topic, partition=p.partition_index)

:func:`for_code` returns the class, to build an exception without raising it.

A code this version of trio-brod does not know (a newer broker) still gets a class of its
own: a subclass of :class:`UnknownKafkaCodeError`, itself an :class:`UnknownServerError`,
which is how Kafka's own clients treat codes they do not know. See :func:`for_code`.

Every class is listed, with the code's meaning, at :data:`ERROR_CODES_URL`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar, Final

__all__ = [
    "ERRORS_BY_CODE",
    "ERROR_CODES_URL",
    "BrodError",
    "DecodeError",
    "EncodeError",
    "InvalidMetadataKafkaError",
    "KafkaError",
    "ProtocolError",
    "RetriableKafkaError",
    "UnknownKafkaCodeError",
    "for_code",
    "raise_for_code",
]

#: Kafka's table of error codes: code, name, whether retriable, description. The page has no
#: anchor per error, so this one address serves every class (see ``KafkaError.docs_url``).
ERROR_CODES_URL: Final = "https://kafka.apache.org/protocol.html#protocol_error_codes"


class BrodError(Exception):
    """Base class of every error trio-brod raises on purpose.

    ``retriable`` says whether the same operation may succeed if tried again (after a
    metadata refresh, a reconnect, or simply later); subclasses set it.
    """

    retriable: ClassVar[bool] = False


class ProtocolError(BrodError):
    """Bytes on the wire, or a message to be written, do not follow the Kafka protocol."""


class DecodeError(ProtocolError):
    """Malformed or truncated bytes were given to a decoder.

    Decoders raise this, and only this, for bad input: never ``IndexError``,
    ``struct.error``, ``UnicodeDecodeError`` or the like.
    """


class EncodeError(ProtocolError, ValueError):
    """A message cannot be encoded in the requested version (a field out of range, a
    required field missing, or a value the version cannot carry)."""


class KafkaError(BrodError):
    """An error code returned by a Kafka broker.

    Subclasses exist for every code; :func:`for_code` maps a code to its class. The facts
    about the code are class attributes; what one occurrence adds is on the instance:

        >>> exc = NotLeaderOrFollowerError("Leader is broker 2", topic="orders", partition=3)
        >>> exc.code, exc.name, exc.retriable, exc.invalid_metadata
        (6, 'NOT_LEADER_OR_FOLLOWER', True, True)
        >>> exc.broker_message, exc.context
        ('Leader is broker 2', {'topic': 'orders', 'partition': 3})
        >>> str(exc)
        'NOT_LEADER_OR_FOLLOWER (6) for orders[3]: Leader is broker 2'

    Args:
        broker_message: The ``error_message`` the broker sent with the code, if any. ``None``
            or ``""`` means none was sent; :attr:`message`, Kafka's description of the code,
            is shown instead.
        **context: Where the error happened, in the words of the request: ``topic``,
            ``partition``, ``group_id``, ``transactional_id``, ``node_id`` ... Any keywords
            are accepted; ``topic`` and ``partition`` are shown as ``topic[partition]``.

    Two instances are equal if they have the same class, broker message and context, so an
    exception that went through :mod:`pickle` (to another process) equals the original.

    ``KafkaError`` itself, raised directly, stands for a broker error with no more precise
    class and is described as ``UNKNOWN_SERVER_ERROR``.
    """

    #: The numeric error code on the wire.
    code: ClassVar[int] = -1
    #: The error's name as Kafka spells it, e.g. ``"NOT_LEADER_OR_FOLLOWER"``.
    name: ClassVar[str] = "UNKNOWN_SERVER_ERROR"
    #: True if retrying the same request may succeed (Kafka's ``RetriableException``).
    retriable: ClassVar[bool] = False
    #: True if the client's metadata is stale: refresh it (leaders, topic ids), then retry.
    #: Implies :attr:`retriable` (Kafka's ``InvalidMetadataException``).
    invalid_metadata: ClassVar[bool] = False
    #: Kafka's description of the error.
    message: ClassVar[str] = (
        "The server experienced an unexpected error when processing the request."
    )
    #: Where Kafka documents every error code (the same page for all of them).
    docs_url: ClassVar[str] = ERROR_CODES_URL

    #: The message the broker sent with the code, or ``None`` if it sent none.
    broker_message: str | None
    #: Where the error happened (``topic``, ``partition``, ``group_id``, ...).
    context: dict[str, object]

    def __init__(self, broker_message: str | None = None, /, **context: object) -> None:
        # args is what BaseException shows and compares nowhere in particular; keep it the
        # broker's own words so that generic handlers (logging, pytest) see something useful.
        super().__init__(*((broker_message,) if broker_message else ()))
        self.broker_message = broker_message or None
        self.context = context

    def __str__(self) -> str:
        where = _describe_context(self.context)
        text = self.broker_message or self.message
        return f"{self.name} ({self.code}){where}: {text}"

    def __repr__(self) -> str:
        args = [] if self.broker_message is None else [repr(self.broker_message)]
        args += [f"{key}={value!r}" for key, value in self.context.items()]
        return f"{type(self).__name__}({', '.join(args)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KafkaError):
            return NotImplemented
        return (
            type(self) is type(other)
            and self.broker_message == other.broker_message
            and self.context == other.context
        )

    def __hash__(self) -> int:
        # Context values may be unhashable (lists of ids); equal objects still hash equal.
        return hash((type(self), self.broker_message))

    def __reduce__(self) -> tuple[object, ...]:
        # The default reduction would call cls(*args) and lose the keyword context. Classes
        # made on the fly for unknown codes cannot be found by name, so those travel as their
        # code and are made again (or found in the cache) on the other side. The rest of
        # __dict__ (notes added with add_note(), attributes set by callers) goes as state.
        cls = type(self)
        ref: type[KafkaError] | int = cls.code if _UNKNOWN_CODES.get(cls.code) is cls else cls
        state = {
            key: value
            for key, value in self.__dict__.items()
            if key not in ("broker_message", "context")
        }
        return (_rebuild, (ref, self.broker_message, self.context), state or None)


def _rebuild(
    ref: type[KafkaError] | int, broker_message: str | None, context: dict[str, object]
) -> KafkaError:
    """Unpickle a :class:`KafkaError` (see ``KafkaError.__reduce__``)."""
    cls = for_code(ref) if isinstance(ref, int) else ref
    return cls(broker_message, **context)


def _describe_context(context: Mapping[str, object]) -> str:
    """``" for orders[3], group_id='g'"`` for a context; ``""`` for none."""
    if not context:
        return ""
    parts = []
    rest = dict(context)
    topic = rest.pop("topic", None)
    partition = rest.pop("partition", None)
    if topic is not None:
        parts.append(f"{topic}[{partition}]" if partition is not None else str(topic))
    elif partition is not None:
        parts.append(f"partition {partition}")
    parts += [f"{key}={value!r}" for key, value in rest.items()]
    return " for " + ", ".join(parts)


class RetriableKafkaError(KafkaError):
    """Base class of the error codes that trying the same request again may cure.

    Kafka's ``RetriableException`` family: a leader election, a coordinator loading, too few
    in-sync replicas, a timeout. Back off before retrying. Errors the client raises itself
    (a lost connection, say) are not subclasses; they carry their own ``retriable`` flag.
    """

    retriable = True


class InvalidMetadataKafkaError(RetriableKafkaError):
    """Base class of the error codes that mean the client's metadata is stale.

    Kafka's ``InvalidMetadataException`` family (``NOT_LEADER_OR_FOLLOWER``,
    ``UNKNOWN_TOPIC_OR_PARTITION``, ``LEADER_NOT_AVAILABLE``, ``FENCED_LEADER_EPOCH`` ...):
    refresh metadata, then send the request again, to the new leader if it moved.

    Not in this family although retriable: the coordinator errors (``NOT_COORDINATOR``,
    ``COORDINATOR_NOT_AVAILABLE``), which call for finding the coordinator again rather than
    new topic metadata, and ``UNKNOWN_LEADER_EPOCH`` (the broker is behind; wait, retry).
    """

    invalid_metadata = True


# The generated block below is written by tools/gen_errors.py from its table, one class per
# code. Edit the table there and run the script; tests fail if this block is out of date.

# --- BEGIN GENERATED by tools/gen_errors.py; edit its table, not this ---


class UnknownServerError(KafkaError):
    """UNKNOWN_SERVER_ERROR (-1): not retriable.

    The server experienced an unexpected error when processing the request.
    """

    code = -1
    name = "UNKNOWN_SERVER_ERROR"
    message = "The server experienced an unexpected error when processing the request."


class OffsetOutOfRangeError(KafkaError):
    """OFFSET_OUT_OF_RANGE (1): not retriable.

    The requested offset is not within the range of offsets maintained by the server.
    """

    code = 1
    name = "OFFSET_OUT_OF_RANGE"
    message = "The requested offset is not within the range of offsets maintained by the server."


class CorruptMessageError(RetriableKafkaError):
    """CORRUPT_MESSAGE (2): retriable.

    This message has failed its CRC checksum, exceeds the valid size, has a null key for a
    compacted topic, or is otherwise corrupt.
    """

    code = 2
    name = "CORRUPT_MESSAGE"
    message = (
        "This message has failed its CRC checksum, exceeds the valid size, has a null key for a "
        "compacted topic, or is otherwise corrupt."
    )


class UnknownTopicOrPartitionError(InvalidMetadataKafkaError):
    """UNKNOWN_TOPIC_OR_PARTITION (3): retriable after a metadata refresh.

    This server does not host this topic-partition.
    """

    code = 3
    name = "UNKNOWN_TOPIC_OR_PARTITION"
    message = "This server does not host this topic-partition."


class InvalidFetchSizeError(KafkaError):
    """INVALID_FETCH_SIZE (4): not retriable.

    The requested fetch size is invalid.
    """

    code = 4
    name = "INVALID_FETCH_SIZE"
    message = "The requested fetch size is invalid."


class LeaderNotAvailableError(InvalidMetadataKafkaError):
    """LEADER_NOT_AVAILABLE (5): retriable after a metadata refresh.

    There is no leader for this topic-partition as we are in the middle of a leadership
    election.
    """

    code = 5
    name = "LEADER_NOT_AVAILABLE"
    message = (
        "There is no leader for this topic-partition as we are in the middle of a leadership "
        "election."
    )


class NotLeaderOrFollowerError(InvalidMetadataKafkaError):
    """NOT_LEADER_OR_FOLLOWER (6): retriable after a metadata refresh.

    For requests intended only for the leader, this error indicates that the broker is not the
    current leader. For requests intended for any replica, this error indicates that the broker
    is not a replica of the topic partition.
    """

    code = 6
    name = "NOT_LEADER_OR_FOLLOWER"
    message = (
        "For requests intended only for the leader, this error indicates that the broker is not the"
        " current leader. For requests intended for any replica, this error indicates that the "
        "broker is not a replica of the topic partition."
    )


class RequestTimedOutError(RetriableKafkaError):
    """REQUEST_TIMED_OUT (7): retriable.

    The request timed out.
    """

    code = 7
    name = "REQUEST_TIMED_OUT"
    message = "The request timed out."


class BrokerNotAvailableError(KafkaError):
    """BROKER_NOT_AVAILABLE (8): not retriable.

    The broker is not available.
    """

    code = 8
    name = "BROKER_NOT_AVAILABLE"
    message = "The broker is not available."


class ReplicaNotAvailableError(InvalidMetadataKafkaError):
    """REPLICA_NOT_AVAILABLE (9): retriable after a metadata refresh.

    The replica is not available for the requested topic-partition. Produce/Fetch requests and
    other requests intended only for the leader or follower return NOT_LEADER_OR_FOLLOWER if the
    broker is not a replica of the topic-partition.
    """

    code = 9
    name = "REPLICA_NOT_AVAILABLE"
    message = (
        "The replica is not available for the requested topic-partition. Produce/Fetch requests and"
        " other requests intended only for the leader or follower return NOT_LEADER_OR_FOLLOWER if "
        "the broker is not a replica of the topic-partition."
    )


class MessageTooLargeError(KafkaError):
    """MESSAGE_TOO_LARGE (10): not retriable.

    The request included a message larger than the max message size the server will accept.
    """

    code = 10
    name = "MESSAGE_TOO_LARGE"
    message = (
        "The request included a message larger than the max message size the server will accept."
    )


class StaleControllerEpochError(KafkaError):
    """STALE_CONTROLLER_EPOCH (11): not retriable.

    The controller moved to another broker.
    """

    code = 11
    name = "STALE_CONTROLLER_EPOCH"
    message = "The controller moved to another broker."


class OffsetMetadataTooLargeError(KafkaError):
    """OFFSET_METADATA_TOO_LARGE (12): not retriable.

    The metadata field of the offset request was too large.
    """

    code = 12
    name = "OFFSET_METADATA_TOO_LARGE"
    message = "The metadata field of the offset request was too large."


class NetworkError(InvalidMetadataKafkaError):
    """NETWORK_EXCEPTION (13): retriable after a metadata refresh.

    The server disconnected before a response was received.
    """

    code = 13
    name = "NETWORK_EXCEPTION"
    message = "The server disconnected before a response was received."


class CoordinatorLoadInProgressError(RetriableKafkaError):
    """COORDINATOR_LOAD_IN_PROGRESS (14): retriable.

    The coordinator is loading and hence can't process requests.
    """

    code = 14
    name = "COORDINATOR_LOAD_IN_PROGRESS"
    message = "The coordinator is loading and hence can't process requests."


class CoordinatorNotAvailableError(RetriableKafkaError):
    """COORDINATOR_NOT_AVAILABLE (15): retriable.

    The coordinator is not available.
    """

    code = 15
    name = "COORDINATOR_NOT_AVAILABLE"
    message = "The coordinator is not available."


class NotCoordinatorError(RetriableKafkaError):
    """NOT_COORDINATOR (16): retriable.

    This is not the correct coordinator.
    """

    code = 16
    name = "NOT_COORDINATOR"
    message = "This is not the correct coordinator."


class InvalidTopicError(KafkaError):
    """INVALID_TOPIC_EXCEPTION (17): not retriable.

    The request attempted to perform an operation on an invalid topic.
    """

    code = 17
    name = "INVALID_TOPIC_EXCEPTION"
    message = "The request attempted to perform an operation on an invalid topic."


class RecordListTooLargeError(KafkaError):
    """RECORD_LIST_TOO_LARGE (18): not retriable.

    The request included message batch larger than the configured segment size on the server.
    """

    code = 18
    name = "RECORD_LIST_TOO_LARGE"
    message = (
        "The request included message batch larger than the configured segment size on the server."
    )


class NotEnoughReplicasError(RetriableKafkaError):
    """NOT_ENOUGH_REPLICAS (19): retriable.

    Messages are rejected since there are fewer in-sync replicas than required.
    """

    code = 19
    name = "NOT_ENOUGH_REPLICAS"
    message = "Messages are rejected since there are fewer in-sync replicas than required."


class NotEnoughReplicasAfterAppendError(RetriableKafkaError):
    """NOT_ENOUGH_REPLICAS_AFTER_APPEND (20): retriable.

    Messages are written to the log, but to fewer in-sync replicas than required.
    """

    code = 20
    name = "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
    message = "Messages are written to the log, but to fewer in-sync replicas than required."


class InvalidRequiredAcksError(KafkaError):
    """INVALID_REQUIRED_ACKS (21): not retriable.

    Produce request specified an invalid value for required acks.
    """

    code = 21
    name = "INVALID_REQUIRED_ACKS"
    message = "Produce request specified an invalid value for required acks."


class IllegalGenerationError(KafkaError):
    """ILLEGAL_GENERATION (22): not retriable.

    Specified group generation id is not valid.
    """

    code = 22
    name = "ILLEGAL_GENERATION"
    message = "Specified group generation id is not valid."


class InconsistentGroupProtocolError(KafkaError):
    """INCONSISTENT_GROUP_PROTOCOL (23): not retriable.

    The group member's supported protocols are incompatible with those of existing members or
    first group member tried to join with empty protocol type or empty protocol list.
    """

    code = 23
    name = "INCONSISTENT_GROUP_PROTOCOL"
    message = (
        "The group member's supported protocols are incompatible with those of existing members or "
        "first group member tried to join with empty protocol type or empty protocol list."
    )


class InvalidGroupIdError(KafkaError):
    """INVALID_GROUP_ID (24): not retriable.

    The group id is invalid.
    """

    code = 24
    name = "INVALID_GROUP_ID"
    message = "The group id is invalid."


class UnknownMemberIdError(KafkaError):
    """UNKNOWN_MEMBER_ID (25): not retriable.

    The coordinator is not aware of this member.
    """

    code = 25
    name = "UNKNOWN_MEMBER_ID"
    message = "The coordinator is not aware of this member."


class InvalidSessionTimeoutError(KafkaError):
    """INVALID_SESSION_TIMEOUT (26): not retriable.

    The session timeout is not within the range allowed by the broker (as configured by
    group.min.session.timeout.ms and group.max.session.timeout.ms).
    """

    code = 26
    name = "INVALID_SESSION_TIMEOUT"
    message = (
        "The session timeout is not within the range allowed by the broker (as configured by "
        "group.min.session.timeout.ms and group.max.session.timeout.ms)."
    )


class RebalanceInProgressError(KafkaError):
    """REBALANCE_IN_PROGRESS (27): not retriable.

    The group is rebalancing, so a rejoin is needed.
    """

    code = 27
    name = "REBALANCE_IN_PROGRESS"
    message = "The group is rebalancing, so a rejoin is needed."


class InvalidCommitOffsetSizeError(KafkaError):
    """INVALID_COMMIT_OFFSET_SIZE (28): not retriable.

    The committing offset data size is not valid.
    """

    code = 28
    name = "INVALID_COMMIT_OFFSET_SIZE"
    message = "The committing offset data size is not valid."


class TopicAuthorizationFailedError(KafkaError):
    """TOPIC_AUTHORIZATION_FAILED (29): not retriable.

    Topic authorization failed.
    """

    code = 29
    name = "TOPIC_AUTHORIZATION_FAILED"
    message = "Topic authorization failed."


class GroupAuthorizationFailedError(KafkaError):
    """GROUP_AUTHORIZATION_FAILED (30): not retriable.

    Group authorization failed.
    """

    code = 30
    name = "GROUP_AUTHORIZATION_FAILED"
    message = "Group authorization failed."


class ClusterAuthorizationFailedError(KafkaError):
    """CLUSTER_AUTHORIZATION_FAILED (31): not retriable.

    Cluster authorization failed.
    """

    code = 31
    name = "CLUSTER_AUTHORIZATION_FAILED"
    message = "Cluster authorization failed."


class InvalidTimestampError(KafkaError):
    """INVALID_TIMESTAMP (32): not retriable.

    The timestamp of the message is out of acceptable range.
    """

    code = 32
    name = "INVALID_TIMESTAMP"
    message = "The timestamp of the message is out of acceptable range."


class UnsupportedSaslMechanismError(KafkaError):
    """UNSUPPORTED_SASL_MECHANISM (33): not retriable.

    The broker does not support the requested SASL mechanism.
    """

    code = 33
    name = "UNSUPPORTED_SASL_MECHANISM"
    message = "The broker does not support the requested SASL mechanism."


class IllegalSaslStateError(KafkaError):
    """ILLEGAL_SASL_STATE (34): not retriable.

    Request is not valid given the current SASL state.
    """

    code = 34
    name = "ILLEGAL_SASL_STATE"
    message = "Request is not valid given the current SASL state."


class UnsupportedVersionError(KafkaError):
    """UNSUPPORTED_VERSION (35): not retriable.

    The version of API is not supported.
    """

    code = 35
    name = "UNSUPPORTED_VERSION"
    message = "The version of API is not supported."


class TopicAlreadyExistsError(KafkaError):
    """TOPIC_ALREADY_EXISTS (36): not retriable.

    Topic with this name already exists.
    """

    code = 36
    name = "TOPIC_ALREADY_EXISTS"
    message = "Topic with this name already exists."


class InvalidPartitionsError(KafkaError):
    """INVALID_PARTITIONS (37): not retriable.

    Number of partitions is below 1.
    """

    code = 37
    name = "INVALID_PARTITIONS"
    message = "Number of partitions is below 1."


class InvalidReplicationFactorError(KafkaError):
    """INVALID_REPLICATION_FACTOR (38): not retriable.

    Replication factor is below 1 or larger than the number of available brokers.
    """

    code = 38
    name = "INVALID_REPLICATION_FACTOR"
    message = "Replication factor is below 1 or larger than the number of available brokers."


class InvalidReplicaAssignmentError(KafkaError):
    """INVALID_REPLICA_ASSIGNMENT (39): not retriable.

    Replica assignment is invalid.
    """

    code = 39
    name = "INVALID_REPLICA_ASSIGNMENT"
    message = "Replica assignment is invalid."


class InvalidConfigError(KafkaError):
    """INVALID_CONFIG (40): not retriable.

    Configuration is invalid.
    """

    code = 40
    name = "INVALID_CONFIG"
    message = "Configuration is invalid."


class NotControllerError(RetriableKafkaError):
    """NOT_CONTROLLER (41): retriable.

    This is not the correct controller for this cluster.
    """

    code = 41
    name = "NOT_CONTROLLER"
    message = "This is not the correct controller for this cluster."


class InvalidRequestError(KafkaError):
    """INVALID_REQUEST (42): not retriable.

    This most likely occurs because of a request being malformed by the client library or the
    message was sent to an incompatible broker. See the broker logs for more details.
    """

    code = 42
    name = "INVALID_REQUEST"
    message = (
        "This most likely occurs because of a request being malformed by the client library or the "
        "message was sent to an incompatible broker. See the broker logs for more details."
    )


class UnsupportedForMessageFormatError(KafkaError):
    """UNSUPPORTED_FOR_MESSAGE_FORMAT (43): not retriable.

    The message format version on the broker does not support the request.
    """

    code = 43
    name = "UNSUPPORTED_FOR_MESSAGE_FORMAT"
    message = "The message format version on the broker does not support the request."


class PolicyViolationError(KafkaError):
    """POLICY_VIOLATION (44): not retriable.

    Request parameters do not satisfy the configured policy.
    """

    code = 44
    name = "POLICY_VIOLATION"
    message = "Request parameters do not satisfy the configured policy."


class OutOfOrderSequenceNumberError(KafkaError):
    """OUT_OF_ORDER_SEQUENCE_NUMBER (45): not retriable.

    The broker received an out of order sequence number.
    """

    code = 45
    name = "OUT_OF_ORDER_SEQUENCE_NUMBER"
    message = "The broker received an out of order sequence number."


class DuplicateSequenceNumberError(KafkaError):
    """DUPLICATE_SEQUENCE_NUMBER (46): not retriable.

    The broker received a duplicate sequence number.
    """

    code = 46
    name = "DUPLICATE_SEQUENCE_NUMBER"
    message = "The broker received a duplicate sequence number."


class InvalidProducerEpochError(KafkaError):
    """INVALID_PRODUCER_EPOCH (47): not retriable.

    Producer attempted to produce with an old epoch.
    """

    code = 47
    name = "INVALID_PRODUCER_EPOCH"
    message = "Producer attempted to produce with an old epoch."


class InvalidTxnStateError(KafkaError):
    """INVALID_TXN_STATE (48): not retriable.

    The producer attempted a transactional operation in an invalid state.
    """

    code = 48
    name = "INVALID_TXN_STATE"
    message = "The producer attempted a transactional operation in an invalid state."


class InvalidProducerIdMappingError(KafkaError):
    """INVALID_PRODUCER_ID_MAPPING (49): not retriable.

    The producer attempted to use a producer id which is not currently assigned to its
    transactional id.
    """

    code = 49
    name = "INVALID_PRODUCER_ID_MAPPING"
    message = (
        "The producer attempted to use a producer id which is not currently assigned to its "
        "transactional id."
    )


class InvalidTransactionTimeoutError(KafkaError):
    """INVALID_TRANSACTION_TIMEOUT (50): not retriable.

    The transaction timeout is larger than the maximum value allowed by the broker (as
    configured by transaction.max.timeout.ms).
    """

    code = 50
    name = "INVALID_TRANSACTION_TIMEOUT"
    message = (
        "The transaction timeout is larger than the maximum value allowed by the broker (as "
        "configured by transaction.max.timeout.ms)."
    )


class ConcurrentTransactionsError(RetriableKafkaError):
    """CONCURRENT_TRANSACTIONS (51): retriable.

    The producer attempted to update a transaction while another concurrent operation on the
    same transaction was ongoing.
    """

    code = 51
    name = "CONCURRENT_TRANSACTIONS"
    message = (
        "The producer attempted to update a transaction while another concurrent operation on the "
        "same transaction was ongoing."
    )


class TransactionCoordinatorFencedError(KafkaError):
    """TRANSACTION_COORDINATOR_FENCED (52): not retriable.

    Indicates that the transaction coordinator sending a WriteTxnMarker is no longer the current
    coordinator for a given producer.
    """

    code = 52
    name = "TRANSACTION_COORDINATOR_FENCED"
    message = (
        "Indicates that the transaction coordinator sending a WriteTxnMarker is no longer the "
        "current coordinator for a given producer."
    )


class TransactionalIdAuthorizationFailedError(KafkaError):
    """TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53): not retriable.

    Transactional Id authorization failed.
    """

    code = 53
    name = "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
    message = "Transactional Id authorization failed."


class SecurityDisabledError(KafkaError):
    """SECURITY_DISABLED (54): not retriable.

    Security features are disabled.
    """

    code = 54
    name = "SECURITY_DISABLED"
    message = "Security features are disabled."


class OperationNotAttemptedError(KafkaError):
    """OPERATION_NOT_ATTEMPTED (55): not retriable.

    The broker did not attempt to execute this operation. This may happen for batched RPCs where
    some operations in the batch failed, causing the broker to respond without trying the rest.
    """

    code = 55
    name = "OPERATION_NOT_ATTEMPTED"
    message = (
        "The broker did not attempt to execute this operation. This may happen for batched RPCs "
        "where some operations in the batch failed, causing the broker to respond without trying "
        "the rest."
    )


class KafkaStorageError(InvalidMetadataKafkaError):
    """KAFKA_STORAGE_ERROR (56): retriable after a metadata refresh.

    Disk error when trying to access log file on the disk.
    """

    code = 56
    name = "KAFKA_STORAGE_ERROR"
    message = "Disk error when trying to access log file on the disk."


class LogDirNotFoundError(KafkaError):
    """LOG_DIR_NOT_FOUND (57): not retriable.

    The user-specified log directory is not found in the broker config.
    """

    code = 57
    name = "LOG_DIR_NOT_FOUND"
    message = "The user-specified log directory is not found in the broker config."


class SaslAuthenticationFailedError(KafkaError):
    """SASL_AUTHENTICATION_FAILED (58): not retriable.

    SASL Authentication failed.
    """

    code = 58
    name = "SASL_AUTHENTICATION_FAILED"
    message = "SASL Authentication failed."


class UnknownProducerIdError(KafkaError):
    """UNKNOWN_PRODUCER_ID (59): not retriable.

    This exception is raised by the broker if it could not locate the producer metadata
    associated with the producerId in question. This could happen if, for instance, the
    producer's records were deleted because their retention time had elapsed. Once the last
    records of the producerId are removed, the producer's metadata is removed from the broker,
    and future appends by the producer will return this exception.
    """

    code = 59
    name = "UNKNOWN_PRODUCER_ID"
    message = (
        "This exception is raised by the broker if it could not locate the producer metadata "
        "associated with the producerId in question. This could happen if, for instance, the "
        "producer's records were deleted because their retention time had elapsed. Once the last "
        "records of the producerId are removed, the producer's metadata is removed from the broker,"
        " and future appends by the producer will return this exception."
    )


class ReassignmentInProgressError(KafkaError):
    """REASSIGNMENT_IN_PROGRESS (60): not retriable.

    A partition reassignment is in progress.
    """

    code = 60
    name = "REASSIGNMENT_IN_PROGRESS"
    message = "A partition reassignment is in progress."


class DelegationTokenAuthDisabledError(KafkaError):
    """DELEGATION_TOKEN_AUTH_DISABLED (61): not retriable.

    Delegation Token feature is not enabled.
    """

    code = 61
    name = "DELEGATION_TOKEN_AUTH_DISABLED"
    message = "Delegation Token feature is not enabled."


class DelegationTokenNotFoundError(KafkaError):
    """DELEGATION_TOKEN_NOT_FOUND (62): not retriable.

    Delegation Token is not found on server.
    """

    code = 62
    name = "DELEGATION_TOKEN_NOT_FOUND"
    message = "Delegation Token is not found on server."


class DelegationTokenOwnerMismatchError(KafkaError):
    """DELEGATION_TOKEN_OWNER_MISMATCH (63): not retriable.

    Specified Principal is not valid Owner/Renewer.
    """

    code = 63
    name = "DELEGATION_TOKEN_OWNER_MISMATCH"
    message = "Specified Principal is not valid Owner/Renewer."


class DelegationTokenRequestNotAllowedError(KafkaError):
    """DELEGATION_TOKEN_REQUEST_NOT_ALLOWED (64): not retriable.

    Delegation Token requests are not allowed on PLAINTEXT/1-way SSL channels and on delegation
    token authenticated channels.
    """

    code = 64
    name = "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED"
    message = (
        "Delegation Token requests are not allowed on PLAINTEXT/1-way SSL channels and on "
        "delegation token authenticated channels."
    )


class DelegationTokenAuthorizationFailedError(KafkaError):
    """DELEGATION_TOKEN_AUTHORIZATION_FAILED (65): not retriable.

    Delegation Token authorization failed.
    """

    code = 65
    name = "DELEGATION_TOKEN_AUTHORIZATION_FAILED"
    message = "Delegation Token authorization failed."


class DelegationTokenExpiredError(KafkaError):
    """DELEGATION_TOKEN_EXPIRED (66): not retriable.

    Delegation Token is expired.
    """

    code = 66
    name = "DELEGATION_TOKEN_EXPIRED"
    message = "Delegation Token is expired."


class InvalidPrincipalTypeError(KafkaError):
    """INVALID_PRINCIPAL_TYPE (67): not retriable.

    Supplied principalType is not supported.
    """

    code = 67
    name = "INVALID_PRINCIPAL_TYPE"
    message = "Supplied principalType is not supported."


class NonEmptyGroupError(KafkaError):
    """NON_EMPTY_GROUP (68): not retriable.

    The group is not empty.
    """

    code = 68
    name = "NON_EMPTY_GROUP"
    message = "The group is not empty."


class GroupIdNotFoundError(KafkaError):
    """GROUP_ID_NOT_FOUND (69): not retriable.

    The group id does not exist.
    """

    code = 69
    name = "GROUP_ID_NOT_FOUND"
    message = "The group id does not exist."


class FetchSessionIdNotFoundError(RetriableKafkaError):
    """FETCH_SESSION_ID_NOT_FOUND (70): retriable.

    The fetch session ID was not found.
    """

    code = 70
    name = "FETCH_SESSION_ID_NOT_FOUND"
    message = "The fetch session ID was not found."


class InvalidFetchSessionEpochError(RetriableKafkaError):
    """INVALID_FETCH_SESSION_EPOCH (71): retriable.

    The fetch session epoch is invalid.
    """

    code = 71
    name = "INVALID_FETCH_SESSION_EPOCH"
    message = "The fetch session epoch is invalid."


class ListenerNotFoundError(InvalidMetadataKafkaError):
    """LISTENER_NOT_FOUND (72): retriable after a metadata refresh.

    There is no listener on the leader broker that matches the listener on which metadata
    request was processed.
    """

    code = 72
    name = "LISTENER_NOT_FOUND"
    message = (
        "There is no listener on the leader broker that matches the listener on which metadata "
        "request was processed."
    )


class TopicDeletionDisabledError(KafkaError):
    """TOPIC_DELETION_DISABLED (73): not retriable.

    Topic deletion is disabled.
    """

    code = 73
    name = "TOPIC_DELETION_DISABLED"
    message = "Topic deletion is disabled."


class FencedLeaderEpochError(InvalidMetadataKafkaError):
    """FENCED_LEADER_EPOCH (74): retriable after a metadata refresh.

    The leader epoch in the request is older than the epoch on the broker.
    """

    code = 74
    name = "FENCED_LEADER_EPOCH"
    message = "The leader epoch in the request is older than the epoch on the broker."


class UnknownLeaderEpochError(RetriableKafkaError):
    """UNKNOWN_LEADER_EPOCH (75): retriable.

    The leader epoch in the request is newer than the epoch on the broker.
    """

    code = 75
    name = "UNKNOWN_LEADER_EPOCH"
    message = "The leader epoch in the request is newer than the epoch on the broker."


class UnsupportedCompressionTypeError(KafkaError):
    """UNSUPPORTED_COMPRESSION_TYPE (76): not retriable.

    The requesting client does not support the compression type of given partition.
    """

    code = 76
    name = "UNSUPPORTED_COMPRESSION_TYPE"
    message = "The requesting client does not support the compression type of given partition."


class StaleBrokerEpochError(KafkaError):
    """STALE_BROKER_EPOCH (77): not retriable.

    Broker epoch has changed.
    """

    code = 77
    name = "STALE_BROKER_EPOCH"
    message = "Broker epoch has changed."


class OffsetNotAvailableError(RetriableKafkaError):
    """OFFSET_NOT_AVAILABLE (78): retriable.

    The leader high watermark has not caught up from a recent leader election so the offsets
    cannot be guaranteed to be monotonically increasing.
    """

    code = 78
    name = "OFFSET_NOT_AVAILABLE"
    message = (
        "The leader high watermark has not caught up from a recent leader election so the offsets "
        "cannot be guaranteed to be monotonically increasing."
    )


class MemberIdRequiredError(KafkaError):
    """MEMBER_ID_REQUIRED (79): not retriable.

    The group member needs to have a valid member id before actually entering a consumer group.
    """

    code = 79
    name = "MEMBER_ID_REQUIRED"
    message = (
        "The group member needs to have a valid member id before actually entering a consumer "
        "group."
    )


class PreferredLeaderNotAvailableError(InvalidMetadataKafkaError):
    """PREFERRED_LEADER_NOT_AVAILABLE (80): retriable after a metadata refresh.

    The preferred leader was not available.
    """

    code = 80
    name = "PREFERRED_LEADER_NOT_AVAILABLE"
    message = "The preferred leader was not available."


class GroupMaxSizeReachedError(KafkaError):
    """GROUP_MAX_SIZE_REACHED (81): not retriable.

    The group has reached its maximum size.
    """

    code = 81
    name = "GROUP_MAX_SIZE_REACHED"
    message = "The group has reached its maximum size."


class FencedInstanceIdError(KafkaError):
    """FENCED_INSTANCE_ID (82): not retriable.

    The broker rejected this static consumer since another consumer with the same
    group.instance.id has registered with a different member.id.
    """

    code = 82
    name = "FENCED_INSTANCE_ID"
    message = (
        "The broker rejected this static consumer since another consumer with the same "
        "group.instance.id has registered with a different member.id."
    )


class EligibleLeadersNotAvailableError(InvalidMetadataKafkaError):
    """ELIGIBLE_LEADERS_NOT_AVAILABLE (83): retriable after a metadata refresh.

    Eligible topic partition leaders are not available.
    """

    code = 83
    name = "ELIGIBLE_LEADERS_NOT_AVAILABLE"
    message = "Eligible topic partition leaders are not available."


class ElectionNotNeededError(InvalidMetadataKafkaError):
    """ELECTION_NOT_NEEDED (84): retriable after a metadata refresh.

    Leader election not needed for topic partition.
    """

    code = 84
    name = "ELECTION_NOT_NEEDED"
    message = "Leader election not needed for topic partition."


class NoReassignmentInProgressError(KafkaError):
    """NO_REASSIGNMENT_IN_PROGRESS (85): not retriable.

    No partition reassignment is in progress.
    """

    code = 85
    name = "NO_REASSIGNMENT_IN_PROGRESS"
    message = "No partition reassignment is in progress."


class GroupSubscribedToTopicError(KafkaError):
    """GROUP_SUBSCRIBED_TO_TOPIC (86): not retriable.

    Deleting offsets of a topic is forbidden while the consumer group is actively subscribed to
    it.
    """

    code = 86
    name = "GROUP_SUBSCRIBED_TO_TOPIC"
    message = (
        "Deleting offsets of a topic is forbidden while the consumer group is actively subscribed "
        "to it."
    )


class InvalidRecordError(KafkaError):
    """INVALID_RECORD (87): not retriable.

    This record has failed the validation on broker and hence will be rejected.
    """

    code = 87
    name = "INVALID_RECORD"
    message = "This record has failed the validation on broker and hence will be rejected."


class UnstableOffsetCommitError(RetriableKafkaError):
    """UNSTABLE_OFFSET_COMMIT (88): retriable.

    There are unstable offsets that need to be cleared.
    """

    code = 88
    name = "UNSTABLE_OFFSET_COMMIT"
    message = "There are unstable offsets that need to be cleared."


class ThrottlingQuotaExceededError(RetriableKafkaError):
    """THROTTLING_QUOTA_EXCEEDED (89): retriable.

    The throttling quota has been exceeded.
    """

    code = 89
    name = "THROTTLING_QUOTA_EXCEEDED"
    message = "The throttling quota has been exceeded."


class ProducerFencedError(KafkaError):
    """PRODUCER_FENCED (90): not retriable.

    There is a newer producer with the same transactionalId which fences the current one.
    """

    code = 90
    name = "PRODUCER_FENCED"
    message = (
        "There is a newer producer with the same transactionalId which fences the current one."
    )


class ResourceNotFoundError(KafkaError):
    """RESOURCE_NOT_FOUND (91): not retriable.

    A request illegally referred to a resource that does not exist.
    """

    code = 91
    name = "RESOURCE_NOT_FOUND"
    message = "A request illegally referred to a resource that does not exist."


class DuplicateResourceError(KafkaError):
    """DUPLICATE_RESOURCE (92): not retriable.

    A request illegally referred to the same resource twice.
    """

    code = 92
    name = "DUPLICATE_RESOURCE"
    message = "A request illegally referred to the same resource twice."


class UnacceptableCredentialError(KafkaError):
    """UNACCEPTABLE_CREDENTIAL (93): not retriable.

    Requested credential would not meet criteria for acceptability.
    """

    code = 93
    name = "UNACCEPTABLE_CREDENTIAL"
    message = "Requested credential would not meet criteria for acceptability."


class InconsistentVoterSetError(KafkaError):
    """INCONSISTENT_VOTER_SET (94): not retriable.

    Indicates that the either the sender or recipient of a voter-only request is not one of the
    expected voters.
    """

    code = 94
    name = "INCONSISTENT_VOTER_SET"
    message = (
        "Indicates that the either the sender or recipient of a voter-only request is not one of "
        "the expected voters."
    )


class InvalidUpdateVersionError(KafkaError):
    """INVALID_UPDATE_VERSION (95): not retriable.

    The given update version was invalid.
    """

    code = 95
    name = "INVALID_UPDATE_VERSION"
    message = "The given update version was invalid."


class FeatureUpdateFailedError(KafkaError):
    """FEATURE_UPDATE_FAILED (96): not retriable.

    Unable to update finalized features due to an unexpected server error.
    """

    code = 96
    name = "FEATURE_UPDATE_FAILED"
    message = "Unable to update finalized features due to an unexpected server error."


class PrincipalDeserializationFailureError(KafkaError):
    """PRINCIPAL_DESERIALIZATION_FAILURE (97): not retriable.

    Request principal deserialization failed during forwarding. This indicates an internal error
    on the broker cluster security setup.
    """

    code = 97
    name = "PRINCIPAL_DESERIALIZATION_FAILURE"
    message = (
        "Request principal deserialization failed during forwarding. This indicates an internal "
        "error on the broker cluster security setup."
    )


class SnapshotNotFoundError(KafkaError):
    """SNAPSHOT_NOT_FOUND (98): not retriable.

    Requested snapshot was not found.
    """

    code = 98
    name = "SNAPSHOT_NOT_FOUND"
    message = "Requested snapshot was not found."


class PositionOutOfRangeError(KafkaError):
    """POSITION_OUT_OF_RANGE (99): not retriable.

    Requested position is not greater than or equal to zero, and less than the size of the
    snapshot.
    """

    code = 99
    name = "POSITION_OUT_OF_RANGE"
    message = (
        "Requested position is not greater than or equal to zero, and less than the size of the "
        "snapshot."
    )


class UnknownTopicIdError(InvalidMetadataKafkaError):
    """UNKNOWN_TOPIC_ID (100): retriable after a metadata refresh.

    This server does not host this topic ID.
    """

    code = 100
    name = "UNKNOWN_TOPIC_ID"
    message = "This server does not host this topic ID."


class DuplicateBrokerRegistrationError(KafkaError):
    """DUPLICATE_BROKER_REGISTRATION (101): not retriable.

    This broker ID is already in use.
    """

    code = 101
    name = "DUPLICATE_BROKER_REGISTRATION"
    message = "This broker ID is already in use."


class BrokerIdNotRegisteredError(KafkaError):
    """BROKER_ID_NOT_REGISTERED (102): not retriable.

    The given broker ID was not registered.
    """

    code = 102
    name = "BROKER_ID_NOT_REGISTERED"
    message = "The given broker ID was not registered."


class InconsistentTopicIdError(InvalidMetadataKafkaError):
    """INCONSISTENT_TOPIC_ID (103): retriable after a metadata refresh.

    The log's topic ID did not match the topic ID in the request.
    """

    code = 103
    name = "INCONSISTENT_TOPIC_ID"
    message = "The log's topic ID did not match the topic ID in the request."


class InconsistentClusterIdError(KafkaError):
    """INCONSISTENT_CLUSTER_ID (104): not retriable.

    The clusterId in the request does not match that found on the server.
    """

    code = 104
    name = "INCONSISTENT_CLUSTER_ID"
    message = "The clusterId in the request does not match that found on the server."


class TransactionalIdNotFoundError(KafkaError):
    """TRANSACTIONAL_ID_NOT_FOUND (105): not retriable.

    The transactionalId could not be found.
    """

    code = 105
    name = "TRANSACTIONAL_ID_NOT_FOUND"
    message = "The transactionalId could not be found."


class FetchSessionTopicIdError(RetriableKafkaError):
    """FETCH_SESSION_TOPIC_ID_ERROR (106): retriable.

    The fetch session encountered inconsistent topic ID usage.
    """

    code = 106
    name = "FETCH_SESSION_TOPIC_ID_ERROR"
    message = "The fetch session encountered inconsistent topic ID usage."


class IneligibleReplicaError(KafkaError):
    """INELIGIBLE_REPLICA (107): not retriable.

    The new ISR contains at least one ineligible replica.
    """

    code = 107
    name = "INELIGIBLE_REPLICA"
    message = "The new ISR contains at least one ineligible replica."


class NewLeaderElectedError(KafkaError):
    """NEW_LEADER_ELECTED (108): not retriable.

    The AlterPartition request successfully updated the partition state but the leader has
    changed.
    """

    code = 108
    name = "NEW_LEADER_ELECTED"
    message = (
        "The AlterPartition request successfully updated the partition state but the leader has "
        "changed."
    )


class OffsetMovedToTieredStorageError(KafkaError):
    """OFFSET_MOVED_TO_TIERED_STORAGE (109): not retriable.

    The requested offset is moved to tiered storage.
    """

    code = 109
    name = "OFFSET_MOVED_TO_TIERED_STORAGE"
    message = "The requested offset is moved to tiered storage."


class FencedMemberEpochError(KafkaError):
    """FENCED_MEMBER_EPOCH (110): not retriable.

    The member epoch is fenced by the group coordinator. The member must abandon all its
    partitions and rejoin.
    """

    code = 110
    name = "FENCED_MEMBER_EPOCH"
    message = (
        "The member epoch is fenced by the group coordinator. The member must abandon all its "
        "partitions and rejoin."
    )


class UnreleasedInstanceIdError(KafkaError):
    """UNRELEASED_INSTANCE_ID (111): not retriable.

    The instance ID is still used by another member in the consumer group. That member must
    leave first.
    """

    code = 111
    name = "UNRELEASED_INSTANCE_ID"
    message = (
        "The instance ID is still used by another member in the consumer group. That member must "
        "leave first."
    )


class UnsupportedAssignorError(KafkaError):
    """UNSUPPORTED_ASSIGNOR (112): not retriable.

    The assignor or its version range is not supported by the consumer group.
    """

    code = 112
    name = "UNSUPPORTED_ASSIGNOR"
    message = "The assignor or its version range is not supported by the consumer group."


class StaleMemberEpochError(KafkaError):
    """STALE_MEMBER_EPOCH (113): not retriable.

    The member epoch is stale. The member must retry after receiving its updated member epoch
    via the ConsumerGroupHeartbeat API.
    """

    code = 113
    name = "STALE_MEMBER_EPOCH"
    message = (
        "The member epoch is stale. The member must retry after receiving its updated member epoch "
        "via the ConsumerGroupHeartbeat API."
    )


class MismatchedEndpointTypeError(KafkaError):
    """MISMATCHED_ENDPOINT_TYPE (114): not retriable.

    The request was sent to an endpoint of the wrong type.
    """

    code = 114
    name = "MISMATCHED_ENDPOINT_TYPE"
    message = "The request was sent to an endpoint of the wrong type."


class UnsupportedEndpointTypeError(KafkaError):
    """UNSUPPORTED_ENDPOINT_TYPE (115): not retriable.

    This endpoint type is not supported yet.
    """

    code = 115
    name = "UNSUPPORTED_ENDPOINT_TYPE"
    message = "This endpoint type is not supported yet."


class UnknownControllerIdError(KafkaError):
    """UNKNOWN_CONTROLLER_ID (116): not retriable.

    This controller ID is not known.
    """

    code = 116
    name = "UNKNOWN_CONTROLLER_ID"
    message = "This controller ID is not known."


class UnknownSubscriptionIdError(KafkaError):
    """UNKNOWN_SUBSCRIPTION_ID (117): not retriable.

    Client sent a push telemetry request with an invalid or outdated subscription ID.
    """

    code = 117
    name = "UNKNOWN_SUBSCRIPTION_ID"
    message = "Client sent a push telemetry request with an invalid or outdated subscription ID."


class TelemetryTooLargeError(KafkaError):
    """TELEMETRY_TOO_LARGE (118): not retriable.

    Client sent a push telemetry request larger than the maximum size the broker will accept.
    """

    code = 118
    name = "TELEMETRY_TOO_LARGE"
    message = (
        "Client sent a push telemetry request larger than the maximum size the broker will accept."
    )


class InvalidRegistrationError(KafkaError):
    """INVALID_REGISTRATION (119): not retriable.

    The controller has considered the broker registration to be invalid.
    """

    code = 119
    name = "INVALID_REGISTRATION"
    message = "The controller has considered the broker registration to be invalid."


class TransactionAbortableError(KafkaError):
    """TRANSACTION_ABORTABLE (120): not retriable.

    The server encountered an error with the transaction. The client can abort the transaction
    to continue using this transactional ID.
    """

    code = 120
    name = "TRANSACTION_ABORTABLE"
    message = (
        "The server encountered an error with the transaction. The client can abort the transaction"
        " to continue using this transactional ID."
    )


class InvalidRecordStateError(KafkaError):
    """INVALID_RECORD_STATE (121): not retriable.

    The record state is invalid. The acknowledgement of delivery could not be completed.
    """

    code = 121
    name = "INVALID_RECORD_STATE"
    message = "The record state is invalid. The acknowledgement of delivery could not be completed."


class ShareSessionNotFoundError(RetriableKafkaError):
    """SHARE_SESSION_NOT_FOUND (122): retriable.

    The share session was not found.
    """

    code = 122
    name = "SHARE_SESSION_NOT_FOUND"
    message = "The share session was not found."


class InvalidShareSessionEpochError(RetriableKafkaError):
    """INVALID_SHARE_SESSION_EPOCH (123): retriable.

    The share session epoch is invalid.
    """

    code = 123
    name = "INVALID_SHARE_SESSION_EPOCH"
    message = "The share session epoch is invalid."


class FencedStateEpochError(KafkaError):
    """FENCED_STATE_EPOCH (124): not retriable.

    The share coordinator rejected the request because the share-group state epoch did not
    match.
    """

    code = 124
    name = "FENCED_STATE_EPOCH"
    message = (
        "The share coordinator rejected the request because the share-group state epoch did not "
        "match."
    )


class InvalidVoterKeyError(KafkaError):
    """INVALID_VOTER_KEY (125): not retriable.

    The voter key doesn't match the receiving replica's key.
    """

    code = 125
    name = "INVALID_VOTER_KEY"
    message = "The voter key doesn't match the receiving replica's key."


class DuplicateVoterError(KafkaError):
    """DUPLICATE_VOTER (126): not retriable.

    The voter is already part of the set of voters.
    """

    code = 126
    name = "DUPLICATE_VOTER"
    message = "The voter is already part of the set of voters."


class VoterNotFoundError(KafkaError):
    """VOTER_NOT_FOUND (127): not retriable.

    The voter is not part of the set of voters.
    """

    code = 127
    name = "VOTER_NOT_FOUND"
    message = "The voter is not part of the set of voters."


class InvalidRegularExpressionError(KafkaError):
    """INVALID_REGULAR_EXPRESSION (128): not retriable.

    The regular expression is not valid.
    """

    code = 128
    name = "INVALID_REGULAR_EXPRESSION"
    message = "The regular expression is not valid."


class RebootstrapRequiredError(KafkaError):
    """REBOOTSTRAP_REQUIRED (129): not retriable.

    Client metadata is stale. The client should rebootstrap to obtain new metadata.
    """

    code = 129
    name = "REBOOTSTRAP_REQUIRED"
    message = "Client metadata is stale. The client should rebootstrap to obtain new metadata."


class StreamsInvalidTopologyError(KafkaError):
    """STREAMS_INVALID_TOPOLOGY (130): not retriable.

    The supplied topology is invalid.
    """

    code = 130
    name = "STREAMS_INVALID_TOPOLOGY"
    message = "The supplied topology is invalid."


class StreamsInvalidTopologyEpochError(KafkaError):
    """STREAMS_INVALID_TOPOLOGY_EPOCH (131): not retriable.

    The supplied topology epoch is invalid.
    """

    code = 131
    name = "STREAMS_INVALID_TOPOLOGY_EPOCH"
    message = "The supplied topology epoch is invalid."


class StreamsTopologyFencedError(KafkaError):
    """STREAMS_TOPOLOGY_FENCED (132): not retriable.

    The supplied topology epoch is outdated.
    """

    code = 132
    name = "STREAMS_TOPOLOGY_FENCED"
    message = "The supplied topology epoch is outdated."


class ShareSessionLimitReachedError(RetriableKafkaError):
    """SHARE_SESSION_LIMIT_REACHED (133): retriable.

    The limit of share sessions has been reached.
    """

    code = 133
    name = "SHARE_SESSION_LIMIT_REACHED"
    message = "The limit of share sessions has been reached."


#: Every class above, in the order of Kafka's table.
_TABLE: tuple[type[KafkaError], ...] = (
    UnknownServerError,
    OffsetOutOfRangeError,
    CorruptMessageError,
    UnknownTopicOrPartitionError,
    InvalidFetchSizeError,
    LeaderNotAvailableError,
    NotLeaderOrFollowerError,
    RequestTimedOutError,
    BrokerNotAvailableError,
    ReplicaNotAvailableError,
    MessageTooLargeError,
    StaleControllerEpochError,
    OffsetMetadataTooLargeError,
    NetworkError,
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    NotCoordinatorError,
    InvalidTopicError,
    RecordListTooLargeError,
    NotEnoughReplicasError,
    NotEnoughReplicasAfterAppendError,
    InvalidRequiredAcksError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    InvalidGroupIdError,
    UnknownMemberIdError,
    InvalidSessionTimeoutError,
    RebalanceInProgressError,
    InvalidCommitOffsetSizeError,
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    InvalidTimestampError,
    UnsupportedSaslMechanismError,
    IllegalSaslStateError,
    UnsupportedVersionError,
    TopicAlreadyExistsError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidReplicaAssignmentError,
    InvalidConfigError,
    NotControllerError,
    InvalidRequestError,
    UnsupportedForMessageFormatError,
    PolicyViolationError,
    OutOfOrderSequenceNumberError,
    DuplicateSequenceNumberError,
    InvalidProducerEpochError,
    InvalidTxnStateError,
    InvalidProducerIdMappingError,
    InvalidTransactionTimeoutError,
    ConcurrentTransactionsError,
    TransactionCoordinatorFencedError,
    TransactionalIdAuthorizationFailedError,
    SecurityDisabledError,
    OperationNotAttemptedError,
    KafkaStorageError,
    LogDirNotFoundError,
    SaslAuthenticationFailedError,
    UnknownProducerIdError,
    ReassignmentInProgressError,
    DelegationTokenAuthDisabledError,
    DelegationTokenNotFoundError,
    DelegationTokenOwnerMismatchError,
    DelegationTokenRequestNotAllowedError,
    DelegationTokenAuthorizationFailedError,
    DelegationTokenExpiredError,
    InvalidPrincipalTypeError,
    NonEmptyGroupError,
    GroupIdNotFoundError,
    FetchSessionIdNotFoundError,
    InvalidFetchSessionEpochError,
    ListenerNotFoundError,
    TopicDeletionDisabledError,
    FencedLeaderEpochError,
    UnknownLeaderEpochError,
    UnsupportedCompressionTypeError,
    StaleBrokerEpochError,
    OffsetNotAvailableError,
    MemberIdRequiredError,
    PreferredLeaderNotAvailableError,
    GroupMaxSizeReachedError,
    FencedInstanceIdError,
    EligibleLeadersNotAvailableError,
    ElectionNotNeededError,
    NoReassignmentInProgressError,
    GroupSubscribedToTopicError,
    InvalidRecordError,
    UnstableOffsetCommitError,
    ThrottlingQuotaExceededError,
    ProducerFencedError,
    ResourceNotFoundError,
    DuplicateResourceError,
    UnacceptableCredentialError,
    InconsistentVoterSetError,
    InvalidUpdateVersionError,
    FeatureUpdateFailedError,
    PrincipalDeserializationFailureError,
    SnapshotNotFoundError,
    PositionOutOfRangeError,
    UnknownTopicIdError,
    DuplicateBrokerRegistrationError,
    BrokerIdNotRegisteredError,
    InconsistentTopicIdError,
    InconsistentClusterIdError,
    TransactionalIdNotFoundError,
    FetchSessionTopicIdError,
    IneligibleReplicaError,
    NewLeaderElectedError,
    OffsetMovedToTieredStorageError,
    FencedMemberEpochError,
    UnreleasedInstanceIdError,
    UnsupportedAssignorError,
    StaleMemberEpochError,
    MismatchedEndpointTypeError,
    UnsupportedEndpointTypeError,
    UnknownControllerIdError,
    UnknownSubscriptionIdError,
    TelemetryTooLargeError,
    InvalidRegistrationError,
    TransactionAbortableError,
    InvalidRecordStateError,
    ShareSessionNotFoundError,
    InvalidShareSessionEpochError,
    FencedStateEpochError,
    InvalidVoterKeyError,
    DuplicateVoterError,
    VoterNotFoundError,
    InvalidRegularExpressionError,
    RebootstrapRequiredError,
    StreamsInvalidTopologyError,
    StreamsInvalidTopologyEpochError,
    StreamsTopologyFencedError,
    ShareSessionLimitReachedError,
)

__all__ += [
    "BrokerIdNotRegisteredError",
    "BrokerNotAvailableError",
    "ClusterAuthorizationFailedError",
    "ConcurrentTransactionsError",
    "CoordinatorLoadInProgressError",
    "CoordinatorNotAvailableError",
    "CorruptMessageError",
    "DelegationTokenAuthDisabledError",
    "DelegationTokenAuthorizationFailedError",
    "DelegationTokenExpiredError",
    "DelegationTokenNotFoundError",
    "DelegationTokenOwnerMismatchError",
    "DelegationTokenRequestNotAllowedError",
    "DuplicateBrokerRegistrationError",
    "DuplicateResourceError",
    "DuplicateSequenceNumberError",
    "DuplicateVoterError",
    "ElectionNotNeededError",
    "EligibleLeadersNotAvailableError",
    "FeatureUpdateFailedError",
    "FencedInstanceIdError",
    "FencedLeaderEpochError",
    "FencedMemberEpochError",
    "FencedStateEpochError",
    "FetchSessionIdNotFoundError",
    "FetchSessionTopicIdError",
    "GroupAuthorizationFailedError",
    "GroupIdNotFoundError",
    "GroupMaxSizeReachedError",
    "GroupSubscribedToTopicError",
    "IllegalGenerationError",
    "IllegalSaslStateError",
    "InconsistentClusterIdError",
    "InconsistentGroupProtocolError",
    "InconsistentTopicIdError",
    "InconsistentVoterSetError",
    "IneligibleReplicaError",
    "InvalidCommitOffsetSizeError",
    "InvalidConfigError",
    "InvalidFetchSessionEpochError",
    "InvalidFetchSizeError",
    "InvalidGroupIdError",
    "InvalidPartitionsError",
    "InvalidPrincipalTypeError",
    "InvalidProducerEpochError",
    "InvalidProducerIdMappingError",
    "InvalidRecordError",
    "InvalidRecordStateError",
    "InvalidRegistrationError",
    "InvalidRegularExpressionError",
    "InvalidReplicaAssignmentError",
    "InvalidReplicationFactorError",
    "InvalidRequestError",
    "InvalidRequiredAcksError",
    "InvalidSessionTimeoutError",
    "InvalidShareSessionEpochError",
    "InvalidTimestampError",
    "InvalidTopicError",
    "InvalidTransactionTimeoutError",
    "InvalidTxnStateError",
    "InvalidUpdateVersionError",
    "InvalidVoterKeyError",
    "KafkaStorageError",
    "LeaderNotAvailableError",
    "ListenerNotFoundError",
    "LogDirNotFoundError",
    "MemberIdRequiredError",
    "MessageTooLargeError",
    "MismatchedEndpointTypeError",
    "NetworkError",
    "NewLeaderElectedError",
    "NoReassignmentInProgressError",
    "NonEmptyGroupError",
    "NotControllerError",
    "NotCoordinatorError",
    "NotEnoughReplicasAfterAppendError",
    "NotEnoughReplicasError",
    "NotLeaderOrFollowerError",
    "OffsetMetadataTooLargeError",
    "OffsetMovedToTieredStorageError",
    "OffsetNotAvailableError",
    "OffsetOutOfRangeError",
    "OperationNotAttemptedError",
    "OutOfOrderSequenceNumberError",
    "PolicyViolationError",
    "PositionOutOfRangeError",
    "PreferredLeaderNotAvailableError",
    "PrincipalDeserializationFailureError",
    "ProducerFencedError",
    "ReassignmentInProgressError",
    "RebalanceInProgressError",
    "RebootstrapRequiredError",
    "RecordListTooLargeError",
    "ReplicaNotAvailableError",
    "RequestTimedOutError",
    "ResourceNotFoundError",
    "SaslAuthenticationFailedError",
    "SecurityDisabledError",
    "ShareSessionLimitReachedError",
    "ShareSessionNotFoundError",
    "SnapshotNotFoundError",
    "StaleBrokerEpochError",
    "StaleControllerEpochError",
    "StaleMemberEpochError",
    "StreamsInvalidTopologyEpochError",
    "StreamsInvalidTopologyError",
    "StreamsTopologyFencedError",
    "TelemetryTooLargeError",
    "ThrottlingQuotaExceededError",
    "TopicAlreadyExistsError",
    "TopicAuthorizationFailedError",
    "TopicDeletionDisabledError",
    "TransactionAbortableError",
    "TransactionCoordinatorFencedError",
    "TransactionalIdAuthorizationFailedError",
    "TransactionalIdNotFoundError",
    "UnacceptableCredentialError",
    "UnknownControllerIdError",
    "UnknownLeaderEpochError",
    "UnknownMemberIdError",
    "UnknownProducerIdError",
    "UnknownServerError",
    "UnknownSubscriptionIdError",
    "UnknownTopicIdError",
    "UnknownTopicOrPartitionError",
    "UnreleasedInstanceIdError",
    "UnstableOffsetCommitError",
    "UnsupportedAssignorError",
    "UnsupportedCompressionTypeError",
    "UnsupportedEndpointTypeError",
    "UnsupportedForMessageFormatError",
    "UnsupportedSaslMechanismError",
    "UnsupportedVersionError",
    "VoterNotFoundError",
]
# --- END GENERATED ---


class UnknownKafkaCodeError(UnknownServerError):
    """Base class of the error codes this version of trio-brod does not know.

    A broker newer than trio-brod may answer with a code added after this release.
    :func:`for_code` then makes, once per code, a subclass of this class whose ``code`` is
    the number received and whose ``name`` is ``"UNKNOWN_CODE_<code>"``; it is neither
    retriable nor an invalid-metadata error, since nothing is known about it. Kafka's Java
    client maps such codes to ``UnknownServerException``; being an
    :class:`UnknownServerError`, these classes are caught the same way.

    Catch this class to tell "a code I cannot interpret" from the ones in the table.
    """

    name = "UNKNOWN_CODE"
    message = "The broker answered with an error code this version of trio-brod does not know."


_BY_CODE: Final[dict[int, type[KafkaError]]] = {cls.code: cls for cls in _TABLE}

#: Every error code Kafka defines (the non-zero ones) mapped to its class. Read-only; codes
#: missing here are handled by :func:`for_code`.
ERRORS_BY_CODE: Final[Mapping[int, type[KafkaError]]] = MappingProxyType(_BY_CODE)

#: Classes made by :func:`for_code` for codes not in the table, so that each code has exactly
#: one class (``except`` and ``isinstance`` work across occurrences).
_UNKNOWN_CODES: Final[dict[int, type[UnknownKafkaCodeError]]] = {}


def for_code(code: int) -> type[KafkaError]:
    """The exception class for a (non-zero) Kafka error code.

    Args:
        code: An ``error_code`` field from a response.

    Returns:
        The class from :data:`ERRORS_BY_CODE`; for a code missing there (a broker newer than
        this release), a subclass of :class:`UnknownKafkaCodeError` made on the first call
        and returned again on later ones.

    Raises:
        ValueError: ``code`` is 0 (``NONE``, which is not an error), or is not a 16-bit
            signed integer, so no broker could have sent it.
    """
    try:
        return _BY_CODE[code]
    except KeyError:
        pass
    cls = _UNKNOWN_CODES.get(code)
    if cls is not None:
        return cls
    if code == 0:
        raise ValueError("error code 0 (NONE) means success and has no exception class")
    if not -0x8000 <= code <= 0x7FFF:
        raise ValueError(f"error code {code!r} is not a 16-bit signed integer")
    return _make_unknown_code_class(code)


def _make_unknown_code_class(code: int) -> type[UnknownKafkaCodeError]:
    """Make (once) the :class:`UnknownKafkaCodeError` subclass for an unknown ``code``."""
    name = f"UnknownKafkaCode{code}Error".replace("-", "Minus")
    cls = type(
        name,
        (UnknownKafkaCodeError,),
        {
            "__module__": __name__,
            "__doc__": f"Error code {code}, which this version of trio-brod does not know.",
            "code": code,
            "name": f"UNKNOWN_CODE_{code}",
            "message": (
                f"The broker answered with error code {code}, which this version of "
                "trio-brod does not know (the broker is probably newer)."
            ),
        },
    )
    # setdefault: if two threads race here, both get the class that was stored first.
    return _UNKNOWN_CODES.setdefault(code, cls)


def raise_for_code(code: int, broker_message: str | None = None, /, **context: object) -> None:
    """Raise the exception for a response's ``error_code``; do nothing if it is 0.

    Args:
        code: The ``error_code`` field.
        broker_message: The ``error_message`` field, if the response has one.
        **context: Where the error happened (``topic``, ``partition``, ``group_id``...),
            stored on the exception and shown by ``str()``.

    Raises:
        KafkaError: The subclass :func:`for_code` gives for ``code``.
        ValueError: ``code`` is not a 16-bit signed integer.

    In a loop over many partitions, ``if p.error_code: raise_for_code(...)`` saves the call
    for the usual case; the function itself also returns at once for 0.
    """
    if code == 0:
        return
    raise for_code(code)(broker_message, **context)
