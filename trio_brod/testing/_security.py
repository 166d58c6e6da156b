"""Security listeners for the test brokers: SASL users, a throwaway CA, unsecured tokens.

:class:`~trio_brod.testing.KafkaCluster` can add listeners beside its PLAINTEXT one:

``SASL_PLAINTEXT``
    SASL over plain TCP, with the mechanisms asked for (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512,
    OAUTHBEARER).
``SSL``
    TLS with a server certificate only (clients are not asked for one).
``SASL_SSL``
    Both: SASL inside TLS.

Where each piece of the broker configuration comes from:

* PLAIN users live in the listener's JAAS configuration (``user_<name>="<password>"``).
* SCRAM users are records in the cluster metadata, written when the storage is formatted
  (``kafka-storage format --add-scram 'SCRAM-SHA-256=[name=alice,password=...]'``), so they
  exist from the first start without an admin call.
* OAUTHBEARER uses Kafka's *unsecured* validator, made for tests: it accepts any token of
  the form ``base64url(header).base64url(claims).`` with ``"alg": "none"``, and takes the
  principal from the ``sub`` claim. :func:`unsecured_oauth_token` makes one. Never use that
  validator outside tests.
* TLS: a CA and a server certificate for ``127.0.0.1`` and ``localhost``, made per cluster
  with the ``openssl`` command line tool, and given to the broker as a PKCS#12 key store.
  Clients trust the CA's PEM file (:attr:`KafkaCluster.tls_ca_file`).

The inter-broker and controller listeners stay PLAINTEXT: security here is for the clients
under test, not for the cluster's own traffic.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SASL_LISTENERS",
    "SASL_MECHANISMS",
    "SECURE_LISTENERS",
    "TlsFiles",
    "check_sasl_options",
    "make_tls_files",
    "sasl_settings",
    "scram_format_args",
    "tls_settings",
    "unsecured_oauth_token",
]

#: The SASL mechanisms the harness can enable, in the order it lists them to Kafka.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
_SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
#: The extra listeners, in port order. Each is named after its security protocol.
SECURE_LISTENERS = ("SASL_PLAINTEXT", "SSL", "SASL_SSL")
SASL_LISTENERS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})

# User names and passwords go into JAAS configuration (inside double quotes) and into the
# storage tool's SCRAM syntax (inside [name=...,password=...]); this alphabet needs no
# escaping in either, which keeps both writers obviously correct.
_CREDENTIAL = re.compile(r"[A-Za-z0-9._~-]{1,64}")

_PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
_SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
_OAUTH_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
_OAUTH_UNSECURED_VALIDATOR = (
    "org.apache.kafka.common.security.oauthbearer.internals.unsecured."
    "OAuthBearerUnsecuredValidatorCallbackHandler"
)


def check_sasl_options(
    users: Mapping[str, str] | None, mechanisms: Collection[str]
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Validate :class:`KafkaCluster`'s ``sasl_users`` and ``sasl_mechanisms``.

    Returns them normalised: a plain dict, and the mechanisms in :data:`SASL_MECHANISMS`
    order. Raises ValueError naming what is wrong.
    """
    if isinstance(mechanisms, str):
        raise ValueError(f"sasl_mechanisms must be a collection of names, not {mechanisms!r}")
    unknown = sorted(set(mechanisms) - set(SASL_MECHANISMS))
    if unknown:
        raise ValueError(
            f"sasl_mechanisms {unknown} are not supported; choose from {list(SASL_MECHANISMS)}"
        )
    if not mechanisms:
        raise ValueError("sasl_mechanisms is empty")
    ordered = tuple(m for m in SASL_MECHANISMS if m in mechanisms)
    result = dict(users or {})
    for name, password in result.items():
        for what, value in (("user name", name), ("password", password)):
            if not isinstance(value, str) or not _CREDENTIAL.fullmatch(value):
                raise ValueError(
                    f"sasl_users: {what} {value!r} must be 1-64 of [A-Za-z0-9._~-] "
                    "(the harness writes it unescaped into Kafka's configuration)"
                )
    return result, ordered


def sasl_settings(
    listeners: Collection[str], users: Mapping[str, str], mechanisms: Collection[str]
) -> dict[str, str]:
    """Broker settings enabling ``mechanisms`` on the SASL ``listeners``, for ``users``."""
    settings = {"sasl.enabled.mechanisms": ",".join(mechanisms)}
    plain_users = "".join(f' user_{name}="{password}"' for name, password in users.items())
    for listener in listeners:
        prefix = f"listener.name.{listener.lower()}"
        if "PLAIN" in mechanisms:
            settings[f"{prefix}.plain.sasl.jaas.config"] = f"{_PLAIN_MODULE} required{plain_users};"
        for scram in _SCRAM_MECHANISMS:
            if scram in mechanisms:
                # The users are in the cluster metadata (see scram_format_args); the login
                # module only has to be named.
                settings[f"{prefix}.{scram.lower()}.sasl.jaas.config"] = (
                    f"{_SCRAM_MODULE} required;"
                )
        if "OAUTHBEARER" in mechanisms:
            # The broker logs itself in too, with an unsecured token for this subject; it
            # needs one even though it never sends it (inter-broker traffic is PLAINTEXT).
            settings[f"{prefix}.oauthbearer.sasl.jaas.config"] = (
                f'{_OAUTH_MODULE} required unsecuredLoginStringClaim_sub="broker";'
            )
            settings[f"{prefix}.oauthbearer.sasl.server.callback.handler.class"] = (
                _OAUTH_UNSECURED_VALIDATOR
            )
    return settings


