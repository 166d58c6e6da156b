"""Tests of trio_brod.testing: the local Kafka launcher, its fixtures and its helpers.

Brokers are looked at with kcat (librdkafka), a client independent of trio-brod and of the
harness's own probes. The tests that need no broker are in tests/unit/test_harness.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_brod.testing import (
    AsyncKafkaCluster,
    KafkaCluster,
    KafkaStartError,
    KafkaTool,
    KafkaToolError,
    _layout,
    kafka_cluster,
    resolve_kafka_jars,
)
from trio_brod.testing.pytest_plugin import MakeTopic


def kcat_metadata(bootstrap: str, topic: str | None = None) -> dict[str, Any]:
    """``kcat -L -J`` against one broker, decoded."""
    command = ["kcat", "-b", bootstrap, "-L", "-J", "-m", "10"]
    if topic is not None:
        command += ["-t", topic]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def kcat_broker_ids(bootstrap: str) -> set[int]:
    return {broker["id"] for broker in kcat_metadata(bootstrap)["brokers"]}


def java_processes_mentioning(text: str) -> list[int]:
    """Pids of java processes whose command line contains ``text`` (reads /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # the process is gone already
            continue
        if argv and argv[0].endswith(b"java") and any(text.encode() in arg for arg in argv):
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port that someone else (this socket) is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# ---- one broker ------------------------------------------------------------------------------


@pytest.mark.integration
def test_single_broker_is_seen_by_kcat(kafka: KafkaCluster, bootstrap_servers: list[str]) -> None:
    assert bootstrap_servers == kafka.bootstrap_servers
    assert len(bootstrap_servers) == 1
    metadata = kcat_metadata(bootstrap_servers[0])
    assert [(b["id"], b["name"]) for b in metadata["brokers"]] == [(1, bootstrap_servers[0])]
    assert kafka.broker_address(1) == bootstrap_servers[0]
    assert kafka.broker_ids == [1]
    assert kafka.log_path(1).is_file()


@pytest.mark.integration
def test_make_topic_creates_the_partitions_asked_for(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    topic = make_topic(partitions=3)
    assert topic.startswith("test_make_topic_creates_the_partitions_asked_for-")
    described = kcat_metadata(kafka.bootstrap_servers[0], topic)["topics"]
    assert [t["topic"] for t in described] == [topic]
    partitions = described[0]["partitions"]
    assert sorted(p["partition"] for p in partitions) == [0, 1, 2]
    assert all(p["leader"] == 1 and len(p["replicas"]) == 1 for p in partitions)


@pytest.mark.integration
def test_create_topic_with_config_and_delete_it(kafka: KafkaCluster) -> None:
    kafka.create_topic("harness-compacted", 2, 1, {"cleanup.policy": "compact"})
    described = kafka.run_tool(
        KafkaTool.TOPIC_COMMAND, "--describe", "--topic", "harness-compacted", check=True
    )
    assert "cleanup.policy=compact" in described.stdout
    with pytest.raises(KafkaToolError, match="already exists"):
        kafka.create_topic("harness-compacted")

    kafka.delete_topic("harness-compacted")
    assert kafka.metadata(["harness-compacted"]).topics["harness-compacted"].error_code == 3
    all_topics = kcat_metadata(kafka.bootstrap_servers[0])["topics"]
    assert "harness-compacted" not in [t["topic"] for t in all_topics]


@pytest.mark.integration
def test_create_topic_checks_its_arguments_before_asking_kafka(kafka: KafkaCluster) -> None:
    with pytest.raises(ValueError, match="replication_factor"):
        kafka.create_topic("harness-rf", replication_factor=2)
    with pytest.raises(ValueError, match="invalid topic name"):
        kafka.create_topic("no spaces allowed")


@pytest.mark.integration
def test_console_tools_round_trip(kafka: KafkaCluster, make_topic: MakeTopic) -> None:
    topic = make_topic()
    kafka.run_tool(
        KafkaTool.CONSOLE_PRODUCER, "--topic", topic, input="one\ntwo\nthree\n", check=True
    )
    consumed = kafka.run_tool(
        KafkaTool.CONSOLE_CONSUMER,
        "--topic",
        topic,
        "--from-beginning",
        "--max-messages",
        "3",
        "--timeout-ms",
        "20000",
        check=True,
    )
    assert consumed.stdout.splitlines() == ["one", "two", "three"]
    command = kafka.tool_command(KafkaTool.PRODUCER_PERFORMANCE, "--help")
    assert command[0].endswith("java")
    assert command[command.index(KafkaTool.PRODUCER_PERFORMANCE) + 1] == "--bootstrap-server"


@pytest.mark.compat
@pytest.mark.integration
def test_every_tool_runs_as_a_class_of_this_kafka(kafka: KafkaCluster) -> None:
    # Some tools moved to another class between releases (the console producer in 4.0,
    # kafka-configs in 4.4): each KafkaTool must start a class this release's jars hold.
    classes: set[str] = set()
    for jar in resolve_kafka_jars(kafka.kafka_version).libs.glob("*.jar"):
        with zipfile.ZipFile(jar) as archive:
            classes.update(archive.namelist())
    for tool in KafkaTool:
        command = kafka.tool_command(tool)
        main_class = command[command.index("-cp") + 2]
        assert f"{main_class.replace('.', '/')}.class" in classes, (kafka.kafka_version, tool)


# ---- three brokers ---------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.cluster
def test_cluster_of_three_is_seen_by_kcat(kafka_cluster3: KafkaCluster) -> None:
    assert kafka_cluster3.broker_ids == [1, 2, 3]
    for address in kafka_cluster3.bootstrap_servers:
        assert kcat_broker_ids(address) == {1, 2, 3}


@pytest.mark.integration
@pytest.mark.cluster
def test_make_topic_on_the_cluster_is_replicated(
    kafka_cluster3: KafkaCluster, make_topic: MakeTopic
) -> None:
    topic = make_topic(partitions=4, replication_factor=3, cluster=kafka_cluster3)
    partitions = kcat_metadata(kafka_cluster3.bootstrap_servers[0], topic)["topics"][0][
        "partitions"
    ]
    assert len(partitions) == 4
    for p in partitions:
        assert sorted(r["id"] for r in p["replicas"]) == [1, 2, 3]
        assert p["leader"] in (1, 2, 3)


@pytest.mark.integration
@pytest.mark.cluster
def test_stopped_broker_leaves_and_rejoins_metadata(
    kafka_cluster3: KafkaCluster, make_topic: MakeTopic
) -> None:
    topic = make_topic(partitions=3, replication_factor=3, cluster=kafka_cluster3)
    bootstrap = kafka_cluster3.broker_address(1)

    kafka_cluster3.stop_broker(2)
    assert kafka_cluster3.running_broker_ids == [1, 3]
    assert kcat_broker_ids(bootstrap) == {1, 3}
    # A clean shutdown hands leadership over: no partition is led by the stopped broker.
    partitions = kcat_metadata(bootstrap, topic)["topics"][0]["partitions"]
    assert all(p["leader"] in (1, 3) for p in partitions)

    kafka_cluster3.start_broker(2)
    assert kafka_cluster3.running_broker_ids == [1, 2, 3]
    assert kcat_broker_ids(bootstrap) == {1, 2, 3}
    assert kcat_broker_ids(kafka_cluster3.broker_address(2)) == {1, 2, 3}


@pytest.mark.integration
@pytest.mark.cluster
async def test_async_wrapper_stops_and_starts_brokers(kafka_cluster3: KafkaCluster) -> None:
    cluster = AsyncKafkaCluster(kafka_cluster3)
    await cluster.stop_broker(3)
    assert set((await cluster.metadata([])).brokers) == {1, 2}
    await cluster.start_broker(3)
    assert set((await cluster.metadata([], node_id=3)).brokers) == {1, 2, 3}


@pytest.mark.integration
@pytest.mark.cluster
def test_plugin_restores_stopped_brokers_a_test_leaves_stopped(
    kafka_cluster3: KafkaCluster,
) -> None:
    kafka_cluster3.stop_broker(1)
    assert kafka_cluster3.running_broker_ids == [2, 3]


@pytest.mark.integration
@pytest.mark.cluster
def test_plugin_restored_the_broker_the_previous_test_stopped(
    kafka_cluster3: KafkaCluster,
) -> None:
    # Runs after the test above (pytest keeps file order): broker 1 is back.
    assert kafka_cluster3.running_broker_ids == [1, 2, 3]
    assert kcat_broker_ids(kafka_cluster3.broker_address(2)) == {1, 2, 3}


# ---- clusters of their own -------------------------------------------------------------------


@pytest.mark.integration
async def test_async_kafka_cluster_starts_and_stops_a_broker(tmp_path: Path) -> None:
    async with kafka_cluster(brokers=1, data_dir=tmp_path, keep_data=False) as cluster:
        directory = cluster.directory
        assert java_processes_mentioning(str(directory))
        result = await trio.run_process(
            ["kcat", "-b", cluster.bootstrap_servers[0], "-L", "-J", "-m", "10"],
            capture_stdout=True,
        )
        assert [b["id"] for b in json.loads(result.stdout)["brokers"]] == [1]
        await cluster.create_topic("async-made", partitions=2)
        assert len((await cluster.metadata(["async-made"])).topics["async-made"].partitions) == 2
        produced = await cluster.run_tool(
            KafkaTool.CONSOLE_PRODUCER, "--topic", "async-made", input="x\n"
        )
        assert produced.returncode == 0, produced.stderr
    assert not directory.exists()
    assert java_processes_mentioning(str(tmp_path)) == []


@pytest.mark.integration
async def test_cancelled_start_leaves_no_jvm(tmp_path: Path) -> None:
    with trio.move_on_after(1.0) as scope:
        async with kafka_cluster(brokers=1, data_dir=tmp_path, keep_data=False):
            pytest.fail("the broker cannot be ready within 1 s of asking")
    assert scope.cancelled_caught
    assert java_processes_mentioning(str(tmp_path)) == []
    assert list(await trio.Path(tmp_path).iterdir()) == []


@pytest.mark.integration
def test_broker_that_cannot_bind_is_reported_at_once(tmp_path: Path, held_port: int) -> None:
    cluster = KafkaCluster(port=held_port, data_dir=tmp_path, keep_data=False)
    started = time.monotonic()
    with pytest.raises(KafkaStartError, match="in use") as caught:
        cluster.start()
    # Reported when the JVM exits, not after the 90 s start-up time-out.
    assert time.monotonic() - started < 45
    assert "server.log" in str(caught.value)
    assert java_processes_mentioning(str(tmp_path)) == []
    cluster.stop()  # harmless after a failed start


@pytest.mark.integration
def test_start_retries_when_a_chosen_port_is_taken(
    tmp_path: Path, held_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_free_ports = _layout.free_ports
    calls = []

    def first_choice_taken(count: int) -> list[int]:
        calls.append(count)
        ports = real_free_ports(count)
        if len(calls) == 1:
            ports[0] = held_port
        return ports

    monkeypatch.setattr(_layout, "free_ports", first_choice_taken)
    with KafkaCluster(data_dir=tmp_path, keep_data=False) as cluster:
        assert len(calls) == 2
        assert cluster.bootstrap_servers != [f"127.0.0.1:{held_port}"]
        assert kcat_broker_ids(cluster.bootstrap_servers[0]) == {1}
    assert java_processes_mentioning(str(tmp_path)) == []


@pytest.mark.integration
def test_cluster_directory_is_deleted_unless_kept(tmp_path: Path) -> None:
    with KafkaCluster(data_dir=tmp_path, keep_data=True) as cluster:
        directory = cluster.directory
    assert (directory / "node-1" / "logs" / "server.log").is_file()
    log = (directory / "node-1" / "logs" / "server.log").read_text()
    assert "Kafka Server started" in log
    # Clean shutdown when the data is kept.
    assert "shut down completed" in log
    assert os.listdir(tmp_path) == [directory.name]
