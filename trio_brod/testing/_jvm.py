"""The JVMs of a harness cluster: Kafka's tools and the broker processes.

Every broker, and every Kafka tool the harness runs (formatting the storage, creating
topics, console clients ...), is a ``java`` process on the Kafka jars' classpath. This module
knows the flags each gets (:class:`KafkaTool`, the broker's flags and the quick-start flags
of short tools), the class-data archive that halves a broker's start
(:class:`ClassDataArchive`), and how to start a node (:meth:`Launcher.launch`) and stop one
(:func:`stop_nodes`).
"""

from __future__ import annotations

import enum
import hashlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from trio_brod.testing._errors import KafkaStartError
from trio_brod.testing._jars import KafkaJars, kafka_cache_root
from trio_brod.testing._layout import BROKER_LOG4J2_FILE, TOOLS_LOG4J2_FILE
from trio_brod.testing._node import Node
from trio_brod.testing._versions import tool_main_class


class KafkaTool(enum.StrEnum):
    """Main classes of Kafka's command line tools, for :meth:`KafkaCluster.tool_command`.

    The values are plain strings, so any other main class on the classpath works too. They
    are the names in the default Kafka release; a tool that has another name in the release
    running gets that one (see ``_versions.tool_main_class``).
    """

    CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
    CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
    TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
    PRODUCER_PERFORMANCE = "org.apache.kafka.tools.ProducerPerformance"
    CONSUMER_PERFORMANCE = "org.apache.kafka.tools.ConsumerPerformance"
    CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
    GET_OFFSET_SHELL = "org.apache.kafka.tools.GetOffsetShell"
    CONFIG_COMMAND = "kafka.admin.ConfigCommand"
    DELETE_RECORDS_COMMAND = "org.apache.kafka.tools.DeleteRecordsCommand"
    METADATA_QUORUM_COMMAND = "org.apache.kafka.tools.MetadataQuorumCommand"
    BROKER_API_VERSIONS_COMMAND = "org.apache.kafka.tools.BrokerApiVersionsCommand"
    STORAGE_TOOL = "kafka.tools.StorageTool"


# Tools that run for a second and exit. They get JVM flags for a quick start (below); the
# others (console clients, performance tools) may run long and get the full JIT.
SHORT_LIVED_TOOLS = frozenset(
    {
        KafkaTool.TOPIC_COMMAND,
        KafkaTool.CONSUMER_GROUP_COMMAND,
        KafkaTool.GET_OFFSET_SHELL,
        KafkaTool.CONFIG_COMMAND,
        KafkaTool.DELETE_RECORDS_COMMAND,
        KafkaTool.METADATA_QUORUM_COMMAND,
        KafkaTool.BROKER_API_VERSIONS_COMMAND,
        KafkaTool.STORAGE_TOOL,
    }
)

# The broker JVM gets the flags Kafka's own start scripts give it (kafka-run-class.sh), so
# it behaves as a real broker does. No start-up tricks that would slow it later.
_BROKER_JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)
# For tools that exit after a second: the C1 compiler alone (C2 would never pay off) and
# the serial collector (no GC threads to start). Measured: TopicCommand 1.0 s -> 0.85 s.
_QUICK_TOOL_JVM_FLAGS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
# The JVM prints its own warnings (e.g. about a class-data archive it cannot use) on stdout
# by default, where they would mix with a tool's output; send them to stderr instead.
_TOOL_JVM_FLAGS = (
    "-Xmx512m",
    "-Djava.awt.headless=true",
    "-Xlog:disable",
    "-Xlog:all=warning:stderr",
)


