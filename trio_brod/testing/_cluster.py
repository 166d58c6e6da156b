"""KafkaCluster: one or three real Kafka brokers (KRaft, combined broker+controller nodes).

The core is synchronous (``subprocess.Popen`` and blocking sockets) because pytest session
fixtures cannot be async under pytest-trio; :mod:`trio_brod.testing._async` wraps it for
Trio code.

Each node is one JVM running ``kafka.Kafka`` with ``process.roles=broker,controller`` on
loopback, with a listener for clients and one for the controller quorum. Every node is a
voter, so a three-node cluster keeps working with one node down. The cluster lives in a
fresh directory (configs, data, logs) that :meth:`KafkaCluster.stop` deletes.

On request a node has more client listeners, each on its own port: SASL_PLAINTEXT, SSL and
SASL_SSL (see :mod:`trio_brod.testing._security`). Brokers still talk to each other and to
the controllers over PLAINTEXT.
"""

from __future__ import annotations

import atexit
import base64
import enum
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from trio_brod.protocol.errors import BrodError, DecodeError
from trio_brod.testing._jars import KafkaJars, kafka_cache_root, resolve_kafka_jars
from trio_brod.testing._probe import ClusterMetadata, api_versions, metadata
from trio_brod.testing._security import (
    SASL_LISTENERS,
    SECURE_LISTENERS,
    TlsFiles,
    check_sasl_options,
    make_tls_files,
    sasl_settings,
    scram_format_args,
    tls_settings,
)

__all__ = ["KafkaCluster", "KafkaStartError", "KafkaTool", "KafkaToolError"]

_HOST = "127.0.0.1"
_UNKNOWN_TOPIC_OR_PARTITION = 3
# How often readiness loops poll. The probes are cheap (one loopback connection each).
_POLL_INTERVAL = 0.05
# Starting the whole cluster is retried this often when another process grabbed one of the
# ports between our choosing it and the broker binding it.
_PORT_ATTEMPTS = 3


class KafkaStartError(BrodError):
    """A broker did not start, or did not become ready in time.

    The message carries the end of the broker's log, which usually says why.
    """


