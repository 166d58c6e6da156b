"""Other clients as members of a consumer group, for the interop tests of trio-brod's groups.

* :class:`JavaMember`: Kafka's own ``VerifiableConsumer`` (from the same jars as the broker),
  a subprocess whose JSON events (assignments, revocations, records, commits) are read into
  plain lists.
* :class:`LibrdkafkaMember`: a ``confluent_kafka.Consumer`` in a thread of its own, recording
  the same events through its rebalance callbacks.

Both expose ``assigned`` (the partitions the member owns now), ``history`` (each assignment
change, in order) and ``consumed`` (``(topic, partition, offset)`` of every record handled),
so that a test can check "every partition owned exactly once" and "nothing lost" across
clients, whatever they are.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trio_brod.testing import KafkaCluster

TopicPartition = tuple[str, int]

#: Java's class names of the classic protocol's assignors, by their protocol names.
JAVA_ASSIGNORS = {
    "range": "org.apache.kafka.clients.consumer.RangeAssignor",
    "roundrobin": "org.apache.kafka.clients.consumer.RoundRobinAssignor",
    "cooperative-sticky": "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
}


class _Events:
    """What a peer member did, shared between the thread that sees it and the test."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.assigned: set[TopicPartition] = set()
        self.history: list[tuple[str, frozenset[TopicPartition]]] = []
        self.consumed: list[tuple[str, int, int]] = []
        self.committed: dict[TopicPartition, int] = {}
        self.started = threading.Event()

    def assign(self, partitions: set[TopicPartition]) -> None:
        with self.lock:
            self.assigned |= partitions
            self.history.append(("assigned", frozenset(partitions)))

    def revoke(self, partitions: set[TopicPartition]) -> None:
        with self.lock:
            self.assigned -= partitions
            self.history.append(("revoked", frozenset(partitions)))

    def owned(self) -> set[TopicPartition]:
        with self.lock:
            return set(self.assigned)

    def records(self) -> list[tuple[str, int, int]]:
        with self.lock:
            return list(self.consumed)


class JavaMember(_Events):
    """``org.apache.kafka.tools.VerifiableConsumer`` in a group, as a subprocess (the classic
    protocol by default, or KIP-848's with ``group_protocol="consumer"``).

    Commits after each batch of records (its default, without auto-commit), which is what the
    interop tests need: a partition that moves continues after the last commit.
    """

    def __init__(
        self,
        kafka: KafkaCluster,
        topic: str,
        group_id: str,
        log: Path,
        *,
        assignor: str = "range",
        instance_id: str | None = None,
        session_timeout: float = 10.0,
        heartbeat_rate: float | None = None,
        group_protocol: str = "classic",
    ) -> None:
        super().__init__()
        arguments = [
            "--topic",
            topic,
            "--group-id",
            group_id,
            "--group-protocol",
            group_protocol,
            "--reset-policy",
            "earliest",
            "--verbose",
            "--bootstrap-server",
            ",".join(kafka.bootstrap_servers),
        ]
        if group_protocol == "classic":
            # The consumer protocol (KIP-848) has neither: the broker assigns, and its own
            # session timeout and heartbeat interval apply.
            arguments += ["--assignment-strategy", JAVA_ASSIGNORS[assignor]]
            arguments += ["--session-timeout", str(int(session_timeout * 1000))]
        if instance_id is not None:
            arguments += ["--group-instance-id", instance_id]
        if heartbeat_rate is not None and group_protocol == "classic":
            # Java heartbeats every 3 s by default: it would notice a rebalance late.
            properties = log.with_suffix(".properties")
            properties.write_text(f"heartbeat.interval.ms={int(heartbeat_rate * 1000)}\n")
            arguments += ["--command-config", str(properties)]
        self.command = kafka.tool_command("org.apache.kafka.tools.VerifiableConsumer", *arguments)
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        with self.log.open("wb") as errors:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors
            )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        with self.process.stdout, self.log.with_suffix(".events").open("w") as events:
            for line in self.process.stdout:
                text = line.decode("utf-8", "replace").strip()
                events.write(text + "\n")
                if not text.startswith("{"):
                    continue
                self._event(json.loads(text))

    def _event(self, event: dict[str, Any]) -> None:
        name = event.get("name")
        partitions = {(p["topic"], p["partition"]) for p in event.get("partitions", ())}
        if name == "startup_complete":
            self.started.set()
        elif name == "partitions_assigned":
            self.assign(partitions)
        elif name == "partitions_revoked":
            self.revoke(partitions)
        elif name == "record_data":
            with self.lock:
                self.consumed.append((event["topic"], event["partition"], event["offset"]))
        elif name == "offsets_committed" and event.get("success"):
            with self.lock:
                for offset in event.get("offsets", ()):
                    self.committed[offset["topic"], offset["partition"]] = offset["offset"]

    def stop(self) -> None:
        """Stop it cleanly (SIGTERM: it commits and leaves the group)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self._reader is not None:
            self._reader.join(timeout=10)

    def kill(self) -> None:
        """SIGKILL: no commit, no LeaveGroup; the group notices after the session timeout."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            if self._reader is not None:
                self._reader.join(timeout=10)


