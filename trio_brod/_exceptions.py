"""Errors raised by the client itself, as opposed to error codes a broker answered with.

Everything here derives from :class:`~trio_brod.BrodError`. Broker error codes are
:class:`~trio_brod.KafkaError` subclasses and live in :mod:`trio_brod.protocol.errors`.

Each class says with ``retriable`` whether the same operation may succeed if tried again
(after a metadata refresh, a reconnect, or simply later), the same meaning the flag has on
:class:`~trio_brod.KafkaError`.
"""

from __future__ import annotations

from trio_brod.protocol.errors import BrodError

__all__ = [
    "BrokerConnectionError",
    "ClientClosed",
    "ConfigError",
    "ConnectionClosed",
    "ConnectionFailed",
    "ConnectionLost",
    "MessageTooLarge",
    "NoLeader",
    "NotFound",
    "ProducerClosed",
    "RequestTimedOut",
    "SaslFailed",
    "UnsupportedVersion",
]


class ConfigError(BrodError, ValueError):
    """A configuration value is invalid. The message names the field and the value."""

    retriable = False


class ClientClosed(BrodError):
    """The client was used after its ``async with`` block ended, or while it was closing."""

    retriable = False


class BrokerConnectionError(BrodError):
    """Base class of the errors about one broker connection.

    Attributes:
        address: The ``"host:port"`` of the broker.
    """

    retriable = True

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"{address}: {reason}")
        self.address = address
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.address, self.reason))


class ConnectionFailed(BrokerConnectionError):
    """Could not connect to a broker, or its handshake (ApiVersions, TLS, SASL) failed.

    While the broker is in its cool-down (``reconnect_cool_down``) after such a failure,
    callers get this error at once, without a new connection attempt.

    Attributes:
        cool_down_left: 0 after a real attempt. For the cool-down's answer, where nothing
            was tried, the seconds until a new attempt will be made: a caller that counts
            its attempts (the producer's retries) waits that long instead of counting one.
        retry_at: For the cool-down's answer, the Trio time at which a new attempt will be
            made (None after a real attempt). Wait with ``trio.sleep_until(retry_at)``
            rather than ``trio.sleep(cool_down_left)``: the pool compares against this very
            number, so the wait always ends past the cool-down. (A relative wait can come
            up a rounding error short, and a MockClock then spins on a zero-length sleep.)
    """

    cool_down_left: float = 0.0
    retry_at: float | None = None


class ConnectionLost(BrokerConnectionError):
    """An established connection broke while a request was waiting for its response."""


class ConnectionClosed(BrokerConnectionError):
    """The connection was closed on purpose (the client is shutting down) with the request
    still in flight."""

    retriable = False


class RequestTimedOut(BrokerConnectionError):
    """A broker did not answer a request within ``request_timeout``.

    The connection is closed when this happens (responses come back in order, so nothing
    after a lost response could be trusted), which fails the other requests in flight on it
    with :class:`ConnectionLost`.
    """


class UnsupportedVersion(BrokerConnectionError):
    """The broker supports no version of a request that trio-brod also supports."""

    retriable = False


class NoLeader(BrodError):
    """A partition has no leader, even after refreshing metadata.

    This is usually temporary (a leader election is under way), hence retriable.
    """

    retriable = True

    def __init__(self, topic: str, partition: int) -> None:
        super().__init__(f"no leader for partition {topic}[{partition}]")
        self.topic = topic
        self.partition = partition

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.topic, self.partition))


class LogTruncated(BrodError):
    """The partition's log was truncated below the consumer's position (an unclean leader
    election: the new leader never had the last records fetched). Detected through the
    leader epochs in Fetch requests (Kafka's KIP-320).

    With ``offset_reset_policy="reset_by_subscriber"`` the subscriber gets this error;
    with the other policies the consumer goes on from :attr:`offset`, where the new
    leader's log diverges from what was fetched (as the Java consumer does).

    Attributes:
        topic: The topic.
        partition: The partition.
        offset: The first offset whose records differ from those fetched.
        epoch: The leader epoch that ends there.
    """

    retriable = False

    def __init__(self, topic: str, partition: int, offset: int, epoch: int) -> None:
        super().__init__(
            f"the log of {topic}[{partition}] was truncated to offset {offset} "
            f"(leader epoch {epoch}) below the position fetched"
        )
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.epoch = epoch

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.topic, self.partition, self.offset, self.epoch))


class NotFound(BrodError, LookupError):
    """A producer or consumer asked for is not running (brod's ``{producer_not_found, ...}``).

    Start it first (``start_producer``/``start_consumer``), or turn on
    ``auto_start_producers`` in the :class:`~trio_brod.ClientConfig`.
    """

    retriable = False


class SaslFailed(ConnectionFailed):
    """SASL authentication failed: bad credentials, a mechanism the broker does not enable, or
    a server whose SCRAM signature does not match (it does not know the password)."""

    retriable = False


class ProducerClosed(BrodError):
    """A message could not be delivered because its producer closed first.

    Receipts still pending when the client's ``async with`` block ends (after the flush
    timeout), or when the block is cancelled, fail with this error.
    """

    retriable = False


class MessageTooLarge(BrodError, ValueError):
    """A message (or batch) is larger than ``max_request_size``; it was refused at once."""

    retriable = False

    def __init__(self, topic: str, partition: int, size: int, limit: int) -> None:
        super().__init__(
            f"message for {topic}[{partition}] is about {size} bytes, over max_request_size={limit}"
        )
        self.topic = topic
        self.partition = partition
        self.size = size
        self.limit = limit

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.topic, self.partition, self.size, self.limit))
