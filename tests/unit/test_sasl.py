"""SASL mechanisms against the RFCs' own test vectors; the connection's SASL and TLS handling
without a broker (sans-IO parts directly, the conversation against tests/fakebroker.py)."""

from __future__ import annotations

import ssl
import struct
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
import trio.testing

from tests.fakes.broker import FakeBroker, Request, answer
from trio_brod import ClientConfig, SaslConfig, SaslFailed
from trio_brod._net import Connection
from trio_brod._net.handshake import (
    TokenUnavailable,
    describe_tls_failure,
    looks_like_tls,
    mechanism_factory,
)
from trio_brod._net.sasl import Mechanism, OAuthBearer, Plain, SaslExchangeError, Scram
from trio_brod.protocol import (
    MetadataRequest,
    MetadataResponse,
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)

# RFC 7677, section 3: the SCRAM-SHA-256 example exchange.
RFC7677_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC7677_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC7677_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC7677_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_scram_sha256_rfc7677_exchange() -> None:
    scram = Scram("SCRAM-SHA-256", "user", "pencil", nonce=RFC7677_NONCE)
    assert scram.start() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert scram.respond(RFC7677_SERVER_FIRST) == RFC7677_CLIENT_FINAL
    assert not scram.done
    assert scram.respond(RFC7677_SERVER_FINAL) is None
    assert scram.done


