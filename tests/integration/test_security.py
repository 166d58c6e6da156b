"""SASL and TLS against a real broker: the ``kafka_secure`` fixture's listeners.

One broker serves every test here (PLAINTEXT, SASL_PLAINTEXT, SSL, SASL_SSL). The first tests
check the harness's own options and need no broker.
"""

from __future__ import annotations

import ssl
import subprocess
import time
import uuid
from typing import Any

import pytest
import trio

from trio_brod import (
    ClientConfig,
    ConnectionFailed,
    SaslConfig,
    SaslFailed,
    open_client,
)
from trio_brod.lowlevel import Connection
from trio_brod.testing import KafkaCluster, unsecured_oauth_token
from trio_brod.testing.pytest_plugin import SECURE_REAUTH_SECONDS, SECURE_USERS

PASSWORD_MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
SASL_LISTENERS = ["SASL_PLAINTEXT", "SASL_SSL"]
# Generous, but far below anything that would look like a hang.
QUICK = 10.0


def host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def descendant_tasks() -> set[trio.lowlevel.Task]:
    """Every task below the current one: the client's connection tasks among them."""
    found: set[trio.lowlevel.Task] = set()
    stack = [trio.lowlevel.current_task()]
    while stack:
        for nursery in stack.pop().child_nurseries:
            for child in nursery.child_tasks:
                found.add(child)
                stack.append(child)
    return found


def security_options(cluster: KafkaCluster, listener: str, sasl: SaslConfig | None) -> Any:
    """ClientConfig options for a listener: its TLS context where it has TLS, and ``sasl``."""
    context = cluster.client_ssl_context() if listener in ("SSL", "SASL_SSL") else None
    return {"ssl_context": context, "sasl": sasl}


# ---- the secure broker ------------------------------------------------------------------------

integration = pytest.mark.integration


@integration
def test_secure_broker_listeners(kafka_secure: KafkaCluster) -> None:
    assert kafka_secure.listeners == ["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"]
    addresses = [kafka_secure.listener_bootstrap(name)[0] for name in kafka_secure.listeners]
    assert len(set(addresses)) == 4
    assert kafka_secure.listener_bootstrap("PLAINTEXT") == kafka_secure.bootstrap_servers
    assert kafka_secure.sasl_users == SECURE_USERS
    assert kafka_secure.tls_ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    with pytest.raises(ValueError, match="no 'SASL_SCRAM' listener"):
        kafka_secure.listener_bootstrap("SASL_SCRAM")


