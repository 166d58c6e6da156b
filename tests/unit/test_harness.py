"""Tests of trio_brod.testing that need no broker: argument checks, version parsing, the
probe's decoder, and what the launcher says when Java, Maven or the jars are missing.

The launcher's tests against real brokers are in tests/integration/test_harness.py.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from trio_brod.protocol.errors import DecodeError
from trio_brod.testing import (
    KafkaCluster,
    KafkaNotAvailable,
    _jars,
    resolve_kafka_jars,
)
from trio_brod.testing._probe import _decode_metadata_v4


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ("something else entirely", None),
    ],
)
def test_java_version_parsing(output: str, major: int | None) -> None:
    assert _jars._parse_java_major(output) == major


def _metadata_v4_bytes() -> bytes:
    """A Metadata v4 response body: broker 1, topic "t" with one partition led by 1."""

    def string(s: str) -> bytes:
        return struct.pack(">h", len(s)) + s.encode()

    return (
        struct.pack(">i", 0)  # throttle
        + struct.pack(">i", 1)
        + struct.pack(">i", 1)
        + string("127.0.0.1")
        + struct.pack(">i", 9092)
        + struct.pack(">h", -1)  # rack null
        + string("cluster")
        + struct.pack(">i", 1)  # controller
        + struct.pack(">i", 1)
        + struct.pack(">h", 0)
        + string("t")
        + b"\x00"
        + struct.pack(">i", 1)
        + struct.pack(">hii", 0, 0, 1)
        + struct.pack(">ii", 1, 1)
        + struct.pack(">ii", 1, 1)
    )


def test_metadata_decoder_reads_a_response() -> None:
    md = _decode_metadata_v4(_metadata_v4_bytes())
    assert md.brokers[1].port == 9092
    assert md.cluster_id == "cluster"
    assert md.topics["t"].partitions[0].leader == 1
    assert md.topics["t"].partitions[0].replicas == (1,)


@pytest.mark.parametrize("cut", [0, 3, 9, 20, 40, 60])
def test_metadata_decoder_rejects_truncated_input(cut: int) -> None:
    with pytest.raises(DecodeError, match="truncated"):
        _decode_metadata_v4(_metadata_v4_bytes()[:cut])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"brokers": 0}, "brokers"),
        ({"heap": "lots"}, "heap"),
        ({"broker_config": {"node.id": "7"}}, "node.id"),
        ({"broker_config": {"log.retention.ms": "1\nnode.id=7"}}, "one-line"),
        ({"broker_config": {"bad key": "1"}}, "setting name"),
        ({"node_config": {2: {"broker.rack": "a"}}}, "no node 2"),
        ({"node_config": {1: {"node.id": "7"}}}, "node.id"),
        ({"port": 70000}, "port"),
    ],
)
def test_cluster_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        KafkaCluster(**kwargs)


def test_no_maven_and_no_cache_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java = _jars.find_java().executable
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(java)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    monkeypatch.setenv("TRIO_BROD_KAFKA_CACHE", str(tmp_path / "cache"))
    with pytest.raises(KafkaNotAvailable, match="Maven"):
        resolve_kafka_jars("4.3.1")
    assert not (tmp_path / "cache" / "4.3.1" / "libs").exists()


def test_kafka_home_that_is_not_kafka_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "libs").mkdir()
    monkeypatch.setenv("KAFKA_HOME", str(tmp_path))
    with pytest.raises(KafkaNotAvailable, match="KAFKA_HOME"):
        resolve_kafka_jars()


# ---- helpers ---------------------------------------------------------------------------------
