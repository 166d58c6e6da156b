"""Configuration dataclasses.

Each is frozen and validated when constructed: a wrong value raises
:class:`~trio_brod.ConfigError` naming the field, so mistakes surface where the config is
written, not later inside a worker task. Durations are in seconds (floats), as everywhere in
Trio; brod's names carry a unit (``reconnect_cool_down_seconds``, ``request_timeout`` in ms),
ours drop it.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal, NamedTuple, Protocol, TypeAlias

import trio

from trio_brod._exceptions import ConfigError
from trio_brod.protocol.errors import ProtocolError
from trio_brod.protocol.records import BATCH_OVERHEAD, Compression, encode_batch

__all__ = [
    "PARTITIONER_NAMES",
    "BeginOffset",
    "ClientConfig",
    "CompressionName",
    "Connector",
    "ConsumerConfig",
    "FetchConnection",
    "IsolationLevel",
    "OffsetResetPolicy",
    "Partitioner",
    "PartitionerName",
    "ProducerConfig",
    "SaslConfig",
    "Timestamp",
    "check_partitioner",
]


def field_error(owner: object, field: str, value: object, expected: str) -> ConfigError:
    return ConfigError(f"{type(owner).__name__}.{field}={value!r}: expected {expected}")


def check_number(
    owner: object,
    field: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    integer: bool = False,
    allow_infinite: bool = False,
) -> None:
    """Check that ``owner.field`` is a number within bounds, or raise ConfigError.

    Shared by every config class, so all of them word their complaints alike.
    """
    value = getattr(owner, field)
    kind = "an int" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise field_error(owner, field, value, kind)
    if not integer and math.isnan(value):
        raise field_error(owner, field, value, kind)
    if not allow_infinite and not integer and math.isinf(value):
        raise field_error(owner, field, value, f"a finite {kind[2:]}")
    if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
        relation = ">" if exclusive_minimum else ">="
        raise field_error(owner, field, value, f"{kind} {relation} {minimum}")
    if maximum is not None and value > maximum:
        raise field_error(owner, field, value, f"{kind} <= {maximum}")


def check_type(owner: object, field: str, types: type | tuple[type, ...], expected: str) -> None:
    """Check that ``owner.field`` is an instance of ``types``, or raise ConfigError."""
    value = getattr(owner, field)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise field_error(owner, field, value, expected)


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


@dataclasses.dataclass(frozen=True, slots=True)
class SaslConfig:
    """SASL authentication, done on every new connection after the ApiVersions handshake.

    Args:
        mechanism: ``"PLAIN"``, ``"SCRAM-SHA-256"``, ``"SCRAM-SHA-512"`` or ``"OAUTHBEARER"``.
        username: For PLAIN and SCRAM.
        password: For PLAIN and SCRAM.
        token_provider: For OAUTHBEARER: an async function returning a fresh bearer token;
            it is called for each new connection and each re-authentication.

    Use TLS (``ClientConfig.ssl_context``) with PLAIN: it sends the password as is.
    """

    mechanism: SaslMechanism
    username: str = ""
    password: str = dataclasses.field(default="", repr=False)
    token_provider: Callable[[], Awaitable[str]] | None = None

    def __post_init__(self) -> None:
        if self.mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"):
            raise field_error(
                self, "mechanism", self.mechanism, "PLAIN, SCRAM-SHA-256/512 or OAUTHBEARER"
            )
        if self.mechanism == "OAUTHBEARER":
            if self.token_provider is None:
                raise field_error(self, "token_provider", None, "an async function for OAUTHBEARER")
        else:
            check_type(self, "username", str, "a str")
            check_type(self, "password", str, "a str")
            if not self.username:
                raise field_error(
                    self, "username", self.username, f"a user name for {self.mechanism}"
                )


#: Opens a connection to a broker: ``await connect(host, port)`` returns a connected stream
#: (:class:`ClientConfig`'s ``connect``).
Connector: TypeAlias = Callable[[str, int], Awaitable[trio.abc.Stream]]


@dataclasses.dataclass(frozen=True, slots=True)
class ClientConfig:
    """How a :class:`~trio_brod.Client` connects and keeps its metadata.

    Args:
        client_id: Sent with every request; brokers use it in logs and quotas.
        connect_timeout: Seconds to open a TCP (and TLS) connection and finish its handshake.
        request_timeout: Seconds to wait for any response. A connection whose broker misses
            this deadline is closed, as the Java client does. Keep it above the consumers'
            ``max_wait_time`` and the producers' ``ack_timeout``.
        reconnect_cool_down: After a connection to a broker fails, callers asking for that
            broker within this many seconds get the same error at once, instead of a new
            attempt each (brod's ``reconnect_cool_down_seconds``).
        get_metadata_timeout: Seconds that a metadata lookup (a partition's leader, a topic's
            partition count) keeps retrying while a leader is being elected or a new topic is
            being created (brod's ``get_metadata_timeout_seconds``).
        metadata_max_age: Cached metadata older than this many seconds is refreshed before use.
        allow_topic_auto_creation: Let a metadata request for a missing topic create it, if the
            broker allows auto-creation (``auto.create.topics.enable``).
            ``get_metadata_safe`` and ``get_partitions_count_safe`` never do.
        max_frame_size: The largest response frame accepted, in bytes; a larger size prefix
            closes the connection with :class:`~trio_brod.protocol.FrameTooLarge`.
        ssl_context: Connect with TLS using this context (``ssl.create_default_context()``
            verifies the broker against the system's CAs).
        sasl: Authenticate every connection with SASL.
        auto_start_producers: Start a topic's producers on the first produce to it, with
            ``default_producer_config``, instead of raising NotFound (as brod's option).
            ``find_producer`` only looks, whatever this says.
        default_producer_config: The ProducerConfig for producers started without one.
        connect: How a connection to a broker is opened: ``await connect(host, port)``
            returns a connected :class:`trio.abc.Stream`, or raises :class:`OSError`.
            None (the default): a TCP connection. For a proxy or a tunnel, a Unix socket,
            socket options of your own, or a fake Kafka in the same Trio run
            (:meth:`FakeKafka.connect <trio_brod.testing.fake.FakeKafka.connect>`). With
            ``ssl_context``, TLS runs over the stream it returns. It runs within
            ``connect_timeout``. A stream that also has ``send_nowait(data)`` (write all
            at once without blocking, or nothing and raise as ``send_all`` would) gets a
            request's frame straight from its caller while nothing else is being written.
        client_rack: The rack (cloud: availability zone) the client runs in, as the
            brokers' ``broker.rack`` names them. Consumers send it with every Fetch and,
            where the cluster's ``replica.selector.class`` picks a replica in that rack,
            fetch from it instead of the leader (Kafka's KIP-392, follower fetching): no
            cross-zone traffic. Empty (the default): always the leader.
    """

    client_id: str = "trio-brod"
    connect_timeout: float = 5.0
    request_timeout: float = 30.0
    reconnect_cool_down: float = 1.0
    get_metadata_timeout: float = 5.0
    metadata_max_age: float = 300.0
    allow_topic_auto_creation: bool = True
    max_frame_size: int = 128 * 1024 * 1024
    ssl_context: ssl.SSLContext | None = None
    sasl: SaslConfig | None = None
    auto_start_producers: bool = False
    default_producer_config: ProducerConfig | None = None
    client_rack: str = ""
    connect: Connector | None = None

    def __post_init__(self) -> None:
        check_type(self, "client_id", str, "a str")
        connect: object = self.connect  # typed, but a user may pass anything
        if connect is not None and not callable(connect):
            expected = "an async function (host, port) -> trio.abc.Stream, or None"
            raise field_error(self, "connect", self.connect, expected)
        check_type(self, "client_rack", str, "a str")
        check_type(self, "auto_start_producers", bool, "a bool")
        if self.default_producer_config is not None:
            check_type(self, "default_producer_config", ProducerConfig, "a ProducerConfig or None")
        for name in (
            "connect_timeout",
            "request_timeout",
            "get_metadata_timeout",
            "metadata_max_age",
        ):
            check_number(self, name, minimum=0, exclusive_minimum=True)
        check_number(self, "reconnect_cool_down", minimum=0)
        check_type(self, "allow_topic_auto_creation", bool, "a bool")
        check_number(self, "max_frame_size", minimum=1024, integer=True)
        if self.ssl_context is not None:
            check_type(self, "ssl_context", ssl.SSLContext, "an ssl.SSLContext or None")
        if self.sasl is not None:
            check_type(self, "sasl", SaslConfig, "a SaslConfig or None")


# ---------------------------------------------------------------------------- producers


class Partitioner(Protocol):
    """The type of a partitioner: ``(topic, partition_count, key, value) -> partition``.

    The arguments are positional, so any function with four parameters fits, whatever it
    names them. It is called with ``partition_count >= 1`` and must return an ``int`` in
    ``range(partition_count)``; the producer checks that with
    :func:`~trio_brod.producer.partitioners.checked_partition`.
    ``key`` and ``value`` are ``None`` when the message has none.
    """

    def __call__(
        self, topic: str, partition_count: int, key: bytes | None, value: bytes | None, /
    ) -> int:
        """Return the partition, in ``range(partition_count)``, for this message."""
        ...


#: The names of the partitioners in :mod:`trio_brod.producer.partitioners`.
PartitionerName: TypeAlias = Literal["default", "murmur2", "hash", "random", "sticky"]
#: The same names, to check a setting against.
PARTITIONER_NAMES: Final = ("default", "murmur2", "hash", "random", "sticky")


def check_partitioner(spec: object) -> None:
    """A ConfigError unless ``spec`` is a producer's ``partitioner`` setting: a name of
    :data:`PartitionerName`, None (the default) or a callable partitioner.

    Here rather than in :mod:`trio_brod.producer.partitioners`, which turns the setting into
    a partitioner, so that the configs need nothing from the producer package.
    """
    if spec is None or spec in PARTITIONER_NAMES:
        return
    if isinstance(spec, type):
        # Calling a class makes an instance, not a partition: a common slip.
        raise ConfigError(
            f"partitioner={spec.__qualname__}: that is a class; pass an instance, "
            f"e.g. {spec.__qualname__}()"
        )
    if callable(spec) and not isinstance(spec, str):
        return
    raise ConfigError(
        f"partitioner={spec!r}: expected one of {', '.join(map(repr, PARTITIONER_NAMES))}, "
        "None, or a callable (topic, partition_count, key, value) -> int"
    )


CompressionName = Literal["none", "gzip", "snappy", "lz4", "zstd"]

_COMPRESSION_NAMES: dict[str, Compression] = {
    "none": Compression.NONE,
    "gzip": Compression.GZIP,
    "snappy": Compression.SNAPPY,
    "lz4": Compression.LZ4,
    "zstd": Compression.ZSTD,
}

#: The broker remembers the last five batches of each producer; more in flight would let a
#: retry be mistaken for a gap.
IDEMPOTENT_ONWIRE_MAX: Final = 5


@dataclasses.dataclass(frozen=True, slots=True)
class ProducerConfig:
    """How a topic's partition producers batch, send and retry (brod's producer options).

    Args:
        required_acks: ``-1`` (all in-sync replicas, the default), ``1`` (the leader only) or
            ``0`` (no acknowledgement: receipts complete when the request is written, with
            offset ``-1``; only a failed write is retried, as the broker reports nothing).
        ack_timeout: Seconds the broker may wait for replicas before answering. A request
            gets ``ack_timeout`` plus the client's ``request_timeout`` to be answered; after
            that its connection is closed and the request retried.
        partition_buffer_limit: How many produce calls may wait in a partition's channel
            before ``produce`` blocks (a batch call counts as one). The worker also holds up
            to about two ``max_batch_size`` worth of messages it is batching, and what is on
            the wire.
        partition_buffer_bytes: How many bytes of messages (as records, uncompressed) may
            wait in a partition's channel before ``produce`` blocks, whatever the number of
            calls: this is what bounds memory when calls are large (``produce_batch``). A
            call larger than this is still accepted, alone, once the channel is empty.
        partition_onwire_limit: How many Produce requests per partition may await their
            acknowledgement at once. With idempotence at most 5. Above 1 without
            idempotence, a retry can put a batch after one sent later than it.
        max_batch_size: Bytes of messages (uncompressed) gathered into one request; a single
            call larger than that is sent alone.
        max_retries: How many times a batch is sent again after a retriable failure (failing
            to reach the partition's leader counts too) before its messages fail with the
            error; ``-1`` retries forever.
        retry_backoff: Seconds before the first retry; it doubles per retry, with jitter,
            up to ``retry_backoff_max``.
        retry_backoff_max: The longest wait between retries.
        compression: ``"none"``, ``"gzip"``, ``"snappy"``, ``"lz4"`` or ``"zstd"`` (the
            last three need ``pip install trio-brod[compression]``).
        compression_level: The codec's level, or None for its fast default.
        max_linger: Seconds a message may wait for others to join its batch. 0 (the
            default) sends at once; batches still form while earlier requests are on the
            wire, which is where most batching comes from.
        max_linger_count: With ``max_linger``, a batch goes as soon as this many produce
            calls are waiting, however young; 0 for no such limit. A full
            ``max_batch_size`` always goes at once.
        enable_idempotence: Let the broker drop duplicates caused by retries. None (the
            default) turns it on when ``required_acks`` is ``-1``, as the Java client does;
            True with other acks is an error.
        max_request_size: The largest record batch sent, in bytes. A message (or a
            ``produce_batch`` call) that cannot fit is refused at once with
            :class:`~trio_brod.MessageTooLarge`. Keep it at or below the broker's
            ``message.max.bytes`` (1 MiB + 12 by default).
        partitioner: How ``produce`` picks a partition when none is given: ``"default"``
            (murmur2 of the key as the Java client does, sticky for keyless messages),
            ``"hash"`` (or ``"murmur2"``), ``"random"``, ``"sticky"``, an instance from
            :mod:`trio_brod.producer.partitioners`, or any callable
            ``(topic, partition_count, key, value) -> int``. Named ones are made anew for
            each topic producer.
        flush_timeout: When the client closes (or ``stop_producer`` is called), seconds to
            wait for buffered messages to be acknowledged; what is left after that fails
            with :class:`~trio_brod.ProducerClosed`.
        trace_context: Add the current OpenTelemetry span's W3C ``traceparent`` header to
            each message (off: trio-brod never adds headers unless asked).

    Raises:
        ConfigError: A field has a bad value; the message names the field.
    """

    required_acks: Literal[-1, 0, 1] = -1
    ack_timeout: float = 10.0
    partition_buffer_limit: int = 512
    partition_buffer_bytes: int = 8 * 1024 * 1024
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
    partitioner: PartitionerName | Partitioner = "default"
    flush_timeout: float = 30.0
    trace_context: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.required_acks, bool) or self.required_acks not in (-1, 0, 1):
            raise ConfigError(
                f"ProducerConfig.required_acks={self.required_acks!r}: expected -1, 0 or 1"
            )
        check_number(self, "ack_timeout", minimum=0, exclusive_minimum=True, maximum=2**31 / 1000)
        check_number(self, "partition_buffer_limit", minimum=1, integer=True)
        check_number(self, "partition_buffer_bytes", minimum=1, integer=True)
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
        if self.idempotent and self.partition_onwire_limit > IDEMPOTENT_ONWIRE_MAX:
            raise ConfigError(
                f"ProducerConfig.partition_onwire_limit={self.partition_onwire_limit}: "
                f"at most {IDEMPOTENT_ONWIRE_MAX} with idempotence"
            )
        check_partitioner(self.partitioner)
        self._check_codec()

    def _check_codec(self) -> None:
        """Encode a tiny batch, so that a missing codec or a bad level is found here."""
        if self.codec is Compression.NONE and self.compression_level is None:
            return
        try:
            encode_batch(
                [(0, None, b"x", ())],
                compression=self.codec,
                compression_level=self.compression_level,
            )
        except ProtocolError as exc:
            field = "compression" if self.compression_level is None else "compression_level"
            raise ConfigError(
                f"ProducerConfig.{field}={getattr(self, field)!r} "
                f"(compression={self.compression!r}): {exc}"
            ) from exc

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


# ---------------------------------------------------------------------------- consumers

MAX_INT32: Final = 2**31 - 1

OffsetResetPolicy = Literal["reset_by_subscriber", "reset_to_earliest", "reset_to_latest"]
IsolationLevel = Literal["read_committed", "read_uncommitted"]
FetchConnection = Literal["broker", "partition", "shared"]
_FETCH_CONNECTIONS = ("broker", "partition", "shared")

#: Defaults of ``max_wait_time`` and ``sleep_timeout``: brod's for a worker's own connection;
#: on a shared one, a long poll holds up others, and the long poll is all the waiting needed.
_PRIVATE_MAX_WAIT = 10.0
_SHARED_MAX_WAIT = 0.5
_PRIVATE_SLEEP = 1.0
_SHARED_SLEEP = 0.0


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND = datetime.timedelta(microseconds=1)


class Timestamp(NamedTuple):
    """A point in time to start consuming from: the first offset at or after it.

    ``ConsumerConfig(begin_offset=Timestamp(ms))``; a timezone-aware :class:`datetime.datetime`
    is accepted as well, and converted with :meth:`from_datetime` (rounded up to the next
    whole millisecond).
    """

    #: Milliseconds since the epoch.
    ms: int

    @classmethod
    def from_datetime(cls, moment: datetime.datetime) -> Timestamp:
        """The timestamp of an aware datetime, rounded *up* to a whole millisecond.

        Kafka timestamps are whole milliseconds, and a Timestamp means "the first message at
        or after this time". A message stamped in the same millisecond but before a
        sub-millisecond ``moment`` is before it, so the time is rounded up to the next
        millisecond (truncating would start at a message before the requested time). A
        time before 1970 gives ``Timestamp(0)``: no message is stamped before that. The
        arithmetic is exact (integer microseconds), not through a float.

        Raises:
            ConfigError: ``moment`` is naive (has no time zone).
        """
        if moment.utcoffset() is None:
            raise ConfigError(f"{moment!r} has no time zone; use an aware datetime")
        microseconds = (moment - _EPOCH) // _MICROSECOND
        return cls(max(0, -(-microseconds // 1000)))


BeginOffset = Literal["earliest", "latest"] | int | Timestamp | datetime.datetime


def _begin_offset_ok(value: object) -> bool:
    if value in ("earliest", "latest"):
        return True
    if isinstance(value, Timestamp):
        return isinstance(value.ms, int) and not isinstance(value.ms, bool) and value.ms >= 0
    if isinstance(value, datetime.datetime):
        return value.utcoffset() is not None
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclasses.dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """How a topic's partition consumers fetch and deliver (brod's consumer options).

    Args:
        begin_offset: Where a new subscription starts: ``"earliest"``, ``"latest"`` (the
            default: only new messages), an offset, or a :class:`Timestamp` / aware
            ``datetime`` (the first message at or after it). A subscription that does not
            name one continues after the previous subscriber's last acknowledged offset, or
            where that subscriber started if it acknowledged nothing.
        offset_reset_policy: What to do when the offset is out of range (the data was deleted,
            or the offset is past the end): ``"reset_by_subscriber"`` (the default) raises
            :class:`~trio_brod.protocol.errors.OffsetOutOfRangeError` in the subscriber,
            ``"reset_to_earliest"`` and ``"reset_to_latest"`` move on by themselves.
        min_bytes: The broker answers a fetch once it has this many bytes (or ``max_wait_time``
            passed). On a shared connection, the bytes of every partition in the request
            count.
        max_bytes: Bytes to fetch per request. Brokers return a first batch larger than this
            anyway (Kafka's KIP-74); should one not, the limit is raised to fit that batch,
            and returns to this value later (see ``size_stat_window``).
        max_wait_time: Seconds the broker may hold a fetch waiting for ``min_bytes``. None
            (the default): 0.5 s when partitions share connections (``fetch_connection``
            ``"broker"`` or ``"shared"``), where a fetch waiting for data holds
            up those queued behind it, as in the Java consumer; 10 s (brod's) on a worker's
            own connection (``"partition"``).
        sleep_timeout: Seconds to wait before fetching again after an answer with nothing
            new. None (the default): 1 s (brod's) on a worker's own connection; 0 on a
            shared one, where the long poll is the wait. (Either way, an empty answer that
            came early, because another partition of a merged request got data, is
            followed by a wait until ``max_wait_time`` has passed since the fetch.)
        prefetch_count: How many messages may be delivered to the subscriber and not yet
            acknowledged; delivery stops at this count until acks come.
        prefetch_bytes: The same limit in bytes (of the fetched batches; a batch split at
            the window's edge counts pro rata). A single message larger than this is
            delivered alone, once everything before it is acknowledged.
        isolation_level: ``"read_committed"`` (the default, as brod's) hides messages of
            aborted transactions and stops at the last stable offset; ``"read_uncommitted"``
            shows aborted messages too. Transaction markers (control batches) are never
            delivered as messages.
        size_stat_window: After ``max_bytes`` was raised, it follows the largest of the last
            this many batches, never going below the configured value; 0 returns to the
            configured value right after the large batch.
        share_leader_conn: brod's name for ``fetch_connection="shared"``.
        fetch_connection: How partitions are fetched (see the consumer guide,
            "Connections"): ``"broker"`` (the default) hands every subscribed partition to
            one fetcher per broker, which fetches for all of them in one request with an
            incremental fetch session (Kafka's KIP-227), as the Java consumer does;
            ``"partition"`` (brod's default) gives each worker a connection of its own and
            a Fetch request per partition; ``"shared"`` uses the client's connection to the
            leader, where other requests (producing, metadata) wait behind a fetch waiting
            for data. None means ``"shared"`` with ``share_leader_conn``, otherwise
            ``"broker"``.
        trace_context: Link subscribers' handler spans to the spans in the messages'
            ``traceparent`` headers (see the operations guide).
    """

    begin_offset: BeginOffset = "latest"
    offset_reset_policy: OffsetResetPolicy = "reset_by_subscriber"
    min_bytes: int = 1
    max_bytes: int = 1024 * 1024
    max_wait_time: float | None = None
    sleep_timeout: float | None = None
    prefetch_count: int = 1000
    prefetch_bytes: int = 1024 * 1024
    isolation_level: IsolationLevel = "read_committed"
    size_stat_window: int = 5
    share_leader_conn: bool = False
    fetch_connection: FetchConnection | None = None
    trace_context: bool = False

    def __post_init__(self) -> None:
        if not _begin_offset_ok(self.begin_offset):
            raise ConfigError(
                f"ConsumerConfig.begin_offset={self.begin_offset!r}: expected 'earliest', "
                "'latest', an offset >= 0, a Timestamp or an aware datetime"
            )
        if self.offset_reset_policy not in (
            "reset_by_subscriber",
            "reset_to_earliest",
            "reset_to_latest",
        ):
            raise ConfigError(
                f"ConsumerConfig.offset_reset_policy={self.offset_reset_policy!r}: expected "
                "'reset_by_subscriber', 'reset_to_earliest' or 'reset_to_latest'"
            )
        if self.isolation_level not in ("read_committed", "read_uncommitted"):
            raise ConfigError(
                f"ConsumerConfig.isolation_level={self.isolation_level!r}: expected "
                "'read_committed' or 'read_uncommitted'"
            )
        check_number(self, "min_bytes", minimum=0, integer=True, maximum=MAX_INT32)
        check_number(self, "max_bytes", minimum=1, integer=True, maximum=MAX_INT32)
        if self.max_wait_time is not None:
            check_number(self, "max_wait_time", minimum=0, maximum=MAX_INT32 / 1000)
        if self.sleep_timeout is not None:
            check_number(self, "sleep_timeout", minimum=0)
        check_number(self, "prefetch_count", minimum=1, integer=True)
        check_number(self, "prefetch_bytes", minimum=1, integer=True)
        check_number(self, "size_stat_window", minimum=0, integer=True)
        check_type(self, "share_leader_conn", bool, "a bool")
        if self.fetch_connection is not None and self.fetch_connection not in _FETCH_CONNECTIONS:
            raise ConfigError(
                f"ConsumerConfig.fetch_connection={self.fetch_connection!r}: expected "
                "'broker', 'partition', 'shared' or None"
            )
        if self.share_leader_conn and self.fetch_connection not in (None, "shared"):
            raise ConfigError(
                f"ConsumerConfig.share_leader_conn=True contradicts "
                f"fetch_connection={self.fetch_connection!r}"
            )

    @property
    def connection_mode(self) -> FetchConnection:
        """``fetch_connection`` with None resolved (see there)."""
        if self.fetch_connection is not None:
            return self.fetch_connection
        return "shared" if self.share_leader_conn else "broker"

    @property
    def effective_max_wait_time(self) -> float:
        """``max_wait_time`` with None resolved for the connection mode."""
        if self.max_wait_time is not None:
            return self.max_wait_time
        return _PRIVATE_MAX_WAIT if self.connection_mode == "partition" else _SHARED_MAX_WAIT

    @property
    def effective_sleep_timeout(self) -> float:
        """``sleep_timeout`` with None resolved for the connection mode."""
        if self.sleep_timeout is not None:
            return self.sleep_timeout
        return _PRIVATE_SLEEP if self.connection_mode == "partition" else _SHARED_SLEEP

    def replace(self, **changes: Any) -> ConsumerConfig:
        """A copy with some options changed (validated again).

        Raises:
            ConfigError: An option does not exist or has a bad value.
        """
        unknown = sorted(set(changes) - {field.name for field in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"ConsumerConfig has no option {', '.join(map(repr, unknown))}")
        return dataclasses.replace(self, **changes)