@integration
def test_kcat_trusts_the_harness_tls_and_plain_users(kafka_secure: KafkaCluster) -> None:
    """An independent client (librdkafka) agrees that the listeners work as documented."""
    ssl_address = kafka_secure.listener_bootstrap("SASL_SSL")[0]
    result = subprocess.run(
        ["kcat", "-b", ssl_address, "-L", "-J", "-m", "10",
         "-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={kafka_secure.tls_ca_file}",
         "-X", "sasl.mechanisms=PLAIN", "-X", "sasl.username=alice",
         "-X", "sasl.password=alice-secret"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f'"name":"{ssl_address}"' in result.stdout.replace(" ", "")


@integration
@pytest.mark.parametrize("listener", SASL_LISTENERS)
@pytest.mark.parametrize("mechanism", PASSWORD_MECHANISMS)
async def test_sasl_login_gets_metadata(
    kafka_secure: KafkaCluster, listener: str, mechanism: Any
) -> None:
    bootstrap = kafka_secure.listener_bootstrap(listener)
    sasl = SaslConfig(mechanism=mechanism, username="bob", password=SECURE_USERS["bob"])
    with trio.fail_after(QUICK):
        async with open_client(
            bootstrap, **security_options(kafka_secure, listener, sasl)
        ) as client:
            metadata = await client.get_metadata([])
            connection = await client.get_connection(*host_port(bootstrap[0]))
    # The broker advertises the listener the client came in by.
    assert [b.address for b in metadata.brokers.values()] == bootstrap
    assert connection.sasl_session_lifetime == 0  # no connections.max.reauth.ms for these


@integration
@pytest.mark.parametrize("mechanism", PASSWORD_MECHANISMS)
@pytest.mark.parametrize(("user", "password"), [("alice", "wrong"), ("mallory", "alice-secret")])
async def test_bad_credentials_fail_with_sasl_failed(
    kafka_secure: KafkaCluster, mechanism: Any, user: str, password: str
) -> None:
    address = kafka_secure.listener_bootstrap("SASL_PLAINTEXT")[0]
    sasl = SaslConfig(mechanism=mechanism, username=user, password=password)
    with trio.fail_after(QUICK):
        async with open_client([address], sasl=sasl) as client:
            before = descendant_tasks()
            with pytest.raises(SaslFailed) as caught:
                await client.get_connection(*host_port(address))
            # The failed connection's task is gone: nothing is left running or waiting.
            assert descendant_tasks() == before
            # A metadata request fails too, naming the mechanism.
            with pytest.raises(SaslFailed, match=f"{mechanism} authentication failed"):
                await client.get_metadata([])
    assert caught.value.address == address
    assert f"{mechanism} authentication failed" in caught.value.reason
    assert not caught.value.retriable


@integration
async def test_bad_password_surfaces_as_sasl_failed_from_metadata(
    kafka_secure: KafkaCluster,
) -> None:
    sasl = SaslConfig(mechanism="SCRAM-SHA-256", username="alice", password="wrong")
    with trio.fail_after(QUICK):
        async with open_client(kafka_secure.listener_bootstrap("SASL_PLAINTEXT"), sasl=sasl) as c:
            with pytest.raises(SaslFailed):
                await c.get_metadata([])


class NamedOnly:
    """A mechanism the broker does not enable: the handshake fails before it is used."""

    name = "GSSAPI"
    done = False

    def start(self) -> bytes:
        raise AssertionError("the broker should refuse GSSAPI before any token is sent")

    def respond(self, challenge: bytes) -> bytes | None:
        raise AssertionError("the broker should refuse GSSAPI before any token is sent")


@integration
async def test_mechanism_not_enabled_names_what_the_listener_offers(
    kafka_secure: KafkaCluster,
) -> None:
    host, port = host_port(kafka_secure.listener_bootstrap("SASL_PLAINTEXT")[0])
    connection = Connection(host, port, ClientConfig())

    async def gssapi() -> NamedOnly:
        return NamedOnly()

    with trio.fail_after(QUICK):
        async with trio.open_nursery() as nursery:
            with pytest.raises(SaslFailed) as caught:
                await nursery.start(lambda task_status: connection.run(
                    sasl_mechanism=gssapi, task_status=task_status
                ))  # fmt: skip
    reason = caught.value.reason
    assert "GSSAPI is not enabled on this listener" in reason
    offered = set(reason.rpartition("it offers: ")[2].split(", "))
    assert offered == {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"}
    assert connection.closed


@integration
@pytest.mark.parametrize("listener", ["PLAINTEXT", "SSL"])
async def test_sasl_on_a_listener_without_sasl(kafka_secure: KafkaCluster, listener: str) -> None:
    address = kafka_secure.listener_bootstrap(listener)[0]
    sasl = SaslConfig(mechanism="PLAIN", username="alice", password="alice-secret")
    with trio.fail_after(QUICK):
        async with open_client(
            [address], **security_options(kafka_secure, listener, sasl)
        ) as client:
            with pytest.raises(SaslFailed, match="does not take SASL"):
                await client.get_connection(*host_port(address))


# ---- TLS ----------------------------------------------------------------------------------


@integration
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_tls_with_the_cluster_ca(kafka_secure: KafkaCluster, host: str) -> None:
    (address,) = kafka_secure.listener_bootstrap("SSL")
    port = host_port(address)[1]
    context = ssl.create_default_context(cafile=kafka_secure.tls_ca_file)
    with trio.fail_after(QUICK):
        async with open_client([(host, port)], ssl_context=context) as client:
            metadata = await client.get_metadata([])
    assert [b.address for b in metadata.brokers.values()] == [address]


@integration
async def test_tls_over_a_connect_function(kafka_secure: KafkaCluster) -> None:
    """ClientConfig.connect opens the transport; TLS (and the broker's certificate check)
    still runs over it."""
    (address,) = kafka_secure.listener_bootstrap("SSL")
    opened: list[tuple[str, int]] = []

    async def connect(host: str, port: int) -> trio.abc.Stream:
        opened.append((host, port))
        return await trio.open_tcp_stream(host, port)

    context = ssl.create_default_context(cafile=kafka_secure.tls_ca_file)
    with trio.fail_after(QUICK):
        async with open_client([address], ssl_context=context, connect=connect) as client:
            metadata = await client.get_metadata([])
        assert [b.address for b in metadata.brokers.values()] == [address]
        assert opened == [host_port(address)]
        untrusted = ssl.create_default_context()
        async with open_client([address], ssl_context=untrusted, connect=connect) as client:
            with pytest.raises(ConnectionFailed, match="certificate was rejected"):
                await client.get_connection(*host_port(address))


@integration
async def test_tls_refuses_a_broker_it_does_not_trust(kafka_secure: KafkaCluster) -> None:
    address = kafka_secure.listener_bootstrap("SSL")[0]
    # The system's CAs, which never signed the harness's throwaway CA.
    context = ssl.create_default_context()
    with trio.fail_after(QUICK):
        async with open_client([address], ssl_context=context) as client:
            with pytest.raises(ConnectionFailed, match="certificate was rejected") as caught:
                await client.get_connection(*host_port(address))
            with pytest.raises(ConnectionFailed, match="certificate"):
                await client.get_metadata([])
    assert not isinstance(caught.value, SaslFailed)
    causes = []
    cause: BaseException | None = caught.value
    while cause is not None:
        causes.append(cause)
        cause = cause.__cause__
    assert any(isinstance(c, ssl.SSLCertVerificationError) for c in causes), causes


@integration
async def test_plaintext_client_on_a_tls_listener(kafka_secure: KafkaCluster) -> None:
    address = kafka_secure.listener_bootstrap("SASL_SSL")[0]
    with trio.fail_after(QUICK):
        async with open_client([address]) as client:
            with pytest.raises(ConnectionFailed, match=r"answered with TLS.*ssl_context"):
                await client.get_connection(*host_port(address))


@integration
async def test_tls_client_on_a_plaintext_listener(kafka_secure: KafkaCluster) -> None:
    address = kafka_secure.listener_bootstrap("SASL_PLAINTEXT")[0]
    with trio.fail_after(QUICK):
        async with open_client([address], ssl_context=kafka_secure.client_ssl_context()) as client:
            with pytest.raises(ConnectionFailed, match=r"TLS handshake failed.*closed"):
                await client.get_connection(*host_port(address))


@integration
async def test_produce_and_fetch_over_sasl_ssl(kafka_secure: KafkaCluster) -> None:
    """Real traffic through TLS records: many pipelined requests, responses in pieces."""
    # Created by the first produce (the broker auto-creates topics), which saves starting
    # the topic tool's JVM.
    topic = f"secure-{uuid.uuid4().hex[:12]}"
    sasl = SaslConfig(mechanism="SCRAM-SHA-512", username="alice", password="alice-secret")
    values = [bytes([i]) * 20_000 for i in range(100)]
    with trio.fail_after(60):
        async with open_client(
            kafka_secure.listener_bootstrap("SASL_SSL"),
            ssl_context=kafka_secure.client_ssl_context(),
            sasl=sasl,
            auto_start_producers=True,
        ) as client:
            receipts = [await client.produce(topic, value, partition=0) for value in values]
            offsets = [await receipt for receipt in receipts]
            fetched: list[bytes | None] = []
            offset = offsets[0]
            while len(fetched) < len(values):
                batch = await client.fetch(topic, 0, offset, max_bytes=512 * 1024)
                fetched += [record.value for record in batch.messages]
                offset = batch.next_offset
    assert offsets == list(range(offsets[0], offsets[0] + len(values)))
    assert fetched == values


# ---- OAUTHBEARER --------------------------------------------------------------------------


class TokenProvider:
    """An OAUTHBEARER token provider that counts its calls."""

    def __init__(self, subject: str = "alice", lifetime: float = 3600.0) -> None:
        self.subject = subject
        self.lifetime = lifetime
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        return unsecured_oauth_token(self.subject, lifetime=self.lifetime)


@integration
@pytest.mark.parametrize("listener", SASL_LISTENERS)
async def test_oauthbearer_login(kafka_secure: KafkaCluster, listener: str) -> None:
    bootstrap = kafka_secure.listener_bootstrap(listener)
    provider = TokenProvider()
    sasl = SaslConfig(mechanism="OAUTHBEARER", token_provider=provider)
    with trio.fail_after(QUICK):
        async with open_client(
            bootstrap, **security_options(kafka_secure, listener, sasl)
        ) as client:
            metadata = await client.get_metadata([])
    assert [b.address for b in metadata.brokers.values()] == bootstrap
    assert provider.calls == 1


@integration
async def test_oauthbearer_rejected_token(kafka_secure: KafkaCluster) -> None:
    """The broker answers a bad token with an error challenge first (RFC 7628), which the
    client must acknowledge; only then does the exchange fail, with the broker's reason."""
    address = kafka_secure.listener_bootstrap("SASL_PLAINTEXT")[0]
    sasl = SaslConfig(mechanism="OAUTHBEARER", token_provider=TokenProvider(lifetime=-60))
    with trio.fail_after(QUICK):
        async with open_client([address], sasl=sasl) as client:
            before = descendant_tasks()
            with pytest.raises(
                SaslFailed, match=r"OAUTHBEARER authentication failed.*invalid_token"
            ):
                await client.get_connection(*host_port(address))
            assert descendant_tasks() == before


@integration
async def test_oauthbearer_token_provider_failure(kafka_secure: KafkaCluster) -> None:
    address = kafka_secure.listener_bootstrap("SASL_PLAINTEXT")[0]

    async def broken() -> str:
        raise LookupError("identity provider unreachable")

    sasl = SaslConfig(mechanism="OAUTHBEARER", token_provider=broken)
    with trio.fail_after(QUICK):
        async with open_client([address], sasl=sasl) as client:
            with pytest.raises(ConnectionFailed, match="token_provider raised LookupError") as e:
                await client.get_connection(*host_port(address))
    assert not isinstance(e.value, SaslFailed)  # retriable: the provider may come back
    assert isinstance(e.value.__cause__, LookupError)


@integration
async def test_reauthentication_keeps_the_connection(kafka_secure: KafkaCluster) -> None:
    """On SASL_PLAINTEXT, OAUTHBEARER sessions last SECURE_REAUTH_SECONDS (the broker's
    connections.max.reauth.ms). A broker closes a connection whose session expired at its
    next request, unless the client authenticated again first (KIP-368); the connection
    does, with a fresh token."""
    address = kafka_secure.listener_bootstrap("SASL_PLAINTEXT")[0]
    provider = TokenProvider()
    sasl = SaslConfig(mechanism="OAUTHBEARER", token_provider=provider)
    with trio.fail_after(QUICK):
        async with open_client([address], sasl=sasl) as client:
            connection = await client.get_connection(*host_port(address))
            assert connection.sasl_session_lifetime == pytest.approx(SECURE_REAUTH_SECONDS)
            await client.get_metadata([])
            started = time.monotonic()
            # Requests keep flowing past the end of the first session...
            while time.monotonic() - started < 1.3 * SECURE_REAUTH_SECONDS:
                await client.get_metadata([])
                await trio.sleep(0.1)
            # ...and come again after an idle spell longer than a session: the broker
            # still takes a SaslHandshake on an expired session.
            await trio.sleep(1.1 * SECURE_REAUTH_SECONDS)
            await client.get_metadata([])
            assert await client.get_connection(*host_port(address)) is connection
            assert not connection.closed
    # The first login, a re-authentication while busy, and one after the idle spell.
    assert provider.calls == 3
