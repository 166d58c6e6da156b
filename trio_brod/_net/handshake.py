"""Everything a connection does before it pipelines: open the stream, ApiVersions, SASL.

The handshake is a short sequential conversation on the bare stream
(:class:`BareExchange`): one request, then its response, then the next. It negotiates the
API versions (:func:`negotiate_versions`), then, with SASL configured, authenticates
(:func:`authenticate`). Re-authentication, when the broker limits the SASL session's
lifetime, runs the same :func:`authenticate` through the connection's pipeline instead (see
``Connection._reauthenticate``).

Failures here are :class:`~trio_brod.ConnectionFailed` or :class:`~trio_brod.SaslFailed`
naming the broker: ``nursery.start(connection.run)`` raises them to whoever opened the
connection.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import trio

from trio_brod._config import ClientConfig, Connector
from trio_brod._exceptions import ConnectionFailed, SaslFailed
from trio_brod._net.sasl import Mechanism, OAuthBearer, Plain, SaslExchangeError, Scram
from trio_brod._util import describe
from trio_brod._version import __version__
from trio_brod.protocol import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    DecodeError,
    FrameDecoder,
    FrameTooLarge,
    SaslAuthenticateRequest,
    SaslHandshakeRequest,
    decode_response,
    encode_request,
    peek_correlation_id,
)
from trio_brod.protocol.errors import (
    IllegalSaslStateError,
    UnsupportedSaslMechanismError,
    UnsupportedVersionError,
    for_code,
)

__all__ = [
    "RECEIVE_SIZE",
    "BareExchange",
    "DeliversNowait",
    "Exchange",
    "MechanismFactory",
    "SendsNowait",
    "TokenUnavailable",
    "VersionChooser",
    "authenticate",
    "describe_tls_failure",
    "looks_like_tls",
    "mechanism_factory",
    "negotiate_versions",
    "new_mechanism",
    "open_stream",
    "open_tcp_stream",
    "reauthentication_time",
]

#: How much to ask the socket for at once. Large fetch responses arrive faster in big reads.
RECEIVE_SIZE = 256 * 1024
#: Seconds a broker insists on between two SASL (re-)authentications of one connection.
_MIN_REAUTH_INTERVAL = 1.1

#: Makes a fresh SASL mechanism for each (re-)authentication.
MechanismFactory = Callable[[], Awaitable[Mechanism]]
#: Sends one request (message, version) and returns its decoded response.
Exchange = Callable[[Any, int], Awaitable[Any]]
#: ``best_version(request_class, min_version)`` of the connection: the version to send.
VersionChooser = Callable[[Any, "int | None"], int]


# ---------------------------------------------------------------- opening the stream


@runtime_checkable
class SendsNowait(Protocol):
    """A stream that can also write without blocking: ``send_nowait(data)`` writes all of
    ``data`` at once, or nothing and raises what ``send_all`` would
    (``trio.BrokenResourceError``...).

    Given such a stream (by :attr:`~trio_brod.ClientConfig.connect`), a connection writes a
    request's frame from its caller while the writer task is idle with nothing queued: no
    task is woken to write it, and frames still go out in the order they were sent. If it
    raises, the frame is queued as usual, and the writer meets the error and closes the
    connection as it would have anyway.
    """

    def send_nowait(self, data: bytes) -> None: ...


@runtime_checkable
class DeliversNowait(Protocol):
    """A stream that can hand what arrives to a callback as it is written:
    ``deliver_to(receiver)`` makes every later write of the other end call ``receiver(data)``
    at once, from the writer's own call, and ``receiver(b"")`` when the other end closes;
    what had arrived before is delivered first. ``receive_some`` is not used meanwhile.

    Given such a stream (by :attr:`~trio_brod.ClientConfig.connect`), a connection needs no
    reader task once its handshake is done: the broker's write of a response wakes the
    request's caller directly. The receiver never raises for the broker's bytes: a
    malformed frame closes the connection, as the reader would.
    """

    def deliver_to(self, receiver: Callable[[bytes], object] | None) -> None: ...


async def open_stream(
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    address: str,
    connect: Connector | None = None,
) -> trio.abc.Stream:
    """A stream to the broker (TCP, or ``connect``'s), with ``ssl_context`` a TLS stream
    over it, handshake done.

    Raises:
        OSError: The connection could not be made.
        ConnectionFailed: The TLS handshake failed (its reason says why).
    """
    opener: Connector = open_tcp_stream if connect is None else connect
    transport = await opener(host, port)
    if ssl_context is None:
        return transport
    stream = trio.SSLStream(transport, ssl_context, server_hostname=host, https_compatible=False)
    try:
        # Left to itself, the TLS handshake happens inside the first send_all, where a
        # rejected certificate surfaces as a bare BrokenResourceError; done here, the
        # error can say what went wrong.
        await stream.do_handshake()
    except BaseException as exc:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)
        if isinstance(exc, (trio.BrokenResourceError, OSError)):
            raise ConnectionFailed(address, describe_tls_failure(exc)) from exc
        raise
    return stream


async def open_tcp_stream(host: str, port: int) -> trio.SocketStream:
    """A TCP stream to ``host``, connected directly when it is an IP address.

    :func:`trio.open_tcp_stream` looks the name up and races the addresses it finds (happy
    eyeballs), which costs about three times the CPU of a plain connect even for a literal
    address; that adds up for consumers opening a connection per partition.

    Raises:
        OSError: The connection could not be made.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a name (or an address with a scope): the general way
        return await trio.open_tcp_stream(host, port)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        await sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


def looks_like_tls(size_prefix: int) -> bool:
    """Whether a response's first four bytes (read as a frame size) start a TLS record.

    A TLS server answers a plaintext request with an alert (content type 0x15) or, rarely,
    a handshake record (0x16), then the protocol version 0x03xx: as a Kafka size prefix
    that is ~350 MB, so it fails the frame size check before anything else looks at it.
    """
    return size_prefix >> 24 in (0x15, 0x16) and (size_prefix >> 16) & 0xFF == 0x03


def describe_tls_failure(exc: BaseException) -> str:
    """What went wrong in a TLS handshake: trio wraps the ssl error in BrokenResourceError."""
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        return (
            f"TLS handshake failed: the broker's certificate was rejected "
            f"({cause.verify_message}); check ClientConfig.ssl_context's CA file and that "
            f"the certificate names this host"
        )
    if isinstance(cause, ssl.SSLEOFError) or cause is None:
        return (
            "TLS handshake failed: the broker closed the connection "
            "(is this a TLS listener, SSL or SASL_SSL?)"
        )
    return f"TLS handshake failed: {describe(cause)}"


# ---------------------------------------------------------------- the bare conversation


class BareExchange:
    """Requests one at a time on the bare stream, before the writer and reader take over.

    It uses the connection's frame decoder, so that nothing the broker sent is lost when
    pipelining starts, and numbers requests from 0: the first request on every connection
    is ApiVersions with correlation id 0, which :func:`negotiate_versions` relies on.

    Attributes:
        next_correlation_id: The correlation id of the next request; the connection
            continues from it.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        decoder: FrameDecoder,
        client_id: str | None,
        address: str,
        *,
        tls: bool,
    ) -> None:
        self._stream = stream
        self._decoder = decoder
        self._client_id = client_id
        self._address = address
        self._tls = tls
        self.next_correlation_id = 0

    async def frame(self, message: Any, version: int) -> bytes:
        """Send one request and return its response frame (not decoded).

        Raises:
            ConnectionFailed: The broker closed the connection, answered another request,
                or answered with TLS on a plaintext connection.
        """
        correlation_id = self.next_correlation_id
        self.next_correlation_id += 1
        stream = self._stream
        await stream.send_all(encode_request(message, version, correlation_id, self._client_id))
        decoder = self._decoder
        try:
            while (frame := decoder.next_frame()) is None:
                data = await stream.receive_some(RECEIVE_SIZE)
                if not data:
                    raise ConnectionFailed(self._address, "the broker closed the connection")
                decoder.feed(data)
        except FrameTooLarge as exc:
            if not self._tls and looks_like_tls(exc.size):
                raise ConnectionFailed(
                    self._address,
                    "the broker answered with TLS: this listener is SSL or SASL_SSL; "
                    "connect with ClientConfig(ssl_context=...)",
                ) from exc
            raise
        if peek_correlation_id(frame) != correlation_id:
            raise ConnectionFailed(self._address, "handshake response has a wrong correlation id")
        return frame

    async def request(self, message: Any, version: int) -> Any:
        """Send one request and return its decoded response (an :data:`Exchange`)."""
        frame = await self.frame(message, version)
        return decode_response(frame, message.RESPONSE, version)


# ---------------------------------------------------------------- ApiVersions


async def negotiate_versions(
    bare: BareExchange, address: str
) -> tuple[dict[int, tuple[int, int]], dict[str, int]]:
    """Ask the broker which versions of each API it supports (ApiVersions).

    Returns:
        The broker's (lowest, highest) version per API key, and the cluster's finalized
        feature levels (``{"transaction.version": 2, ...}``; empty before ApiVersions v3 or
        when the broker sends none): dicts of the caller's own.

    Raises:
        ConnectionFailed: The broker answered with an error, or rejected every version.
    """
    request = ApiVersionsRequest(
        client_software_name="trio-brod", client_software_version=_software_version()
    )
    version = ApiVersionsRequest.MAX_VERSION
    for _attempt in range(2):
        frame = await bare.frame(request, version)
        error_code, ranges, features = _version_ranges(frame, version)
        if error_code == UnsupportedVersionError.code:
            # The broker answers in v0 with its own range for ApiVersions: retry with it.
            theirs = ranges.get(ApiVersionsRequest.API_KEY, (0, 0))[1]
            version = min(theirs, ApiVersionsRequest.MAX_VERSION)
            continue
        if error_code:
            raise ConnectionFailed(address, f"ApiVersions failed: {for_code(error_code).name}")
        return dict(ranges), dict(features)  # copies: the cached ones are shared
    raise ConnectionFailed(address, "the broker rejected every ApiVersions version")


def _software_version() -> str:
    # Kafka requires [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])? for this field.
    return __version__.replace("+", "-")


@functools.lru_cache(maxsize=16)
def _version_ranges(
    frame: bytes, version: int
) -> tuple[int, dict[int, tuple[int, int]], dict[str, int]]:
    """The error code, the version range per API key and the finalized feature levels
    (the highest level of each, valid only with a finalized features epoch) of an
    ApiVersions response frame.

    Cached, as every connection to a broker gets the same frame (the first response on
    each, so with the same correlation id): a consumer that opens a connection per
    partition would otherwise decode it once per partition. Callers must not change the
    dicts they get.

    Raises:
        DecodeError: The frame is not an ApiVersions response of that version (or v0).
    """
    response = _decode_api_versions(frame, version)
    ranges = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
    features: dict[str, int] = {}
    if response.finalized_features_epoch >= 0:
        features = {f.name: f.max_version_level for f in response.finalized_features}
    return response.error_code, ranges, features


def _decode_api_versions(frame: bytes, version: int) -> Any:
    """Decode an ApiVersions response; an UNSUPPORTED_VERSION reply is always in v0."""
    try:
        response = decode_response(frame, ApiVersionsResponse, version)
    except DecodeError:
        response = None
    if response is None or response.error_code == UnsupportedVersionError.code:
        return decode_response(frame, ApiVersionsResponse, 0)
    return response


# ---------------------------------------------------------------- SASL


def mechanism_factory(config: ClientConfig) -> MechanismFactory | None:
    """A function making a fresh SASL mechanism per connection, or None without SASL."""
    sasl = config.sasl
    if sasl is None:
        return None

    async def make() -> Mechanism:
        assert sasl is not None
        if sasl.mechanism == "PLAIN":
            return Plain(sasl.username, sasl.password)
        if sasl.mechanism == "OAUTHBEARER":
            assert sasl.token_provider is not None
            try:
                token = await sasl.token_provider()
            except Exception as exc:
                # An identity provider that is down is like a broker that is down: this
                # connection fails (retriable), the next attempt asks for a token again.
                raise TokenUnavailable(
                    f"OAUTHBEARER token_provider raised {describe(exc)}"
                ) from exc
            if not isinstance(token, str):
                raise SaslExchangeError(
                    f"OAUTHBEARER token_provider returned {type(token).__name__}, not a str"
                )
            try:
                return OAuthBearer(token)
            except ValueError as exc:
                raise SaslExchangeError(str(exc)) from None
        return Scram(sasl.mechanism, sasl.username, sasl.password)

    return make


class TokenUnavailable(Exception):
    """The OAUTHBEARER token provider failed; reported as a (retriable) ConnectionFailed."""


async def new_mechanism(factory: MechanismFactory, address: str) -> Mechanism:
    """A fresh mechanism from ``factory``, its failures as the connection's errors.

    Raises:
        ConnectionFailed: The token provider failed (the next attempt may do better).
        SaslFailed: The token provider gave something that is not a token.
    """
    try:
        return await factory()
    except TokenUnavailable as exc:
        raise ConnectionFailed(address, str(exc)) from exc.__cause__
    except SaslExchangeError as exc:
        raise SaslFailed(address, str(exc)) from exc


async def authenticate(
    exchange: Exchange, mechanism: Mechanism, address: str, best_version: VersionChooser
) -> float:
    """SaslHandshake, then the mechanism's rounds in SaslAuthenticate requests.

    Args:
        exchange: Sends one request and returns its decoded response: on the bare stream
            during the handshake (:meth:`BareExchange.request`), through the pipeline when
            re-authenticating.
        mechanism: A fresh mechanism (:func:`new_mechanism`).
        address: The broker's address, for the errors.
        best_version: The connection's ``best_version``.

    Returns:
        Seconds the SASL session lasts, counted from now; 0 when the broker sets no limit.

    Raises:
        SaslFailed: The broker or the mechanism refused. The connection must close (the
            broker closes it too).
    """
    # v0 of SaslHandshake sends the tokens raw, without Kafka framing; every broker
    # since 1.0 speaks v1, so v0 is not supported.
    version = best_version(SaslHandshakeRequest, 1)
    reply = await exchange(SaslHandshakeRequest(mechanism=mechanism.name), version)
    if reply.error_code == UnsupportedSaslMechanismError.code:
        offered = ", ".join(reply.mechanisms) or "none"
        raise SaslFailed(
            address,
            f"SASL mechanism {mechanism.name} is not enabled on this listener; "
            f"it offers: {offered}",
        )
    if reply.error_code == IllegalSaslStateError.code:
        # The listener does not take SASL at all (PLAINTEXT, SSL), or authentication
        # already happened.
        raise SaslFailed(
            address,
            f"the listener does not take SASL ({mechanism.name} was asked for): "
            "it is a PLAINTEXT or SSL listener",
        )
    if reply.error_code:
        raise SaslFailed(
            address,
            f"SaslHandshake for {mechanism.name} failed: {for_code(reply.error_code).name}",
        )
    # v1+ reports the session lifetime, and only a client that authenticated with v1+
    # may re-authenticate (KIP-368).
    auth_version = best_version(SaslAuthenticateRequest, None)
    lifetime = 0.0
    try:
        message: bytes | None = mechanism.start()
        while message is not None:
            answer = await exchange(SaslAuthenticateRequest(auth_bytes=message), auth_version)
            if answer.error_code:
                why = answer.error_message or for_code(answer.error_code).name
                raise SaslFailed(address, f"{mechanism.name} authentication failed: {why}")
            lifetime = answer.session_lifetime_ms / 1000
            message = mechanism.respond(answer.auth_bytes)
    except SaslExchangeError as exc:
        raise SaslFailed(address, f"{mechanism.name}: {exc}") from exc
    if not mechanism.done:
        raise SaslFailed(address, f"{mechanism.name}: the exchange ended before it was complete")
    return lifetime


def reauthentication_time(lifetime: float) -> float:
    """When (on Trio's clock) to re-authenticate a SASL session that lasts ``lifetime``
    seconds from now: ``math.inf`` when it does not expire.

    Like the Java client, at 85% of the lifetime. The broker refuses a re-authentication
    within 1 s of the previous one, hence the floor.
    """
    if lifetime <= 0:
        return math.inf
    return trio.current_time() + max(0.85 * lifetime, _MIN_REAUTH_INTERVAL)
