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

This module is the cluster object: its options, its lifecycle and the operations tests use.
The parts it composes are its neighbours: ``_layout`` (directory, ports, configs), ``_jvm``
(tools and broker processes), ``_readiness`` (waiting until brokers are usable), ``_node``
(one node's data) and ``_errors``.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from types import TracebackType

from trio_brod.testing._errors import KafkaStartError, KafkaToolError, PortTakenError
from trio_brod.testing._jars import KafkaJars, resolve_kafka_jars
from trio_brod.testing._jvm import (
    SHORT_LIVED_TOOLS,
    ClassDataArchive,
    KafkaTool,
    Launcher,
    stop_nodes,
)
from trio_brod.testing._layout import (
    RESERVED_SETTINGS,
    make_directory,
    make_nodes,
    random_cluster_id,
    write_configs,
)
from trio_brod.testing._node import HOST, Node
from trio_brod.testing._probe import ClusterMetadata, metadata
from trio_brod.testing._readiness import (
    brokers_missing_from_metadata,
    check_not_stopping,
    topic_problem,
    wait_for,
    wait_until_ready,
)
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

__all__ = ["KafkaCluster"]

# Starting the whole cluster is retried this often when another process grabbed one of the
# ports between our choosing it and the broker binding it.
_PORT_ATTEMPTS = 3


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() not in {"0", "false", "no", "off"}


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
        node_config: Extra settings of single nodes, by node id, over ``broker_config``
            (e.g. ``{1: {"broker.rack": "a"}, 2: {"broker.rack": "b"}}``); the same rules.
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
        node_config: Mapping[int, Mapping[str, str]] | None = None,
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
        per_node = {node: dict(settings) for node, settings in (node_config or {}).items()}
        for node in per_node:
            if not isinstance(node, int) or not 1 <= node <= brokers:
                raise ValueError(f"node_config: no node {node!r} (nodes are 1..{brokers})")
        checked = [*extra.items(), *(i for n in per_node.values() for i in n.items())]
        for key, value in checked:
            if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", key):
                raise ValueError(f"broker_config key {key!r} is not a Kafka setting name")
            if key in RESERVED_SETTINGS:
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
        self._node_config = per_node
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
        self._archive: ClassDataArchive | None = None
        self._dir: Path | None = None
        self._launcher: Launcher | None = None
        self._nodes: dict[int, Node] = {}

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
            self._archive = ClassDataArchive.for_jars(jars)
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            check_not_stopping(self._stopping)
            _running_clusters.add(self)
            launcher = self._make_layout(jars)
            try:
                launcher.format_storage(
                    self._nodes,
                    random_cluster_id(),
                    # SCRAM users are metadata records, so they are written with the storage.
                    scram_format_args(self._sasl_users, self._sasl_mechanisms),
                )
                for node in self._nodes.values():
                    check_not_stopping(self._stopping)
                    launcher.launch(node)
                wait_until_ready(
                    self._nodes.values(),
                    time.monotonic() + self._startup_timeout,
                    self._stopping,
                )
                return
            except PortTakenError as exc:
                self._discard()
                if self._first_port is not None or attempt == _PORT_ATTEMPTS:
                    raise KafkaStartError(str(exc)) from None
            except BaseException:
                self._discard()
                raise

    def _make_layout(self, jars: KafkaJars) -> Launcher:
        """A fresh directory with the nodes' configs, for one start attempt; returns the
        launcher of its JVMs."""
        directory = self._dir = make_directory(self._data_parent)
        self._nodes = make_nodes(directory, self._size, self._first_port, self._extra_listeners)
        security = self._security_settings()
        write_configs(
            directory,
            self._nodes,
            self._extra_listeners,
            security,
            self._broker_config,
            self._node_config,
        )
        self._launcher = Launcher(jars, directory, self._heap, self._archive)
        return self._launcher

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
        stop_nodes(dumping, timeout, self._archive, graceful=True)
        stop_nodes(
            [n for n in running if n not in dumping], timeout, self._archive, graceful=graceful
        )
        _running_clusters.discard(self)
        if self._dir is not None and not self._keep_data:
            shutil.rmtree(self._dir, ignore_errors=True)

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
            stop_nodes([node], timeout, self._archive, graceful=graceful)
            others = [n for n in self._nodes.values() if n.process is not None]
            if len(others) < self._size // 2 + 1:
                return  # no quorum left: nobody can notice, so there is nothing to wait for
            expected = {n.node_id for n in others}
            wait_for(
                f"waiting for the cluster to notice that broker {node_id} stopped",
                lambda: brokers_missing_from_metadata(others, expected),
                timeout,
                self._stopping,
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
            self._require_launcher().launch(node)
            try:
                wait_until_ready(
                    self._nodes.values(),
                    time.monotonic() + self._startup_timeout,
                    self._stopping,
                    target=node,
                )
            except BaseException:
                stop_nodes([node], 10.0, self._archive)
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
        return metadata(HOST, node.port, topics)

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
            short_lived = main_class in SHORT_LIVED_TOOLS
        extra = ["--bootstrap-server", ",".join(self.bootstrap_servers)] if bootstrap else []
        return self._require_launcher().tool_command(
            str(main_class), [*extra, *args], quick=short_lived
        )

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
        wait_for(
            f"waiting for the partitions of topic {name!r} to have leaders",
            lambda: topic_problem(self._nodes.values(), name, partitions),
            timeout,
            self._stopping,
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
        wait_for(
            f"waiting for topic {name!r} to be deleted",
            lambda: topic_problem(self._nodes.values(), name, None),
            timeout,
            self._stopping,
        )

    # ---- helpers -------------------------------------------------------------------------

    def _node(self, node_id: int) -> Node:
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

    def _require_launcher(self) -> Launcher:
        if self._launcher is None:
            raise RuntimeError("the KafkaCluster has not been started")
        return self._launcher

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


def _check_topic_name(name: str) -> None:
    # Kafka's own rule, checked here so a typo fails fast instead of after a JVM start.
    if (
        not isinstance(name, str)
        or not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", name)
        or name in (".", "..")
    ):
        raise ValueError(f"invalid topic name {name!r}: use 1-249 of [A-Za-z0-9._-]")