def scram_format_args(users: Mapping[str, str], mechanisms: Collection[str]) -> list[str]:
    """``kafka-storage format`` arguments creating each user for each SCRAM mechanism."""
    args = []
    for scram in _SCRAM_MECHANISMS:
        if scram in mechanisms:
            for name, password in users.items():
                args += ["--add-scram", f"{scram}=[name={name},password={password}]"]
    return args


@dataclass(frozen=True)
class TlsFiles:
    """A cluster's TLS material.

    Attributes:
        ca_cert: The CA certificate (PEM) that clients should trust.
        keystore: The broker's PKCS#12 key store: its key, its certificate and the CA's.
        keystore_password: The key store's password (random, per cluster).
    """

    ca_cert: Path
    keystore: Path
    keystore_password: str


# Extensions as a strict verifier wants them (Python 3.13's default context sets
# VERIFY_X509_STRICT, which requires key identifiers and a CA with keyCertSign).
_OPENSSL_CONFIG = """\
# Written by trio_brod.testing: a throwaway CA and a server certificate for loopback.
[req]
distinguished_name = dn
prompt = no
[dn]
CN = trio-brod test
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

# EC P-256 keys: generated in milliseconds where RSA 2048 takes a good fraction of a second.
_KEY_OPTIONS = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
_VALIDITY_DAYS = "30"


def make_tls_files(directory: Path) -> TlsFiles:
    """Make a CA, a server certificate for 127.0.0.1/localhost, and a broker key store.

    Raises:
        RuntimeError: The ``openssl`` command line tool is missing or failed.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError(
            "the openssl command line tool is needed to make TLS certificates for the test "
            "brokers (Debian/Ubuntu: apt-get install openssl)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "openssl.cnf"
    config.write_text(_OPENSSL_CONFIG)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    keystore = directory / "server.p12"
    password = secrets.token_urlsafe(18)

    def run(*args: str) -> None:
        result = subprocess.run(
            [openssl, *args], capture_output=True, text=True, check=False, timeout=60
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"openssl {args[0]} failed (exit {result.returncode}) making the test brokers' "
                f"TLS certificates:\n{result.stderr.strip()}"
            )

    run("req", "-x509", "-config", str(config), "-extensions", "ca", *_KEY_OPTIONS,
        "-keyout", str(ca_key), "-out", str(ca_cert), "-days", _VALIDITY_DAYS,
        "-subj", "/CN=trio-brod test CA")  # fmt: skip
    run("req", "-new", "-config", str(config), *_KEY_OPTIONS,
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")  # fmt: skip
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-set_serial", str(secrets.randbits(63)), "-days", _VALIDITY_DAYS,
        "-extfile", str(config), "-extensions", "server", "-out", str(cert))  # fmt: skip
    run("pkcs12", "-export", "-inkey", str(key), "-in", str(cert), "-certfile", str(ca_cert),
        "-name", "broker", "-out", str(keystore), "-passout", f"pass:{password}")  # fmt: skip
    return TlsFiles(ca_cert=ca_cert, keystore=keystore, keystore_password=password)


def tls_settings(files: TlsFiles) -> dict[str, str]:
    """Broker settings for its TLS listeners (SSL and SASL_SSL): the key store, no client
    certificates."""
    return {
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(files.keystore),
        "ssl.keystore.password": files.keystore_password,
        "ssl.key.password": files.keystore_password,
        "ssl.client.auth": "none",
    }


def unsecured_oauth_token(
    subject: str, *, lifetime: float = 3600.0, scope: Collection[str] = ()
) -> str:
    """An unsecured JWS (``"alg": "none"``) that a test broker's OAUTHBEARER listener accepts.

    Kafka's unsecured validator, which the harness configures, checks the form and the
    ``exp`` claim, and takes the principal from ``sub``. Use it as the token provider's
    answer::

        async def token() -> str:
            return unsecured_oauth_token("alice")

        SaslConfig(mechanism="OAUTHBEARER", token_provider=token)

    Args:
        subject: The principal name (the ``sub`` claim).
        lifetime: Seconds until the token expires (the ``exp`` claim); negative for a
            token that has already expired.
        scope: Scope names (the ``scope`` claim), if any.
    """

    def segment(value: object) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = time.time()
    claims: dict[str, object] = {"sub": subject, "iat": int(now), "exp": int(now + lifetime)}
    if scope:
        claims["scope"] = list(scope)
    # A JWS with "alg": "none" has an empty signature: the token ends with the dot.
    return f"{segment({'alg': 'none'})}.{segment(claims)}."
