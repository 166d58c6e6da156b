"""The benchmark runner works end to end (``benchmarks/run.py --quick``, as issue 5 asks CI
to run it), against the session broker. It checks that every workload ran and verified its
counts, for trio-brod and for the peers; it never looks at speed.

The peers (aiokafka, kafka-python, confluent-kafka) come with the ``bench`` extra, which the
``tests`` nox session installs; a peer that is not installed is reported as skipped.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from trio_brod.testing import KafkaCluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_covers_every_workload(kafka: KafkaCluster, tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--bootstrap",
            kafka.bootstrap_servers[0],
            "--output-dir",
            str(tmp_path),
            "--no-plot",
            "--partition-messages",
            "12000",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    data = json.loads((tmp_path / "latest.json").read_text())
    results = data["results"]
    ran = [r for r in results if not r.get("skipped")]
    assert all(r["ok"] for r in ran), [r for r in ran if not r["ok"]]

    ours = {(r["workload"], r["row"]) for r in ran if r["family"] == "trio-brod"}
    assert ours == {
        ("produce", "trio-brod"),
        ("produce", "trio-brod-batch"),
        ("produce", "trio-brod-otel"),
        ("produce", "trio-brod-unobserved"),
        ("consume", "trio-brod"),
        ("consume", "trio-brod-otel"),
        ("consume", "trio-brod-unobserved"),
        ("consume", "trio-brod-partition"),
        ("latency", "trio-brod"),
        ("partitions", "trio-brod"),
        ("partitions", "trio-brod-partition"),
        ("group", "trio-brod"),
        ("group", "trio-brod-message"),
        ("rebalance", "trio-brod"),
        ("rebalance", "trio-brod-range"),
        ("rebalance", "trio-brod-consumer"),
        ("txn_produce", "trio-brod"),
        ("txn_process", "trio-brod"),
    }
    # With the bench extra installed (as in CI) every peer ran too.
    families = {r["family"] for r in ran}
    modules = {
        "aiokafka": "aiokafka",
        "kafka-python": "kafka",
        "confluent-kafka": "confluent_kafka",
    }
    for peer, module in modules.items():
        if importlib.util.find_spec(module) is None:
            continue
        assert peer in families, f"{peer} is installed but did not run"
    smoke_messages = data["meta"]["messages"]
    for r in ran:
        if r["family"] != "trio-brod":
            continue
        if r["workload"] == "produce":
            assert r["messages"] == smoke_messages
        elif r["workload"] == "consume":
            # The fill writes the smoke count (plus one warm-up record per partition).
            assert r["messages"] >= smoke_messages
        elif r["workload"] == "group":
            assert r["messages"] >= smoke_messages
        elif r["workload"] == "rebalance":
            # A second and a third member joined; every produced message was handled.
            assert [j["members"] for j in r["joins"]] == [2, 3]
            assert all(len(j["pauses_s"]) == 12 for j in r["joins"])
            assert r["messages"] > 0
            assert r["duplicates"] >= 0
        elif r["workload"] == "txn_produce":
            assert r["messages"] == smoke_messages
            assert r["transactions"] == -(-smoke_messages // 1000)
        elif r["workload"] == "txn_process":
            assert r["messages"] >= smoke_messages
            assert r["transactions"] > 0
        elif r["workload"] == "latency":
            assert r["latency"]["samples"] > 0
            assert r["latency"]["p50_ms"] <= r["latency"]["p99_ms"]
        else:
            assert r["produce"]["messages"] == r["consume"]["messages"] == 12_000
    # The table and the ratios were printed, and the files written.
    assert "### Produce" in completed.stdout
    assert "trio-brod / peer" in completed.stdout or "Against the issue" in completed.stdout
    assert (tmp_path / "latest.md").read_text().startswith("Machine:")
