"""The benchmark runner works end to end (``benchmarks/run.py --smoke``), against the session
broker. It checks that every workload ran and verified its counts; it never looks at speed.

Peers that are not installed (aiokafka, kafka-python, confluent-kafka come with the ``bench``
extra) are reported as skipped by the runner, so this test needs only trio-brod and Java.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trio_brod.testing import KafkaCluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_run_covers_every_workload(kafka: KafkaCluster, tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--smoke",
            "--bootstrap",
            kafka.bootstrap_servers[0],
            "--output-dir",
            str(tmp_path),
            "--no-plot",
        ],
        capture_output=True,
        text=True,
        timeout=600,
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
        ("consume", "trio-brod"),
        ("latency", "trio-brod"),
        ("partitions", "trio-brod"),
    }
    smoke_messages = data["meta"]["messages"]
    for r in ran:
        if r["family"] != "trio-brod":
            continue
        if r["workload"] == "produce":
            assert r["messages"] == smoke_messages
        elif r["workload"] == "consume":
            # The fill writes the smoke count (plus one warm-up record per partition).
            assert r["messages"] >= smoke_messages
        elif r["workload"] == "latency":
            assert r["latency"]["samples"] > 0
            assert r["latency"]["p50_ms"] <= r["latency"]["p99_ms"]
        else:
            assert r["produce"]["messages"] == r["consume"]["messages"] > 0
    # The table and the ratios were printed, and the files written.
    assert "### Produce" in completed.stdout
    assert "trio-brod / peer" in completed.stdout or "Against the issue" in completed.stdout
    assert (tmp_path / "latest.md").read_text().startswith("Machine:")