def test_scram_rejects_a_server_that_does_not_know_the_password() -> None:
    scram = Scram("SCRAM-SHA-256", "user", "pencil", nonce=RFC7677_NONCE)
    scram.start()
    scram.respond(RFC7677_SERVER_FIRST)
    with pytest.raises(SaslExchangeError, match="signature"):
        scram.respond(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")


def test_scram_rejects_a_nonce_that_does_not_extend_ours() -> None:
    scram = Scram("SCRAM-SHA-512", "user", "pencil", nonce="abc")
    scram.start()
    with pytest.raises(SaslExchangeError, match="nonce"):
        scram.respond(b"r=xyz123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")


@pytest.mark.parametrize(
    "server_first",
    [b"garbage", b"r=abcd,s=!!!,i=10", b"r=abcd,s=W22Z,i=x", b"e=invalid-proof", b"\xff\xfe"],
)
def test_scram_malformed_server_first(server_first: bytes) -> None:
    scram = Scram("SCRAM-SHA-256", "user", "pencil", nonce="abc")
    scram.start()
    with pytest.raises(SaslExchangeError):
        scram.respond(server_first)


def test_scram_escapes_user_names() -> None:
    scram = Scram("SCRAM-SHA-256", "a=b,c", "pw", nonce="n")
    assert scram.start() == b"n,,n=a=3Db=2Cc,r=n"


def test_plain_and_oauthbearer_messages() -> None:
    plain = Plain("alice", "secret")
    assert plain.start() == b"\0alice\0secret"
    assert plain.respond(b"") is None
    assert plain.done
    bearer = OAuthBearer("tok")
    assert bearer.start() == b"n,,\x01auth=Bearer tok\x01\x01"


# ---- OAUTHBEARER error challenges (RFC 7628 section 3.2.3) ---------------------------------


def test_oauthbearer_success_is_an_empty_answer() -> None:
    bearer = OAuthBearer("tok")
    assert bearer.respond(b"") is None
    assert bearer.done
    assert bearer.server_error is None


def test_oauthbearer_acknowledges_an_error_challenge() -> None:
    # What Kafka's unsecured validator answers to an expired token, before failing.
    bearer = OAuthBearer("tok")
    bearer.start()
    assert bearer.respond(b'{"status":"invalid_token"}') == b"\x01"
    assert not bearer.done
    assert bearer.server_error == '{"status":"invalid_token"}'
    # The broker must fail the exchange now; a server that carries on is broken.
    with pytest.raises(SaslExchangeError, match=r"rejected the token.*invalid_token"):
        bearer.respond(b"")
    assert not bearer.done


@pytest.mark.parametrize("token", ["", "a\x01b", "line\nbreak", "caf\u00e9"])
def test_oauthbearer_refuses_tokens_that_would_break_the_message(token: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        OAuthBearer(token)


# ---- how the connection builds mechanisms -----------------------------------------------


async def test_mechanism_factory_makes_a_fresh_mechanism_each_time() -> None:
    make = mechanism_factory(ClientConfig(sasl=SaslConfig("SCRAM-SHA-512", "u", "p")))
    assert make is not None
    first, second = await make(), await make()
    assert isinstance(first, Scram)
    assert first is not second
    assert first.name == "SCRAM-SHA-512"
    assert first.start() != second.start()  # a new nonce for each
    assert mechanism_factory(ClientConfig()) is None


async def test_mechanism_factory_token_provider_problems() -> None:
    async def not_a_str() -> str:
        return 42  # type: ignore[return-value]

    async def broken() -> str:
        raise OSError("identity provider down")

    async def bad_token() -> str:
        return "two\x01parts"

    for provider, error, message in [
        (not_a_str, SaslExchangeError, "returned int, not a str"),
        (broken, TokenUnavailable, "raised OSError: identity provider down"),
        (bad_token, SaslExchangeError, "printable ASCII"),
    ]:
        make = mechanism_factory(
            ClientConfig(sasl=SaslConfig("OAUTHBEARER", token_provider=provider))
        )
        assert make is not None
        with pytest.raises(error, match=message):
            await make()


# ---- TLS diagnostics ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first_bytes", "tls"),
    [
        (b"\x15\x03\x03\x00", True),  # an alert record, TLS 1.2 framing (what Kafka sends)
        (b"\x16\x03\x01\x02", True),  # a handshake record
        (b"\x00\x00\x10\x00", False),  # a real 4 KiB frame
        (b"\x15\x00\x00\x00", False),  # too large, but not TLS
        (b"\x17\x03\x03\x00", False),  # application data would not come first
    ],
)
def testlooks_like_tls(first_bytes: bytes, tls: bool) -> None:
    (size,) = struct.unpack(">i", first_bytes)
    assert looks_like_tls(size) is tls


def wrapped(cause: BaseException) -> trio.BrokenResourceError:
    """What trio raises from a failed handshake: the ssl error as the cause."""
    error = trio.BrokenResourceError()
    error.__cause__ = cause
    return error


def test_tls_failure_descriptions() -> None:
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "unable to get local issuer certificate"
    text = describe_tls_failure(wrapped(verify))
    assert "certificate was rejected (unable to get local issuer certificate)" in text
    assert "closed the connection" in describe_tls_failure(wrapped(ssl.SSLEOFError()))
    assert "closed the connection" in describe_tls_failure(trio.BrokenResourceError())
    other = describe_tls_failure(wrapped(ssl.SSLError(1, "[SSL] wrong version number")))
    assert other == "TLS handshake failed: SSLError: [SSL] wrong version number"
    assert "Connection reset" in describe_tls_failure(ConnectionResetError("Connection reset"))


# ---- the SASL conversation with a scripted broker -----------------------------------------


def sasl_broker(broker: FakeBroker, *, lifetime_ms: int = 0, handshake_error: int = 0) -> None:
    """Script SaslHandshake (offering PLAIN), SaslAuthenticate and Metadata answers."""

    async def handshake(stream: trio.SocketStream, request: Request) -> None:
        body = SaslHandshakeResponse(error_code=handshake_error, mechanisms=["PLAIN"])
        await answer(stream, request, body)

    async def authenticate(stream: trio.SocketStream, request: Request) -> None:
        body = SaslAuthenticateResponse(auth_bytes=b"", session_lifetime_ms=lifetime_ms)
        await answer(stream, request, body)

    async def metadata(stream: trio.SocketStream, request: Request) -> None:
        await answer(stream, request, MetadataResponse(cluster_id="c", controller_id=1))

    broker.handlers[SaslHandshakeRequest.API_KEY] = handshake
    broker.handlers[SaslAuthenticateRequest.API_KEY] = authenticate
    broker.handlers[MetadataRequest.API_KEY] = metadata


async def plain() -> Mechanism:
    return Plain("alice", "secret")


async def connect(
    nursery: trio.Nursery, broker: FakeBroker, mechanism: Callable[[], Awaitable[Mechanism]]
) -> Connection:
    connection = Connection("127.0.0.1", broker.port, ClientConfig())
    await nursery.start(partial(connection.run, sasl_mechanism=mechanism))
    return connection


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (33, "PLAIN is not enabled on this listener; it offers: PLAIN"),
        (34, "the listener does not take SASL"),
        (58, "SaslHandshake for PLAIN failed: SASL_AUTHENTICATION_FAILED"),
    ],
)
async def test_handshake_errors_say_what_is_wrong(
    nursery: trio.Nursery, broker: FakeBroker, code: int, message: str
) -> None:
    sasl_broker(broker, handshake_error=code)
    with pytest.raises(SaslFailed, match=message):
        await connect(nursery, broker, plain)


