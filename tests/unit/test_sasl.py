"""SASL mechanisms against the RFC's own test vectors."""

from __future__ import annotations

import pytest

from trio_brod._sasl import OAuthBearer, Plain, SaslExchangeError, Scram

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
