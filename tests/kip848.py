"""KIP-848's consumer group protocol needs Kafka 4.0+ (GA there, on by default): its tests
skip on older brokers (the compat session runs the suite on Kafka 3.9 too), naming the
version."""

from __future__ import annotations

import pytest

from trio_brod.testing import KafkaCluster


def skip_without_kip848(cluster: KafkaCluster) -> None:
    """Skip the calling test if ``cluster`` runs a Kafka before 4.0."""
    version = cluster.kafka_version
    if int(version.split(".")[0]) < 4:
        pytest.skip(f"Kafka {version} lacks the consumer group protocol (KIP-848, Kafka 4.0+)")
