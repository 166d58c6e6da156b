"""SASL client mechanisms, sans-IO: each turns server challenges into client responses.

A mechanism is a small state machine the connection drives over SaslAuthenticate requests:
``first = mech.start()``; then, for each server answer, ``reply = mech.respond(answer)`` until
``mech.done``. Nothing here touches a socket, so it is tested directly.

* PLAIN (RFC 4616): one message, ``\\0user\\0password``.
* SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677): a client-first message, a proof computed
  from the server's salt and iteration count, and a check of the server's signature, so the
  client knows the server also holds the password.
* OAUTHBEARER (RFC 7628): one message carrying a token from the user's provider. A broker
  that rejects the token does not say so at once: it sends an error challenge (a JSON
  object), which the client must acknowledge with a single ``\x01`` byte before the broker
  fails the exchange with an error code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Protocol

__all__ = ["Mechanism", "OAuthBearer", "Plain", "SaslExchangeError", "Scram"]


class SaslExchangeError(Exception):
    """A server message broke the mechanism's rules; the connection reports it as
    :class:`~trio_brod.SaslFailed` with the broker's address."""


class Mechanism(Protocol):
    """What the connection needs from a SASL mechanism."""

    name: str
    done: bool

    def start(self) -> bytes:
        """The first message the client sends."""
        ...

    def respond(self, challenge: bytes) -> bytes | None:
        """The reply to a server message, or None when the exchange is complete."""
        ...


class Plain:
    """SASL PLAIN: the user name and password in one message."""

    name = "PLAIN"

    def __init__(self, username: str, password: str) -> None:
        self._message = b"\0" + username.encode() + b"\0" + password.encode()
        self.done = False

    def start(self) -> bytes:
        """Return ``\\0username\\0password``."""
        return self._message

    def respond(self, challenge: bytes) -> bytes | None:
        """The server's (empty) answer ends the exchange."""
        self.done = True
        return None


class OAuthBearer:
    """SASL OAUTHBEARER with a token obtained from the user's provider beforehand.

    Attributes:
        server_error: The broker's error challenge (RFC 7628 section 3.2.2), decoded, once
            it has rejected the token; None before.
    """

    name = "OAUTHBEARER"

    def __init__(self, token: str) -> None:
        if not token or any(not 0x20 <= ord(c) <= 0x7E for c in token):
            # RFC 6750's b64token alphabet is narrower still; this keeps out the \x01
            # separators (and line breaks) that would corrupt the message around the token.
            raise ValueError("the OAUTHBEARER token must be a non-empty string of printable ASCII")
        self._message = b"n,,\x01auth=Bearer " + token.encode() + b"\x01\x01"
        self.done = False
        self.server_error: str | None = None

    def start(self) -> bytes:
        """Return the GS2 header and the bearer token."""
        return self._message

    def respond(self, challenge: bytes) -> bytes | None:
        """An empty answer means success; anything else is the broker's error challenge.

        The error challenge is acknowledged with ``\x01``, as RFC 7628 requires; the broker
        then fails the exchange (the connection reports its error message). Should it answer
        anything but an error after that, the exchange is broken.
        """
        if self.server_error is not None:
            raise SaslExchangeError(f"the broker rejected the token: {self.server_error}")
        if not challenge:
            self.done = True
            return None
        self.server_error = challenge.decode(errors="replace")
        return b"\x01"


def _escape_username(username: str) -> str:
    # RFC 5802 section 5.1: "=" and "," cannot appear raw in a saslname.
    return username.replace("=", "=3D").replace(",", "=2C")


def _parse_attributes(message: bytes) -> dict[str, str]:
    try:
        text = message.decode()
    except UnicodeDecodeError as exc:
        raise SaslExchangeError(f"SCRAM server message is not UTF-8: {message!r}") from exc
    attributes = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or len(key) != 1:
            raise SaslExchangeError(f"malformed SCRAM server message: {text!r}")
        attributes[key] = value
    return attributes


class Scram:
    """SASL SCRAM-SHA-256 or SCRAM-SHA-512 (RFC 5802), without channel binding."""

    def __init__(
        self, mechanism: str, username: str, password: str, nonce: str | None = None
    ) -> None:
        if mechanism == "SCRAM-SHA-256":
            self._hash = "sha256"
        elif mechanism == "SCRAM-SHA-512":
            self._hash = "sha512"
        else:
            raise ValueError(f"not a SCRAM mechanism: {mechanism!r}")
        self.name = mechanism
        self.done = False
        self._password = password.encode()
        self._client_nonce = nonce if nonce is not None else secrets.token_urlsafe(24)
        self._client_first_bare = f"n={_escape_username(username)},r={self._client_nonce}"
        self._server_signature: bytes | None = None

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self._hash).digest()

    def start(self) -> bytes:
        """Return the client-first message: no channel binding, user name and a nonce."""
        return ("n,," + self._client_first_bare).encode()

    def respond(self, challenge: bytes) -> bytes | None:
        """Answer the server-first message with a proof; then check the server-final one."""
        if self._server_signature is None:
            return self._client_final(challenge)
        self._verify_server_final(challenge)
        self.done = True
        return None

    def _client_final(self, server_first: bytes) -> bytes:
        attributes = _parse_attributes(server_first)
        if "e" in attributes:
            raise SaslExchangeError(f"SCRAM server error: {attributes['e']}")
        try:
            nonce, salt_b64, iterations_text = attributes["r"], attributes["s"], attributes["i"]
            salt = base64.b64decode(salt_b64, validate=True)
            iterations = int(iterations_text)
        except (KeyError, ValueError) as exc:
            raise SaslExchangeError(f"malformed SCRAM server-first message: {exc!r}") from exc
        if not nonce.startswith(self._client_nonce) or nonce == self._client_nonce:
            raise SaslExchangeError("SCRAM server nonce does not extend the client's")
        if iterations < 1:
            raise SaslExchangeError(f"SCRAM iteration count {iterations} is not positive")
        salted = hashlib.pbkdf2_hmac(self._hash, self._password, salt, iterations)
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self._hash, client_key).digest()
        without_proof = f"c=biws,r={nonce}"  # biws = base64("n,,"): no channel binding
        auth_message = ",".join(
            (self._client_first_bare, server_first.decode(), without_proof)
        ).encode()
        signature = self._hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def _verify_server_final(self, server_final: bytes) -> None:
        attributes = _parse_attributes(server_final)
        if "e" in attributes:
            raise SaslExchangeError(f"SCRAM server error: {attributes['e']}")
        try:
            verifier = base64.b64decode(attributes["v"], validate=True)
        except (KeyError, ValueError) as exc:
            raise SaslExchangeError("malformed SCRAM server-final message") from exc
        assert self._server_signature is not None
        if not hmac.compare_digest(verifier, self._server_signature):
            raise SaslExchangeError("SCRAM server signature does not match: wrong server")
