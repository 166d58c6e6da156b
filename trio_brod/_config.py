"""Configuration dataclasses.

Each is frozen and validated when constructed: a wrong value raises
:class:`~trio_brod.ConfigError` naming the field, so mistakes surface where the config is
written, not later inside a worker task. Durations are in seconds (floats), as everywhere in
Trio; brod's names carry a unit (``reconnect_cool_down_seconds``, ``request_timeout`` in ms),
ours drop it.
"""

from __future__ import annotations

import dataclasses
import math
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

from trio_brod._exceptions import ConfigError

if TYPE_CHECKING:
    from trio_brod.producer import ProducerConfig

__all__ = ["ClientConfig", "SaslConfig"]


def _fail(owner: object, field: str, value: object, expected: str) -> ConfigError:
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
        raise _fail(owner, field, value, kind)
    if not integer and math.isnan(value):
        raise _fail(owner, field, value, kind)
    if not allow_infinite and not integer and math.isinf(value):
        raise _fail(owner, field, value, f"a finite {kind[2:]}")
    if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
        relation = ">" if exclusive_minimum else ">="
        raise _fail(owner, field, value, f"{kind} {relation} {minimum}")
    if maximum is not None and value > maximum:
        raise _fail(owner, field, value, f"{kind} <= {maximum}")


def check_type(owner: object, field: str, types: type | tuple[type, ...], expected: str) -> None:
    """Check that ``owner.field`` is an instance of ``types``, or raise ConfigError."""
    value = getattr(owner, field)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise _fail(owner, field, value, expected)


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
            raise _fail(
                self, "mechanism", self.mechanism, "PLAIN, SCRAM-SHA-256/512 or OAUTHBEARER"
            )
        if self.mechanism == "OAUTHBEARER":
            if self.token_provider is None:
                raise _fail(self, "token_provider", None, "an async function for OAUTHBEARER")
        else:
            check_type(self, "username", str, "a str")
            check_type(self, "password", str, "a str")
            if not self.username:
                raise _fail(self, "username", self.username, f"a user name for {self.mechanism}")


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
        max_frame_size: The largest response frame accepted, in bytes; a larger size prefix
            closes the connection with :class:`~trio_brod.protocol.FrameTooLarge`.
        ssl_context: Connect with TLS using this context (``ssl.create_default_context()``
            verifies the broker against the system's CAs).
        sasl: Authenticate every connection with SASL.
        auto_start_producers: Start a topic's producers on the first produce to it, with
            ``default_producer_config``, instead of raising NotFound (as brod's option).
        default_producer_config: The ProducerConfig for producers started without one.
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

    def __post_init__(self) -> None:
        from trio_brod.producer import ProducerConfig

        check_type(self, "client_id", str, "a str")
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
