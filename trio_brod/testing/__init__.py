"""Run real Apache Kafka locally, for tests and for trying the library.

Kafka runs from its jars (Java 17+ needed): ``$KAFKA_HOME/libs`` if set, else a cache that
Maven fills on first use (see :func:`resolve_kafka_jars`). Brokers run in KRaft mode, each
node a combined broker and controller, on loopback ports chosen at start.

From synchronous code (and pytest session fixtures, see :mod:`trio_brod.testing.pytest_plugin`)::

    with KafkaCluster(brokers=1) as cluster:
        cluster.create_topic("orders", partitions=3)
        print(cluster.bootstrap_servers)

From Trio::

    async with kafka_cluster(brokers=3) as cluster:
        await cluster.stop_broker(2)
        await cluster.start_broker(2)

With SASL and TLS listeners beside the PLAINTEXT one, to test clients' security::

    with KafkaCluster(sasl_users={"alice": "alice-secret"}, tls=True) as cluster:
        cluster.listener_bootstrap("SASL_SSL")   # also "SASL_PLAINTEXT", "SSL"
        cluster.client_ssl_context()              # trusts the cluster's own CA

From a shell: ``python -m trio_brod.testing.kafka --brokers 3``.

An in-process fake Kafka instead (no JVM, Trio's clock, fault injection; see
:mod:`trio_brod.testing.fake`)::

    async with fake_kafka(brokers=1) as fake:
        fake.create_topic("orders", partitions=3)
        print(fake.bootstrap_servers)

Environment variables:

``KAFKA_HOME``
    Use the jars of this unpacked Kafka distribution instead of fetching them.
``TRIO_BROD_KAFKA_VERSION``
    The Kafka version to fetch and run (default |DEFAULT_KAFKA_VERSION|).
``TRIO_BROD_KAFKA_CACHE``
    Where fetched jars are kept (default ``~/.cache/trio-brod/kafka``).
``TRIO_BROD_KAFKA_KEEP_DATA``
    ``1`` keeps each cluster's directory (configs, data, broker logs) after it stops.
``TRIO_BROD_KAFKA_CDS``
    ``0`` turns off the class-data archive that halves broker start-up.
``JAVA_HOME``
    The Java to run Kafka with (default ``java`` on ``PATH``).

.. |DEFAULT_KAFKA_VERSION| replace:: 4.3.1
"""

from __future__ import annotations

from trio_brod.testing._async import AsyncKafkaCluster, kafka_cluster
from trio_brod.testing._cluster import KafkaCluster
from trio_brod.testing._errors import KafkaStartError, KafkaToolError
from trio_brod.testing._jars import (
    DEFAULT_KAFKA_VERSION,
    KafkaJars,
    KafkaNotAvailable,
    resolve_kafka_jars,
)
from trio_brod.testing._jvm import KafkaTool
from trio_brod.testing._probe import BrokerInfo, ClusterMetadata, PartitionInfo, TopicInfo
from trio_brod.testing._security import unsecured_oauth_token
from trio_brod.testing._versions import SUPPORTED_KAFKA_VERSIONS, parse_kafka_version
from trio_brod.testing.fake import FakeKafka, fake_kafka

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "SUPPORTED_KAFKA_VERSIONS",
    "AsyncKafkaCluster",
    "BrokerInfo",
    "ClusterMetadata",
    "FakeKafka",
    "KafkaCluster",
    "KafkaJars",
    "KafkaNotAvailable",
    "KafkaStartError",
    "KafkaTool",
    "KafkaToolError",
    "PartitionInfo",
    "TopicInfo",
    "fake_kafka",
    "kafka_cluster",
    "parse_kafka_version",
    "resolve_kafka_jars",
    "unsecured_oauth_token",
]
