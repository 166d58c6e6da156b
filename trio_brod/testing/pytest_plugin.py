"""pytest plugin: fixtures that run real Apache Kafka brokers for integration tests.

Installed with trio-brod (a ``pytest11`` entry point), so the fixtures are available in any
test suite:

``kafka``
    A session-wide single broker (:class:`~trio_brod.testing.KafkaCluster`), started the
    first time a test asks for it, so runs without integration tests start no JVM.
``bootstrap_servers``
    ``kafka.bootstrap_servers``: a list of ``"host:port"``.
``kafka_cluster3``
    A session-wide three-broker cluster, also started on first use.
``kafka_secure``
    A session-wide single broker with security listeners beside its PLAINTEXT one:
    SASL_PLAINTEXT, SSL and SASL_SSL (see :data:`SECURE_USERS` and
    :func:`kafka_secure` for the details), also started on first use.
``kafka_version``
    The Kafka version the fixtures run (``"4.3.1"``), known without starting a broker.
``make_topic``
    A function that creates a uniquely named topic and returns its name::

        def test_produce(make_topic, bootstrap_servers):
            topic = make_topic(partitions=3)
            ...

        def test_failover(make_topic, kafka_cluster3):
            topic = make_topic(partitions=3, replication_factor=3, cluster=kafka_cluster3)

``fake_kafka``
    An in-process fake Kafka (:func:`trio_brod.testing.fake.fake_kafka`, one broker), per test,
    for Trio tests (pytest-trio): no JVM, and its timers run on the test's clock, so with
    pytest-trio's ``autojump_clock`` long polls and injected delays take no wall time::

        async def test_orders(fake_kafka, autojump_clock):
            fake_kafka.create_topic("orders", partitions=3)
            async with open_client(fake_kafka.bootstrap_servers) as client:
                ...

If Kafka cannot start (no Java, no Maven to fetch the jars ...), the tests that need it fail
with the reason; they are never skipped. The clusters are shared by the whole session:
after a test that used one, any broker the test stopped is started again, so the next test
finds the cluster whole. Topics are not deleted; their names are unique.

The fixtures are synchronous because pytest-trio cannot run session-scoped async fixtures;
Trio tests use them as they are, or wrap a cluster in
:class:`~trio_brod.testing.AsyncKafkaCluster` to stop and start brokers without blocking the
Trio loop.

Markers registered here: ``integration`` (needs a real broker) and ``cluster`` (needs the
three-broker cluster); select with ``-m "not integration"`` for a unit-only run. And
``requires_kafka(minimum, feature=None)``: the test needs Kafka ``minimum`` or newer, and is
skipped on an older one with a reason that names the feature and both versions::

    @pytest.mark.requires_kafka("4.0", feature="KIP-848 consumer groups")
    async def test_consumer_protocol(bootstrap_servers): ...

    # skipped on 3.9.1: needs Kafka 4.0 or newer (KIP-848 consumer groups); this run uses
    # Kafka 3.9.1

That is the one skip the plugin makes, and only for a broker that cannot have the feature.

Environment variables (see :mod:`trio_brod.testing` for the others):
``KAFKA_HOME``, ``TRIO_BROD_KAFKA_VERSION``, ``TRIO_BROD_KAFKA_CACHE``,
``TRIO_BROD_KAFKA_KEEP_DATA`` (keep brokers' data and logs to look at after the run),
``TRIO_BROD_KAFKA_CDS``, ``JAVA_HOME``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Protocol

import pytest

from trio_brod.testing import fake as _fake
from trio_brod.testing._cluster import KafkaCluster
from trio_brod.testing._jars import harness_kafka_version
from trio_brod.testing._versions import requirement_problem

_async_fixture: Callable[..., Any]
try:  # pytest-trio runs async fixtures in the test's Trio run, whatever its trio_mode.
    from pytest_trio import trio_fixture as _async_fixture  # type: ignore[import-untyped,no-redef]
except ImportError:  # pragma: no cover - without pytest-trio no Trio test can use it anyway
    _async_fixture = pytest.fixture

__all__ = [
    "SECURE_REAUTH_SECONDS",
    "SECURE_USERS",
    "MakeTopic",
    "bootstrap_servers",
    "fake_kafka",
    "kafka",
    "kafka_cluster3",
    "kafka_secure",
    "kafka_version",
    "make_topic",
]

# The session clusters, by fixture name: restored after each test that used them.
_CLUSTER_FIXTURES = ("kafka", "kafka_cluster3", "kafka_secure")

#: The SASL users of :func:`kafka_secure` (name to password).
SECURE_USERS = {"alice": "alice-secret", "bob": "bob-secret"}
#: How long (seconds) :func:`kafka_secure` lets an OAUTHBEARER session on its
#: SASL_PLAINTEXT listener last before the client must re-authenticate.
SECURE_REAUTH_SECONDS = 1.5


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers, so ``--strict-markers`` accepts them in any project."""
    config.addinivalue_line(
        "markers", "integration: needs a real Kafka broker (started by trio_brod.testing)"
    )
    config.addinivalue_line("markers", "cluster: needs the three-broker cluster")
    config.addinivalue_line(
        "markers",
        "requires_kafka(minimum, feature=None): needs Kafka `minimum` or newer; skipped, with "
        "a reason naming the feature and the version running, on an older one",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test whose ``requires_kafka`` the Kafka version of this run does not meet."""
    for marker in item.iter_markers("requires_kafka"):
        minimum, feature = _requirement(marker)
        problem = requirement_problem(minimum, harness_kafka_version(), feature)
        if problem is not None:
            pytest.skip(problem)


def _requirement(marker: pytest.Mark) -> tuple[str, str | None]:
    """``requires_kafka``'s arguments, checked: a mistake fails the test, never skips it."""
    args, kwargs = list(marker.args), dict(marker.kwargs)
    minimum = args.pop(0) if args else kwargs.pop("minimum", None)
    feature = args.pop(0) if args else kwargs.pop("feature", None)
    if args or kwargs or not isinstance(minimum, str) or not isinstance(feature, str | None):
        raise TypeError(
            "use @pytest.mark.requires_kafka(minimum: str, feature: str | None = None), "
            f"not requires_kafka(*{marker.args!r}, **{marker.kwargs!r})"
        )
    return minimum, feature


@pytest.fixture(scope="session")
def kafka_version() -> str:
    """The Kafka version the session's brokers run, e.g. ``"4.3.1"`` (none is started).

    Compare with :func:`~trio_brod.testing.parse_kafka_version` for what differs between
    releases; to skip a test that needs a newer Kafka, mark it ``requires_kafka`` instead.
    """
    return harness_kafka_version()


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaCluster]:
    """A real single Kafka broker for the whole test session, started on first use."""
    with KafkaCluster(brokers=1, heap="512m") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def bootstrap_servers(kafka: KafkaCluster) -> list[str]:
    """The ``"host:port"`` bootstrap list of the :func:`kafka` broker."""
    return kafka.bootstrap_servers