class ClassDataArchive:
    """A dynamic AppCDS archive of the classes a broker loads, to shorten later starts.

    Measured on a 2-core machine: a broker is ready in ~1.0 s with the archive and ~1.9 s
    without. The archive is made by the first broker started without one
    (``-XX:ArchiveClassesAtExit``, which costs ~2 s when that broker stops) and reused
    afterwards. It is only valid for the exact JVM and classpath, hence the hash in its
    name; should it not match anyway, the JVM says so in console.log and runs without it.
    ``TRIO_BROD_KAFKA_CDS=0`` turns this off.
    """

    _instances: dict[Path, ClassDataArchive] = {}
    _instances_lock = threading.Lock()

    @classmethod
    def for_jars(cls, jars: KafkaJars) -> ClassDataArchive:
        """The one instance for these jars in this process, so only one broker dumps."""
        instance = cls(jars)
        with cls._instances_lock:
            return cls._instances.setdefault(instance.path, instance)

    def __init__(self, jars: KafkaJars) -> None:
        digest = hashlib.sha256()
        digest.update(os.path.realpath(jars.java.executable).encode())
        for jar in sorted(jars.libs.glob("*.jar")):
            stat = jar.stat()
            digest.update(f"{jar.resolve()}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        digest.update(" ".join(_BROKER_JVM_FLAGS).encode())
        self.path = kafka_cache_root() / "cds" / f"broker-{digest.hexdigest()[:24]}.jsa"
        self._claimed = False
        self._lock = threading.Lock()

    def flags_for(self, node: Node) -> list[str]:
        """JVM flags for starting ``node``: use the archive, or make it, or neither."""
        if self.path.is_file():
            return [f"-XX:SharedArchiveFile={self.path}"]
        with self._lock:
            if self._claimed:  # another node of this cluster is already making it
                return []
            self._claimed = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        node.dumping_archive = self.path.with_name(
            f".{self.path.name}.{os.getpid()}.{node.node_id}"
        )
        return [f"-XX:ArchiveClassesAtExit={node.dumping_archive}"]

    def tool_flags(self) -> list[str]:
        """JVM flags for a tool run with the same classpath: use the archive if there is one.

        The broker's archive holds most of the classes a tool needs too (configs, clients,
        Scala): measured, it takes StorageTool format from 0.75 s to 0.5 s. It does not
        depend on the GC or JIT flags, so the quick tool flags can go with it.
        """
        return [f"-XX:SharedArchiveFile={self.path}"] if self.path.is_file() else []

    def finish(self, node: Node, exited_cleanly: bool) -> None:
        """After ``node`` exited: keep the archive it dumped if it exited by itself."""
        dumped, node.dumping_archive = node.dumping_archive, None
        if dumped is None:
            return
        if exited_cleanly and dumped.is_file():
            os.replace(dumped, self.path)  # atomic: readers see all of it or nothing
        else:
            dumped.unlink(missing_ok=True)
            with self._lock:
                self._claimed = False


@dataclass(frozen=True)
class Launcher:
    """Starts the JVMs of one cluster: its jars, its directory (for the log4j2
    configurations), the brokers' heap, and the class-data archive if there is one."""

    jars: KafkaJars
    directory: Path
    heap: str
    archive: ClassDataArchive | None

    def tool_command(self, main_class: str, args: Sequence[str], *, quick: bool) -> list[str]:
        """The command line that runs ``main_class`` (a tool) with ``args``; ``quick``: with
        the flags for tools that exit after a second. A tool that moved to another class in
        this Kafka release runs as that class."""
        return [
            self.jars.java.executable,
            *_TOOL_JVM_FLAGS,
            *(_QUICK_TOOL_JVM_FLAGS if quick else ()),
            *(self.archive.tool_flags() if self.archive is not None else ()),
            f"-Dlog4j2.configurationFile={self.directory / TOOLS_LOG4J2_FILE}",
            "-cp",
            self.jars.classpath,
            tool_main_class(main_class, self.jars.version),
            *args,
        ]

    def format_storage(
        self, nodes: Mapping[int, Node], cluster_id: str, extra_args: Sequence[str]
    ) -> None:
        """Format every node's log directory, all at once (each format is a JVM start).

        ``extra_args`` go to every ``format`` command (the SCRAM users, say).

        Raises:
            KafkaStartError: a format command failed (with its output).
        """
        procs: list[tuple[Node, subprocess.Popen[bytes]]] = []
        try:
            for node in nodes.values():
                args = ["format", "--cluster-id", cluster_id, "--config", str(node.config_path)]
                args += extra_args
                command = self.tool_command(KafkaTool.STORAGE_TOOL, args, quick=True)
                proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                procs.append((node, proc))
            failures = []
            for node, proc in procs:
                output, _ = proc.communicate()
                if proc.returncode != 0:
                    text = output.decode(errors="replace").strip()
                    failures.append(f"node {node.node_id} (exit {proc.returncode}):\n{text}")
        finally:
            # Interrupted (Ctrl-C, say): leave no formatting JVM behind.
            for _, proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        if failures:
            raise KafkaStartError("formatting the Kafka storage failed: " + "\n".join(failures))

    def launch(self, node: Node) -> None:
        """Start ``node``'s broker JVM (its output goes to its console log); returns at once."""
        cds = self.archive.flags_for(node) if self.archive is not None else []
        command = [
            self.jars.java.executable,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            *_BROKER_JVM_FLAGS,
            *cds,
            f"-Dlog4j2.configurationFile={self.directory / BROKER_LOG4J2_FILE}",
            f"-Dkafka.logs.dir={node.log_dir}",
            "-cp",
            self.jars.classpath,
            "kafka.Kafka",
            str(node.config_path),
        ]
        with node.console_log.open("ab") as console:
            node.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=node.home,
                # Its own session, so a Ctrl-C in the terminal reaches only Python, which
                # then stops the brokers itself (and keeps the class-data archive dump).
                start_new_session=True,
            )


def stop_nodes(
    nodes: Iterable[Node],
    timeout: float,
    archive: ClassDataArchive | None,
    *,
    graceful: bool = True,
) -> None:
    """Stop the JVMs of ``nodes`` (each must have one): SIGTERM if ``graceful``, else
    SIGKILL; a JVM still running after ``timeout`` seconds is killed. Keeps the class-data
    archive a node dumped if it exited cleanly."""
    nodes = list(nodes)
    for node in nodes:
        assert node.process is not None
        if node.process.poll() is None:
            if graceful:
                node.process.terminate()
            else:
                node.process.kill()
    deadline = time.monotonic() + timeout
    for node in nodes:
        assert node.process is not None
        clean = True
        try:
            node.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            clean = False
            node.process.kill()
            node.process.wait()
        # A JVM that exits on SIGTERM after running its shutdown hooks reports 143.
        clean = (
            clean
            and graceful
            and node.process.returncode in (0, 128 + signal.SIGTERM, -signal.SIGTERM)
        )
        if archive is not None:
            archive.finish(node, clean)
        node.process = None