class Unfinished:
    """A mechanism that stops sending without being done (a bug, or a lying server)."""

    name = "PLAIN"
    done = False

    def start(self) -> bytes:
        return b"\0alice\0secret"

    def respond(self, challenge: bytes) -> bytes | None:
        return None


async def test_an_unfinished_exchange_fails(nursery: trio.Nursery, broker: FakeBroker) -> None:
    sasl_broker(broker)

    async def unfinished() -> Mechanism:
        return Unfinished()

    with pytest.raises(SaslFailed, match="ended before it was complete"):
        await connect(nursery, broker, unfinished)


async def test_no_reauthentication_without_a_session_lifetime(
    nursery: trio.Nursery, broker: FakeBroker, mock_clock: trio.testing.MockClock
) -> None:
    sasl_broker(broker, lifetime_ms=0)
    connection = await connect(nursery, broker, plain)
    assert connection.sasl_session_lifetime == 0
    mock_clock.jump(10**6)
    await connection.request(MetadataRequest(topics=[]))
    assert [r.api_key for r in broker.received] == [18, 17, 36, 3]


async def test_reauthentication_comes_before_the_next_requests(
    nursery: trio.Nursery, broker: FakeBroker, mock_clock: trio.testing.MockClock
) -> None:
    """Once 85% of the session has passed, the writer authenticates again before writing
    anything else, and holds the requests queued meanwhile until it has: a broker takes
    whatever follows a SaslHandshake for SASL tokens until the exchange is over."""
    sasl_broker(broker, lifetime_ms=10_000)
    connection = await connect(nursery, broker, plain)
    assert connection.sasl_session_lifetime == 10.0
    await connection.request(MetadataRequest(topics=[]))
    mock_clock.jump(8.4)  # not yet
    await connection.request(MetadataRequest(topics=[]))
    assert [r.api_key for r in broker.received] == [18, 17, 36, 3, 3]

    mock_clock.jump(0.2)  # 8.6 s: past 85% of 10 s
    first = connection.send(MetadataRequest(topics=[]))
    second = connection.send(MetadataRequest(topics=[]))
    await first.done.wait()
    await second.done.wait()
    assert first.result().cluster_id == second.result().cluster_id == "c"
    assert [r.api_key for r in broker.received[5:]] == [17, 36, 3, 3]
    assert broker.connections == 1
    assert not connection.closed

    # The new session is counted from the re-authentication.
    mock_clock.jump(8.4)
    await connection.request(MetadataRequest(topics=[]))
    assert [r.api_key for r in broker.received[9:]] == [3]


async def test_failed_reauthentication_closes_the_connection(
    nursery: trio.Nursery, broker: FakeBroker, mock_clock: trio.testing.MockClock
) -> None:
    sasl_broker(broker, lifetime_ms=10_000)
    connection = await connect(nursery, broker, plain)

    async def refuse(stream: trio.SocketStream, request: Request) -> None:
        body = SaslAuthenticateResponse(error_code=58, error_message="password changed")
        await answer(stream, request, body)

    broker.handlers[SaslAuthenticateRequest.API_KEY] = refuse
    mock_clock.jump(9)
    with pytest.raises(SaslFailed, match="PLAIN authentication failed: password changed"):
        await connection.request(MetadataRequest(topics=[]))
    assert connection.closed
    assert isinstance(connection.close_reason, SaslFailed)