@_async_fixture
async def fake_kafka() -> AsyncIterator[_fake.FakeKafka]:
    """An in-process fake Kafka with one broker, for one Trio test (see
    :mod:`trio_brod.testing.fake`): on the test's clock, gone after the test.
    """
    async with _fake.fake_kafka(brokers=1) as fake:
        yield fake


@pytest.fixture(scope="session")
def kafka_cluster3() -> Iterator[KafkaCluster]:
    """A real three-broker Kafka cluster for the whole test session, started on first use.

    Internal topics are replicated three times. Stop and start brokers freely in a test:
    stopped ones are started again after it.
    """
    with KafkaCluster(brokers=3, heap="384m") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def kafka_secure() -> Iterator[KafkaCluster]:
    """A real single Kafka broker with SASL and TLS listeners, started on first use.

    Listeners (addresses from ``kafka_secure.listener_bootstrap(name)``):

    ``PLAINTEXT``
        As :func:`kafka`'s; the harness's own tools use it.
    ``SASL_PLAINTEXT`` and ``SASL_SSL``
        PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 for the users of :data:`SECURE_USERS`, and
        OAUTHBEARER with Kafka's unsecured validator
        (:func:`~trio_brod.testing.unsecured_oauth_token`). On SASL_PLAINTEXT an
        OAUTHBEARER session lasts :data:`SECURE_REAUTH_SECONDS` (the broker's
        ``connections.max.reauth.ms``), so that clients must re-authenticate.
    ``SSL`` and ``SASL_SSL``
        TLS with a certificate for 127.0.0.1 and localhost from a CA made for this
        broker: trust it with ``kafka_secure.client_ssl_context()`` or
        ``ssl.create_default_context(cafile=kafka_secure.tls_ca_file)``.
    """
    reauth_ms = str(int(SECURE_REAUTH_SECONDS * 1000))
    with KafkaCluster(
        brokers=1,
        heap="384m",
        sasl_users=SECURE_USERS,
        sasl_mechanisms=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"),
        tls=True,
        broker_config={
            "listener.name.sasl_plaintext.oauthbearer.connections.max.reauth.ms": reauth_ms,
            # A failed login is answered at once instead of after Kafka's anti-brute-force
            # delay (100 ms, ~0.3 s in practice), which every bad-credentials test would pay.
            "connection.failed.authentication.delay.ms": "0",
        },
    ) as cluster:
        yield cluster


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Start again the brokers a test stopped, before the next test (or the session end).

    Runs first, before fixtures are finalised, so the session clusters are still running.
    """
    funcargs: Mapping[str, object] = getattr(item, "funcargs", {})
    for name in _CLUSTER_FIXTURES:
        cluster = funcargs.get(name)
        if isinstance(cluster, KafkaCluster) and cluster.is_running:
            for node_id in cluster.broker_ids:
                if node_id not in cluster.running_broker_ids:
                    cluster.start_broker(node_id)


class MakeTopic(Protocol):
    """The type of the :func:`make_topic` fixture."""

    def __call__(
        self,
        partitions: int = 1,
        replication_factor: int = 1,
        *,
        cluster: KafkaCluster | None = None,
        config: Mapping[str, str] | None = None,
        prefix: str | None = None,
    ) -> str:
        """Create a uniquely named topic and return its name.

        Args:
            partitions: The number of partitions.
            replication_factor: Replicas per partition.
            cluster: Where; default the :func:`kafka` broker (started if need be).
            config: Topic settings, e.g. ``{"cleanup.policy": "compact"}``.
            prefix: The start of the name; default the test's name.
        """
        ...


@pytest.fixture
def make_topic(request: pytest.FixtureRequest) -> MakeTopic:
    """A function creating uniquely named topics: ``make_topic(partitions=3) -> name``.

    Returns when every partition has a leader. See :class:`MakeTopic`.
    """

    def make(
        partitions: int = 1,
        replication_factor: int = 1,
        *,
        cluster: KafkaCluster | None = None,
        config: Mapping[str, str] | None = None,
        prefix: str | None = None,
    ) -> str:
        if cluster is None:
            # Looked up only now, so that a test using only kafka_cluster3 starts no
            # single broker.
            cluster = request.getfixturevalue("kafka")
            assert isinstance(cluster, KafkaCluster)
        base = prefix if prefix is not None else request.node.name
        # Topic names allow [A-Za-z0-9._-] and at most 249 characters.
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.")[:200] or "topic"
        name = f"{base}-{uuid.uuid4().hex[:10]}"
        cluster.create_topic(name, partitions, replication_factor, config)
        return name

    return make