class KafkaToolError(BrodError):
    """A Kafka command line tool run by the harness failed.

    Attributes:
        result: The finished process, with its ``stdout`` and ``stderr``.
    """

    def __init__(self, message: str, result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(message)
        self.result = result


class KafkaTool(enum.StrEnum):
    """Main classes of Kafka's command line tools, for :meth:`KafkaCluster.tool_command`.

    The values are plain strings, so any other main class on the classpath works too.
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
_SHORT_LIVED_TOOLS = frozenset(
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

# Settings the harness derives per node; broker_config may not override them.
_RESERVED_SETTINGS = frozenset(
    {
        "process.roles",
        "node.id",
        "controller.quorum.voters",
        "controller.quorum.bootstrap.servers",
        "listeners",
        "advertised.listeners",
        "controller.listener.names",
        "listener.security.protocol.map",
        "inter.broker.listener.name",
        "log.dirs",
        "log.dir",
        "metadata.log.dir",
    }
)


def _test_friendly_settings(brokers: int) -> dict[str, str]:
    """Broker settings that suit tests, each with its reason. Otherwise Kafka's defaults."""
    # Internal topics are replicated over all brokers of a cluster (3 of 3), as in a real
    # deployment, so failover tests exercise real coordinator moves. On one broker they
    # cannot be replicated at all, and Kafka's default of 3 would make them uncreatable.
    internal_rf = str(min(brokers, 3))
    return {
        "offsets.topic.replication.factor": internal_rf,
        "transaction.state.log.replication.factor": internal_rf,
        "share.coordinator.state.topic.replication.factor": internal_rf,
        # Kafka's default min ISR for the transaction log (2) would stop transactions when
        # one broker of three is down; tests that stop brokers want them to go on.
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Created on the first group or transaction. Kafka's 50 partitions take seconds to
        # create and load on a small machine; 10 still spread coordinators over 3 brokers.
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.num.partitions": "10",
        # A new group's first rebalance otherwise waits 3 s for more members to join;
        # tests start groups all the time.
        "group.initial.rebalance.delay.ms": "0",
        # Brokers heartbeat to the controller every 2 s by default, and a controlled
        # shutdown is granted only after the others have caught up, as their heartbeats
        # report: ~4 s per stopped broker. 500 ms makes that ~1 s at a negligible cost.
        # And a broker restarted within the session time-out of its previous incarnation
        # (9 s by default, counted from its last heartbeat) is refused registration until it
        # expires; 4 s (8 heartbeats) lets tests restart brokers quickly and still leaves a
        # busy two-core machine ample slack. It is also how long a crashed broker takes to be
        # fenced.
        "broker.heartbeat.interval.ms": "500",
        "broker.session.timeout.ms": "4000",
        # Voters that know no leader (all of them, at the first start) wait a random 1-2
        # election time-outs before asking for votes. 500 ms instead of 1 s: a three-node
        # cluster is ready ~0.4 s sooner, and a new leader is elected sooner after the old
        # one is stopped. Detecting a dead leader is a separate time-out (fetch, 2 s).
        "controller.quorum.election.timeout.ms": "500",
        # As Kafka's defaults, stated so tests can rely on them: producing to or fetching
        # metadata for a new topic creates it, with one partition of one replica.
        "auto.create.topics.enable": "true",
        "num.partitions": "1",
        "default.replication.factor": "1",
        "delete.topic.enable": "true",
    }


_BROKER_LOG4J2 = """\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by trio_brod.testing. The broker logs to ${sys:kafka.logs.dir}/server.log. -->
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="server" fileName="${sys:kafka.logs.dir}/server.log"
                 filePattern="${sys:kafka.logs.dir}/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="100 MB"/>
      <DefaultRolloverStrategy max="2"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO">
      <AppenderRef ref="server"/>
    </Root>
    <!-- Noisy at INFO, and rarely what a failing test needs: every request (Kafka's own
         default is WARN too), the clients inside the broker printing their whole config,
         and a few lines per partition each time a log is created, loaded or rolled. -->
    <Logger name="kafka.request.logger" level="WARN"/>
    <!-- The whole effective configuration, several hundred lines, three times per start;
         the settings that differ from Kafka's defaults are in server.properties. -->
    <Logger name="kafka.server.KafkaConfig" level="WARN"/>
    <Logger name="org.apache.kafka.common.config.AbstractConfig" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
    <Logger name="org.apache.kafka.common.utils.AppInfoParser" level="WARN"/>
    <Logger name="org.apache.kafka.common.metrics" level="WARN"/>
    <Logger name="org.apache.kafka.storage.internals.log" level="WARN"/>
    <Logger name="org.apache.kafka.storage.internals.checkpoint" level="WARN"/>
    <Logger name="kafka.log" level="WARN"/>
  </Loggers>
</Configuration>
"""

_TOOLS_LOG4J2 = """\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by trio_brod.testing: command line tools log warnings to stderr. -->
<Configuration status="WARN">
  <Appenders>
    <Console name="stderr" target="SYSTEM_ERR">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="WARN">
      <AppenderRef ref="stderr"/>
    </Root>
  </Loggers>
</Configuration>
"""


def _random_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Made here rather than by ``kafka-storage random-uuid``, which costs a JVM start. Like
    Kafka, avoid ids starting with "-", which command lines would take for an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _free_ports(count: int) -> list[int]:
    """Ports the kernel says are free now. All sockets stay open until all are chosen, so
    the ports are distinct; someone else may still take one before the broker binds it,
    which start() handles by retrying."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind((_HOST, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _closed_listeners(node: _Node) -> list[str]:
    """The node's security listeners that do not accept a TCP connection (yet).

    The broker opens all its listeners together, after the PLAINTEXT one answers
    ApiVersions or about then; this makes sure before tests use them.
    """
    closed = []
    for name, port in node.extra_ports.items():
        try:
            with socket.create_connection((_HOST, port), timeout=2.0):
                pass
        except OSError:
            closed.append(name)
    return closed


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * lines))
            data = f.read()
    except FileNotFoundError:
        return f"({path} does not exist)"
    text = data.decode(errors="replace").splitlines()[-lines:]
    return "\n".join(text) if text else f"({path} is empty)"


def _write_properties(path: Path, settings: Mapping[str, str]) -> None:
    # Java properties: backslash is the escape character; newlines were rejected earlier.
    body = "".join(
        f"{key}={value.replace(chr(92), chr(92) * 2)}\n" for key, value in settings.items()
    )
    path.write_text("# Written by trio_brod.testing\n" + body)


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() not in {"0", "false", "no", "off"}


@dataclass
class _Node:
    """One combined broker+controller: its ports, its directory and its JVM."""

    node_id: int
    port: int
    controller_port: int
    home: Path
    # The security listeners' ports, by listener name ("SASL_PLAINTEXT", "SSL", "SASL_SSL").
    extra_ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    # Where this JVM dumps a class-data archive at exit (see _ClassDataArchive), if it does.
    dumping_archive: Path | None = None

    @property
    def address(self) -> str:
        return f"{_HOST}:{self.port}"

    @property
    def all_ports(self) -> list[int]:
        return [self.port, self.controller_port, *self.extra_ports.values()]

    def listener_address(self, listener: str) -> str:
        port = self.port if listener == "PLAINTEXT" else self.extra_ports[listener]
        return f"{_HOST}:{port}"

    @property
    def config_path(self) -> Path:
        return self.home / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def server_log(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def console_log(self) -> Path:
        """The JVM's stdout and stderr: what happens before logging starts, and crashes."""
        return self.log_dir / "console.log"

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class _ClassDataArchive:
    """A dynamic AppCDS archive of the classes a broker loads, to shorten later starts.

    Measured on a 2-core machine: a broker is ready in ~1.0 s with the archive and ~1.9 s
    without. The archive is made by the first broker started without one
    (``-XX:ArchiveClassesAtExit``, which costs ~2 s when that broker stops) and reused
    afterwards. It is only valid for the exact JVM and classpath, hence the hash in its
    name; should it not match anyway, the JVM says so in console.log and runs without it.
    ``TRIO_BROD_KAFKA_CDS=0`` turns this off.
    """

    _instances: dict[Path, _ClassDataArchive] = {}
    _instances_lock = threading.Lock()

    @classmethod
    def for_jars(cls, jars: KafkaJars) -> _ClassDataArchive:
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

    def flags_for(self, node: _Node) -> list[str]:
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

    def finish(self, node: _Node, exited_cleanly: bool) -> None:
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


# Clusters still running when the interpreter exits are stopped then, so that a test run
# that ends abnormally (but not by SIGKILL) leaves no JVM behind. Strong references: a
# running cluster forgotten by its owner must still be stopped, not garbage collected.
_running_clusters: set[KafkaCluster] = set()


@atexit.register
def _stop_running_clusters() -> None:
    for cluster in list(_running_clusters):
        cluster.stop()


class KafkaCluster:
    """One or more real Kafka brokers in KRaft mode, on loopback, run from the Kafka jars.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`)::

        with KafkaCluster(brokers=3) as cluster:
            cluster.create_topic("orders", partitions=3, replication_factor=3)
            print(cluster.bootstrap_servers)   # ['127.0.0.1:40123', ...]
            cluster.stop_broker(2)
            cluster.start_broker(2)            # same node, same data: it rejoins

    Node ids are ``1 .. brokers``; every node is both a broker and a controller (a voter of
    the metadata quorum). Methods are thread-safe: lifecycle changes are serialised.

    Security listeners, for testing clients' SASL and TLS, come on request::

        with KafkaCluster(sasl_users={"alice": "alice-secret"}, tls=True) as cluster:
            cluster.listener_bootstrap("SASL_PLAINTEXT")   # ['127.0.0.1:40125']
            cluster.listener_bootstrap("SASL_SSL")
            context = cluster.client_ssl_context()          # trusts the cluster's CA

    ``bootstrap_servers`` stays the PLAINTEXT listener, which the harness's own tools and
    probes use.

    Args:
        brokers: How many nodes.
        kafka_version: Kafka version to run; default ``$TRIO_BROD_KAFKA_VERSION`` or 4.3.1.
            Ignored when ``KAFKA_HOME`` is set.
        heap: The broker JVM heap (``-Xmx``/``-Xms``), e.g. ``"512m"``.
        broker_config: Extra broker settings (``server.properties`` keys), overriding the
            harness's test-friendly defaults. Node-specific settings (listeners, node.id,
            log.dirs ...) are the harness's and may not be given.
        data_dir: The directory under which the cluster's own fresh directory is made;
            default the system temporary directory.
        port: If given, broker ``n`` listens for clients on ``port + n - 1`` instead of a
            free port chosen at start.
        startup_timeout: Seconds to wait for brokers to become ready.
        keep_data: Keep the cluster directory (configs, data, logs) after :meth:`stop`;
            also turned on by ``TRIO_BROD_KAFKA_KEEP_DATA=1``.
        sasl_users: If given, add a SASL_PLAINTEXT listener (and a SASL_SSL one with
            ``tls``) where these users (name to password) can log in with each of
            ``sasl_mechanisms``. Names and passwords are 1-64 of ``[A-Za-z0-9._~-]``.
        sasl_mechanisms: The SASL mechanisms to enable: any of ``"PLAIN"``,
            ``"SCRAM-SHA-256"``, ``"SCRAM-SHA-512"`` and ``"OAUTHBEARER"``. OAUTHBEARER
            uses Kafka's unsecured validator, which takes any unsigned token with a ``sub``
            and a future ``exp`` (see :func:`~trio_brod.testing.unsecured_oauth_token`).
        tls: Add an SSL listener (and a SASL_SSL one with ``sasl_users``) with a server
            certificate for ``127.0.0.1`` and ``localhost``, signed by a CA made for this
            cluster (:attr:`tls_ca_file`). Needs the ``openssl`` command line tool.
    """

    def __init__(
        self,
        brokers: int = 1,
        *,
        kafka_version: str | None = None,
        heap: str = "512m",
        broker_config: Mapping[str, str] | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        startup_timeout: float = 90.0,
        keep_data: bool | None = None,
        sasl_users: Mapping[str, str] | None = None,
        sasl_mechanisms: Collection[str] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        tls: bool = False,
    ) -> None:
        if not isinstance(brokers, int) or brokers < 1:
            raise ValueError(f"brokers must be a positive int, not {brokers!r}")
        if not re.fullmatch(r"[1-9][0-9]*[kKmMgG]?", heap):
            raise ValueError(f"heap must be a JVM memory size such as '512m', not {heap!r}")
        if port is not None and not 1 <= port <= 65535 - brokers:
            raise ValueError(f"port must be between 1 and {65535 - brokers}, not {port!r}")
        if startup_timeout <= 0:
            raise ValueError(f"startup_timeout must be positive, not {startup_timeout!r}")
        extra = dict(broker_config or {})
        for key, value in extra.items():
            if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", key):
                raise ValueError(f"broker_config key {key!r} is not a Kafka setting name")
            if key in _RESERVED_SETTINGS:
                raise ValueError(
                    f"broker_config may not set {key!r}: the harness sets it for each node"
                )
            if not isinstance(value, str) or "\n" in value or "\r" in value:
                raise ValueError(f"broker_config[{key!r}] must be a one-line str, not {value!r}")
        if not isinstance(tls, bool):
            raise ValueError(f"tls must be a bool, not {tls!r}")
        self._sasl_users, self._sasl_mechanisms = check_sasl_options(sasl_users, sasl_mechanisms)
        self._tls = tls
        # The security listeners, each named after its protocol, in port order.
        sasl = sasl_users is not None
        wanted = {"SASL_PLAINTEXT": sasl, "SSL": tls, "SASL_SSL": sasl and tls}
        self._extra_listeners = tuple(name for name in SECURE_LISTENERS if wanted[name])
        self._tls_files: TlsFiles | None = None
        self._size = brokers
        self._kafka_version = kafka_version
        self._heap = heap
        self._broker_config = extra
        self._data_parent = Path(data_dir) if data_dir is not None else None
        self._first_port = port
        self._startup_timeout = startup_timeout
        self._keep_data = (
            keep_data if keep_data is not None else _env_flag("TRIO_BROD_KAFKA_KEEP_DATA", False)
        )
        self._lock = threading.RLock()
        # Set by stop(), possibly from another thread while start() is still waiting.
        self._stopping = threading.Event()
        self._state = "new"  # -> "starting" -> "running" -> "stopped"
        self._jars: KafkaJars | None = None
        self._archive: _ClassDataArchive | None = None
        self._dir: Path | None = None
        self._nodes: dict[int, _Node] = {}

    # ---- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every node and wait until the cluster is ready.

        Ready means: every broker answers ApiVersions, and every broker's metadata lists
        every broker (all registered and unfenced).

        Raises:
            KafkaNotAvailable: Java or the Kafka jars are missing (see the message).
            KafkaStartError: A broker died or was not ready within ``startup_timeout``.
            RuntimeError: The cluster was started before.
        """
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"KafkaCluster can be started once; it is {self._state}")
            self._state = "starting"
            try:
                self._start_locked()
            except BaseException:
                self._state = "stopped"
                raise
            self._state = "running"

    def _start_locked(self) -> None:
        jars = self._jars = resolve_kafka_jars(self._kafka_version)
        if _env_flag("TRIO_BROD_KAFKA_CDS", True):
            self._archive = _ClassDataArchive.for_jars(jars)
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self._check_not_stopping()
            _running_clusters.add(self)
            self._make_layout()
            try:
                self._format_storage()
                for node in self._nodes.values():
                    self._check_not_stopping()
                    self._launch(node)
                self._wait_until_ready(time.monotonic() + self._startup_timeout)
                return
            except _PortTaken as exc:
                self._discard()
                if self._first_port is not None or attempt == _PORT_ATTEMPTS:
                    raise KafkaStartError(str(exc)) from None
            except BaseException:
                self._discard()
                raise

    def _make_layout(self) -> None:
        if self._data_parent is not None:
            self._data_parent.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="trio-brod-kafka-", dir=self._data_parent))
        extra = len(self._extra_listeners)
        if self._first_port is not None:
            client_ports = [self._first_port + i for i in range(self._size)]
            other_ports = _free_ports((1 + extra) * self._size)
        else:
            ports = _free_ports((2 + extra) * self._size)
            client_ports, other_ports = ports[: self._size], ports[self._size :]
        # Per node: its controller port, then one port per security listener.
        per_node = 1 + extra
        self._nodes = {}
        for i in range(self._size):
            mine = other_ports[i * per_node : (i + 1) * per_node]
            self._nodes[i + 1] = _Node(
                i + 1,
                client_ports[i],
                mine[0],
                self._dir / f"node-{i + 1}",
                extra_ports=dict(zip(self._extra_listeners, mine[1:], strict=True)),
            )
        (self._dir / "log4j2.xml").write_text(_BROKER_LOG4J2)
        (self._dir / "tools-log4j2.xml").write_text(_TOOLS_LOG4J2)
        security = self._security_settings()
        voters = ",".join(f"{n.node_id}@{_HOST}:{n.controller_port}" for n in self._nodes.values())
        for node in self._nodes.values():
            node.log_dir.mkdir(parents=True)
            client_listeners = ",".join(
                f"{name}://{node.listener_address(name)}"
                for name in ("PLAINTEXT", *self._extra_listeners)
            )
            # Each security listener is named after its protocol; the controller's is plain.
            protocols = ",".join(
                ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
                + [f"{name}:{name}" for name in self._extra_listeners]
            )
            settings = {
                "process.roles": "broker,controller",
                "node.id": str(node.node_id),
                # A static voter set: every node knows the whole quorum from its config, so
                # formatting needs no --standalone/--initial-controllers dance.
                "controller.quorum.voters": voters,
                "listeners": f"{client_listeners},CONTROLLER://{_HOST}:{node.controller_port}",
                "advertised.listeners": client_listeners,
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": protocols,
                "inter.broker.listener.name": "PLAINTEXT",
                "log.dirs": str(node.data_dir),
                **_test_friendly_settings(self._size),
                **security,
                **self._broker_config,
            }
            _write_properties(node.config_path, settings)

    def _security_settings(self) -> dict[str, str]:
        """The settings of the security listeners (none without them); makes the TLS files."""
        assert self._dir is not None
        settings: dict[str, str] = {}
        sasl_listeners = [n for n in self._extra_listeners if n in SASL_LISTENERS]
        if sasl_listeners:
            settings |= sasl_settings(sasl_listeners, self._sasl_users, self._sasl_mechanisms)
        if self._tls:
            try:
                self._tls_files = make_tls_files(self._dir / "tls")
            except RuntimeError as exc:
                raise KafkaStartError(str(exc)) from None
            settings |= tls_settings(self._tls_files)
        return settings

    def _format_storage(self) -> None:
        """Format every node's log directory, all at once (each format is a JVM start)."""
        cluster_id = _random_cluster_id()
        procs: list[tuple[_Node, subprocess.Popen[bytes]]] = []
        try:
            for node in self._nodes.values():
                args = ["format", "--cluster-id", cluster_id, "--config", str(node.config_path)]
                # SCRAM users are metadata records, so they are written with the storage.
                args += scram_format_args(self._sasl_users, self._sasl_mechanisms)
                command = self._java_command(KafkaTool.STORAGE_TOOL, args, quick=True)
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

    def _java_command(self, main_class: str, args: Sequence[str], *, quick: bool) -> list[str]:
        jars = self._require_jars()
        assert self._dir is not None
        return [
            jars.java.executable,
            *_TOOL_JVM_FLAGS,
            *(_QUICK_TOOL_JVM_FLAGS if quick else ()),
            *(self._archive.tool_flags() if self._archive is not None else ()),
            f"-Dlog4j2.configurationFile={self._dir / 'tools-log4j2.xml'}",
            "-cp",
            jars.classpath,
            main_class,
            *args,
        ]

    def _launch(self, node: _Node) -> None:
        jars = self._require_jars()
        assert self._dir is not None
        cds = self._archive.flags_for(node) if self._archive is not None else []
        command = [
            jars.java.executable,
            f"-Xmx{self._heap}",
            f"-Xms{self._heap}",
            *_BROKER_JVM_FLAGS,
            *cds,
            f"-Dlog4j2.configurationFile={self._dir / 'log4j2.xml'}",
            f"-Dkafka.logs.dir={node.log_dir}",
            "-cp",
            jars.classpath,
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

    def stop(self, timeout: float = 30.0, *, graceful: bool | None = None) -> None:
        """Stop every broker and delete the cluster's directory. Safe to call again.

        May be called from another thread while :meth:`start` waits, which then fails with
        :class:`KafkaStartError`.

        Args:
            timeout: Seconds a clean shutdown may take before the JVM is killed.
            graceful: Shut the brokers down cleanly (SIGTERM) rather than kill them
                (SIGKILL). By default only when the data is kept (``keep_data``): a clean
                shutdown of a whole combined-mode cluster takes over 5 s (the Raft leader
                waits 5 s for followers that are shutting down too), and buys nothing when
                the data is deleted next.
        """
        self._stopping.set()
        with self._lock:
            if self._state in ("new", "stopped"):
                self._state = "stopped"
                return
            self._discard(timeout, graceful=self._keep_data if graceful is None else graceful)
            self._state = "stopped"

    def _discard(self, timeout: float = 30.0, *, graceful: bool = False) -> None:
        """Stop all JVMs and delete the directory (unless kept)."""
        running = [n for n in self._nodes.values() if n.process is not None]
        # A JVM writing the class-data archive does so only when it exits by itself.
        dumping = [n for n in running if n.dumping_archive is not None]
        self._terminate(dumping, timeout, graceful=True)
        self._terminate([n for n in running if n not in dumping], timeout, graceful=graceful)
        _running_clusters.discard(self)
        if self._dir is not None and not self._keep_data:
            shutil.rmtree(self._dir, ignore_errors=True)

    def _terminate(self, nodes: Iterable[_Node], timeout: float, *, graceful: bool = True) -> None:
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
            if self._archive is not None:
                self._archive.finish(node, clean)
            node.process = None

    def _check_not_stopping(self) -> None:
        if self._stopping.is_set():
            raise KafkaStartError("interrupted: the KafkaCluster is being stopped")

    # ---- readiness -----------------------------------------------------------------------

    def _check_alive(self, nodes: Iterable[_Node]) -> None:
        for node in nodes:
            if node.process is None:
                continue
            code = node.process.poll()
            if code is None:
                continue
            logs = _tail(node.server_log, 200) + "\n" + _tail(node.console_log, 200)
            if "Address already in use" in logs or "BindException" in logs:
                ports = ", ".join(map(str, node.all_ports))
                raise _PortTaken(
                    f"broker {node.node_id} could not bind its ports ({ports}): they are in use\n"
                    + self._describe_logs(node)
                )
            raise KafkaStartError(
                f"broker {node.node_id} exited with code {code} during start-up\n"
                + self._describe_logs(node)
            )

    def _wait_until_ready(self, deadline: float, target: _Node | None = None) -> None:
        """Wait until every running node answers and every one lists all running nodes.

        ``target`` is the node being (re)started, the one blamed for a time-out; by default
        every node of the cluster is.
        """
        running = [n for n in self._nodes.values() if n.process is not None]
        expected = {n.node_id for n in running}
        answered: set[int] = set()
        last_problem = "no broker answered yet"
        while True:
            self._check_alive(running)
            self._check_not_stopping()
            for node in running:
                if node.node_id in answered:
                    continue
                try:
                    code = api_versions(_HOST, node.port, timeout=2.0)
                except (OSError, DecodeError) as exc:
                    last_problem = f"broker {node.node_id} did not answer ApiVersions: {exc!r}"
                    continue
                if code != 0:
                    last_problem = f"broker {node.node_id} answered ApiVersions with error {code}"
                    continue
                closed = _closed_listeners(node)
                if closed:
                    last_problem = f"broker {node.node_id} does not accept connections on {closed}"
                    continue
                answered.add(node.node_id)
            if answered == expected:
                missing = self._brokers_missing_from_metadata(running, expected)
                if not missing:
                    return
                last_problem = missing
            if time.monotonic() > deadline:
                blamed = [target] if target is not None else running
                raise KafkaStartError(
                    f"Kafka was not ready within the time-out: {last_problem}\n"
                    + "\n".join(self._describe_logs(n) for n in blamed)
                )
            time.sleep(_POLL_INTERVAL)

    def _brokers_missing_from_metadata(self, asked: Iterable[_Node], expected: set[int]) -> str:
        """'' if every node in ``asked`` lists exactly ``expected``, else what is wrong."""
        for node in asked:
            try:
                listed = set(metadata(_HOST, node.port, [], timeout=5.0).brokers)
            except (OSError, DecodeError) as exc:
                return f"broker {node.node_id} did not answer Metadata: {exc!r}"
            if listed != expected:
                return (
                    f"broker {node.node_id} lists brokers {sorted(listed)}, "
                    f"expected {sorted(expected)}"
                )
        return ""

    def _wait_for(self, what: str, check: Callable[[], str], timeout: float) -> None:
        """Poll ``check`` (which returns '' when satisfied, else what is wrong) until done."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_not_stopping()
            problem = check()
            if not problem:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} took over {timeout} s: {problem}")
            time.sleep(_POLL_INTERVAL)

    def _describe_logs(self, node: _Node, lines: int = 40) -> str:
        return (
            f"--- last lines of {node.server_log} ---\n{_tail(node.server_log, lines)}\n"
            f"--- last lines of {node.console_log} ---\n{_tail(node.console_log, 15)}"
        )

    # ---- single brokers ------------------------------------------------------------------

    def stop_broker(self, node_id: int, *, graceful: bool = True, timeout: float = 30.0) -> None:
        """Stop one node; its data is kept for :meth:`start_broker`.

        With ``graceful`` (the default) the broker gets SIGTERM and shuts down cleanly,
        handing its partitions over; otherwise it gets SIGKILL, like a crash. Then, if the
        remaining nodes still form a quorum, waits until each of them no longer lists the
        stopped broker in its metadata (after a crash, that takes the broker session
        time-out: 4 s as configured here).

        Raises:
            ValueError: There is no such node, or it is not running.
            TimeoutError: The others still list the broker after ``timeout`` seconds.
        """
        with self._lock:
            self._require_running()
            node = self._node(node_id)
            if node.process is None:
                raise ValueError(f"broker {node_id} is already stopped")
            self._terminate([node], timeout, graceful=graceful)
            others = [n for n in self._nodes.values() if n.process is not None]
            if len(others) < self._size // 2 + 1:
                return  # no quorum left: nobody can notice, so there is nothing to wait for
            expected = {n.node_id for n in others}
            self._wait_for(
                f"waiting for the cluster to notice that broker {node_id} stopped",
                lambda: self._brokers_missing_from_metadata(others, expected),
                timeout,
            )

    def start_broker(self, node_id: int) -> None:
        """Start a node stopped with :meth:`stop_broker`, on the same ports with its data.

        Returns when it is ready and every running node lists it again.

        Raises:
            ValueError: There is no such node, or it is running.
            KafkaStartError: It died or was not ready within ``startup_timeout``.
        """
        with self._lock:
            self._require_running()
            node = self._node(node_id)
            if node.process is not None:
                raise ValueError(f"broker {node_id} is already running")
            self._launch(node)
            try:
                self._wait_until_ready(time.monotonic() + self._startup_timeout, target=node)
            except BaseException:
                self._terminate([node], 10.0)
                raise

    # ---- information ---------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> list[str]:
        """``"127.0.0.1:port"`` of every broker, stopped ones included."""
        self._require_started()
        return [node.address for node in self._nodes.values()]

    @property
    def broker_ids(self) -> list[int]:
        """The node ids, ``[1 .. brokers]``."""
        return list(range(1, self._size + 1))

    @property
    def is_running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`."""
        return self._state == "running"

    @property
    def running_broker_ids(self) -> list[int]:
        """The ids of the nodes whose JVM is running."""
        return [n.node_id for n in self._nodes.values() if n.is_running()]

    @property
    def kafka_version(self) -> str:
        """The version of Kafka running (known once started)."""
        return self._require_jars().version

    @property
    def directory(self) -> Path:
        """The cluster's directory: ``node-<id>/`` with config, ``data/`` and ``logs/``."""
        self._require_started()
        assert self._dir is not None
        return self._dir

    def broker_address(self, node_id: int) -> str:
        """``"127.0.0.1:port"`` of one broker."""
        self._require_started()
        return self._node(node_id).address

    @property
    def listeners(self) -> list[str]:
        """The client listeners' names: ``"PLAINTEXT"``, then the security listeners asked
        for (``"SASL_PLAINTEXT"``, ``"SSL"``, ``"SASL_SSL"``)."""
        return ["PLAINTEXT", *self._extra_listeners]

    def listener_bootstrap(self, listener: str) -> list[str]:
        """``"127.0.0.1:port"`` of every broker's listener ``listener``, stopped ones included.

        A client bootstrapped there also learns that listener's addresses from metadata.
        ``listener_bootstrap("PLAINTEXT")`` is :attr:`bootstrap_servers`.

        Raises:
            ValueError: The cluster has no such listener.
        """
        self._require_started()
        if listener not in self.listeners:
            raise ValueError(f"no {listener!r} listener; this cluster has {self.listeners}")
        return [node.listener_address(listener) for node in self._nodes.values()]

    @property
    def sasl_users(self) -> dict[str, str]:
        """The SASL users (name to password) of the SASL listeners; empty without them."""
        return dict(self._sasl_users)

    @property
    def sasl_mechanisms(self) -> list[str]:
        """The SASL mechanisms enabled on the SASL listeners; empty without them."""
        if not any(name in SASL_LISTENERS for name in self._extra_listeners):
            return []
        return list(self._sasl_mechanisms)

    @property
    def tls_ca_file(self) -> Path:
        """The PEM file of the CA that signed the brokers' certificates (with ``tls``).

        Raises:
            RuntimeError: The cluster was made without ``tls``, or is not started.
        """
        self._require_started()
        if self._tls_files is None:
            raise RuntimeError("the KafkaCluster has no TLS listeners; make it with tls=True")
        return self._tls_files.ca_cert

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts the cluster's CA (and nothing else) and checks
        the broker's host name: ``ssl.create_default_context(cafile=tls_ca_file)``."""
        return ssl.create_default_context(cafile=self.tls_ca_file)

    def log_path(self, node_id: int) -> Path:
        """The broker's ``server.log``."""
        self._require_started()
        return self._node(node_id).server_log

    def metadata(
        self, topics: list[str] | None = None, *, node_id: int | None = None
    ) -> ClusterMetadata:
        """Ask a broker for metadata, with trio-brod's own minimal request (Metadata v4).

        Args:
            topics: Topics to describe: ``None`` for all, ``[]`` for none. Asking never
                creates a topic.
            node_id: The broker to ask; default the first running one.
        """
        self._require_running()
        if node_id is None:
            running = [n for n in self._nodes.values() if n.process is not None]
            if not running:
                raise ValueError("no broker is running")
            node = running[0]
        else:
            node = self._node(node_id)
        return metadata(_HOST, node.port, topics)

    # ---- tools ---------------------------------------------------------------------------

    def tool_command(
        self,
        main_class: str,
        *args: str,
        bootstrap: bool = True,
        short_lived: bool | None = None,
    ) -> list[str]:
        """A ``java`` command line running one of Kafka's tools, e.g. the console consumer.

        Args:
            main_class: The tool's main class, e.g. :attr:`KafkaTool.CONSOLE_CONSUMER`.
            args: The tool's arguments.
            bootstrap: Put ``--bootstrap-server <all brokers>`` before ``args``. Every
                client tool takes it; turn it off for the others.
            short_lived: Use JVM flags that start faster but run slower (no C2 compiler,
                serial GC). Default: on for the admin tools in ``KafkaTool`` that run a
                second, off for the rest.
        """
        self._require_running()
        if short_lived is None:
            short_lived = main_class in _SHORT_LIVED_TOOLS
        extra = ["--bootstrap-server", ",".join(self.bootstrap_servers)] if bootstrap else []
        return self._java_command(str(main_class), [*extra, *args], quick=short_lived)

    def run_tool(
        self,
        main_class: str,
        *args: str,
        input: str | None = None,
        timeout: float = 120.0,
        check: bool = False,
        bootstrap: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run :meth:`tool_command` to completion and return its output (text).

        Args:
            main_class: The tool's main class, e.g. :attr:`KafkaTool.TOPIC_COMMAND`.
            args: The tool's arguments.
            bootstrap: As for :meth:`tool_command`.
            input: Text for the tool's stdin (e.g. lines for the console producer).
            timeout: Seconds; the tool is killed after that (``subprocess.TimeoutExpired``).
            check: Raise :class:`KafkaToolError` if the tool exits non-zero.
        """
        command = self.tool_command(main_class, *args, bootstrap=bootstrap)
        result = subprocess.run(
            command,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KafkaToolError(
                f"{main_class} {' '.join(args)} failed with exit code {result.returncode}:\n"
                f"{result.stderr.strip() or result.stdout.strip()}",
                result,
            )
        return result

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
        *,
        timeout: float = 60.0,
    ) -> None:
        """Create a topic and wait until every running broker sees a leader for each partition.

        Args:
            name: The topic name.
            partitions: The number of partitions.
            replication_factor: Replicas per partition, at most the number of brokers.
            config: Topic settings, e.g. ``{"cleanup.policy": "compact"}``.
            timeout: Seconds to wait for the tool, then again for the leaders.

        Raises:
            ValueError: A bad argument (checked before asking Kafka).
            KafkaToolError: Kafka refused, e.g. the topic exists.
            TimeoutError: The partitions had no leader within ``timeout`` seconds.
        """
        _check_topic_name(name)
        if not isinstance(partitions, int) or partitions < 1:
            raise ValueError(f"partitions must be a positive int, not {partitions!r}")
        if not isinstance(replication_factor, int) or not 1 <= replication_factor <= self._size:
            raise ValueError(
                f"replication_factor must be between 1 and {self._size} (the number of "
                f"brokers), not {replication_factor!r}"
            )
        args = [
            "--create",
            "--topic",
            name,
            "--partitions",
            str(partitions),
            "--replication-factor",
            str(replication_factor),
        ]
        for key, value in (config or {}).items():
            args += ["--config", f"{key}={value}"]
        self.run_tool(KafkaTool.TOPIC_COMMAND, *args, check=True, timeout=timeout)
        self._wait_for(
            f"waiting for the partitions of topic {name!r} to have leaders",
            lambda: self._topic_problem(name, partitions),
            timeout,
        )

    def delete_topic(self, name: str, *, timeout: float = 60.0) -> None:
        """Delete a topic and wait until no running broker knows it any more.

        Raises:
            KafkaToolError: Kafka refused, e.g. there is no such topic.
            TimeoutError: Some broker still knew the topic after ``timeout`` seconds.
        """
        _check_topic_name(name)
        self.run_tool(
            KafkaTool.TOPIC_COMMAND, "--delete", "--topic", name, check=True, timeout=timeout
        )
        self._wait_for(
            f"waiting for topic {name!r} to be deleted",
            lambda: self._topic_problem(name, None),
            timeout,
        )

    def _topic_problem(self, name: str, partitions: int | None) -> str:
        """What keeps topic ``name`` from being as wanted on every running broker, or ''.

        ``partitions`` None: the topic must be gone; else it must have that many
        partitions, each with a leader.
        """
        for node in self._nodes.values():
            if node.process is None:
                continue
            try:
                topic = metadata(_HOST, node.port, [name]).topics.get(name)
            except (OSError, DecodeError) as exc:
                return f"broker {node.node_id} did not answer Metadata: {exc!r}"
            if topic is None:
                return f"broker {node.node_id} did not describe the topic"
            if partitions is None:
                if topic.error_code != _UNKNOWN_TOPIC_OR_PARTITION:
                    return f"broker {node.node_id} still knows it"
                continue
            if topic.error_code != 0:
                return f"broker {node.node_id} answers error code {topic.error_code}"
            if len(topic.partitions) != partitions:
                return f"broker {node.node_id} knows {len(topic.partitions)} partitions"
            leaderless = sorted(p.partition for p in topic.partitions.values() if p.leader < 0)
            if leaderless:
                return f"broker {node.node_id} sees no leader for partitions {leaderless}"
        return ""

    # ---- helpers -------------------------------------------------------------------------

    def _node(self, node_id: int) -> _Node:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise ValueError(f"no broker {node_id!r}; the brokers are {self.broker_ids}") from None

    def _require_started(self) -> None:
        if self._state not in ("starting", "running"):
            raise RuntimeError(f"the KafkaCluster is {self._state}, not running")

    def _require_running(self) -> None:
        if self._state != "running":
            raise RuntimeError(f"the KafkaCluster is {self._state}, not running")

    def _require_jars(self) -> KafkaJars:
        if self._jars is None:
            raise RuntimeError("the KafkaCluster has not been started")
        return self._jars

    def __repr__(self) -> str:
        nodes = ", ".join(
            f"{n.node_id}@{n.address}{'' if n.is_running() else ' (stopped)'}"
            for n in self._nodes.values()
        )
        return f"<KafkaCluster {self._state} brokers={self._size} [{nodes}]>"


class _PortTaken(KafkaStartError):
    """A broker could not bind a port chosen for it; start() retries with new ports."""


def _check_topic_name(name: str) -> None:
    # Kafka's own rule, checked here so a typo fails fast instead of after a JVM start.
    if (
        not isinstance(name, str)
        or not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", name)
        or name in (".", "..")
    ):
        raise ValueError(f"invalid topic name {name!r}: use 1-249 of [A-Za-z0-9._-]")