class LibrdkafkaMember(_Events):
    """A ``confluent_kafka.Consumer`` in a group (classic, or ``group_protocol="consumer"``),
    polling in a thread of its own.

    Commits synchronously after each message it records, so that what it consumed and what
    it committed agree when it leaves (a commit refused because a rebalance moved the
    generation on is not an error: the next owner may handle that message again).
    """

    def __init__(
        self,
        bootstrap_servers: list[str],
        topic: str,
        group_id: str,
        *,
        assignor: str = "range",
        session_timeout: float = 10.0,
        heartbeat_rate: float | None = None,
        group_protocol: str = "classic",
    ) -> None:
        super().__init__()
        self.topic = topic
        self.config: dict[str, Any] = {
            "bootstrap.servers": ",".join(bootstrap_servers),
            "group.id": group_id,
            "group.protocol": group_protocol,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
        if group_protocol == "classic":
            # librdkafka refuses these with group.protocol=consumer (the broker's apply).
            self.config["partition.assignment.strategy"] = assignor
            self.config["session.timeout.ms"] = int(session_timeout * 1000)
            if heartbeat_rate is not None:
                self.config["heartbeat.interval.ms"] = int(heartbeat_rate * 1000)
        # The consumer protocol is incremental: librdkafka wants incremental (un)assigns.
        self.cooperative = assignor == "cooperative-sticky" or group_protocol == "consumer"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from confluent_kafka import Consumer, KafkaError, KafkaException

        rebalance_errors = (
            KafkaError.ILLEGAL_GENERATION,
            KafkaError.REBALANCE_IN_PROGRESS,
            KafkaError.UNKNOWN_MEMBER_ID,
            # The consumer protocol's (KIP-848) refusals of a commit from an old epoch.
            KafkaError.STALE_MEMBER_EPOCH,
            KafkaError.FENCED_MEMBER_EPOCH,
        )
        consumer = Consumer(self.config)

        def on_assign(_: Any, partitions: list[Any]) -> None:
            self.assign({(p.topic, p.partition) for p in partitions})
            if self.cooperative:
                consumer.incremental_assign(partitions)
            self.started.set()

        def on_revoke(_: Any, partitions: list[Any]) -> None:
            self.revoke({(p.topic, p.partition) for p in partitions})
            if self.cooperative:
                consumer.incremental_unassign(partitions)

        try:
            consumer.subscribe([self.topic], on_assign=on_assign, on_revoke=on_revoke)
            while not self._stop.is_set():
                message = consumer.poll(0.2)
                if message is None or message.error():
                    continue
                with self.lock:
                    self.consumed.append((message.topic(), message.partition(), message.offset()))
                try:
                    consumer.commit(message=message, asynchronous=False)
                except KafkaException as exc:
                    # A rebalance moved the generation on (as Java's CommitFailedException):
                    # the message may be handled again by the next owner; go on polling.
                    if exc.args[0].code() not in rebalance_errors:
                        raise
                    continue
                with self.lock:
                    self.committed[message.topic(), message.partition()] = message.offset() + 1
        except BaseException as exc:
            self.error = exc
        finally:
            consumer.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self.error is not None:
            raise self.error


@contextmanager
def running(member: JavaMember | LibrdkafkaMember) -> Iterator[JavaMember | LibrdkafkaMember]:
    """Start a peer member for the block; stop it (cleanly) after."""
    member.start()
    try:
        yield member
    finally:
        member.stop()


def wait_for(condition: Any, timeout: float, what: str) -> None:
    """Poll ``condition()`` (a blocking helper for the peers' threads; tests use trio's)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)
