"""A cluster's files and ports: its directory, each node's ports and ``server.properties``.

Everything here happens before any JVM starts. The settings a node gets are the ones the
harness must choose for it (roles, listeners, quorum, directories: :data:`RESERVED_SETTINGS`,
which callers may not override), then :func:`test_friendly_settings`, then the security
listeners' settings, then the caller's ``broker_config``.
"""

from __future__ import annotations

import base64
import socket
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from trio_brod.testing._node import HOST, Node

#: Where in the cluster's directory the brokers' and the tools' log4j2 configurations are.
BROKER_LOG4J2_FILE = "log4j2.xml"
TOOLS_LOG4J2_FILE = "tools-log4j2.xml"

#: Settings the harness derives per node; ``broker_config`` may not override them.
RESERVED_SETTINGS = frozenset(
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


def test_friendly_settings(brokers: int) -> dict[str, str]:
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


def random_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Made here rather than by ``kafka-storage random-uuid``, which costs a JVM start. Like
    Kafka, avoid ids starting with "-", which command lines would take for an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def free_ports(count: int) -> list[int]:
    """Ports the kernel says are free now. All sockets stay open until all are chosen, so
    the ports are distinct; someone else may still take one before the broker binds it,
    which ``KafkaCluster.start()`` handles by retrying."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def write_properties(path: Path, settings: Mapping[str, str]) -> None:
    """Write ``settings`` as a Java properties file."""
    # Java properties: backslash is the escape character; newlines were rejected earlier.
    body = "".join(
        f"{key}={value.replace(chr(92), chr(92) * 2)}\n" for key, value in settings.items()
    )
    path.write_text("# Written by trio_brod.testing\n" + body)


def make_directory(parent: Path | None) -> Path:
    """A fresh directory for one cluster (one start attempt), in ``parent`` or the system's
    temporary directory."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="trio-brod-kafka-", dir=parent))


def make_nodes(
    directory: Path, size: int, first_port: int | None, extra_listeners: Sequence[str]
) -> dict[int, Node]:
    """Nodes ``1 .. size`` with their ports chosen (clients' ports from ``first_port`` on, if
    given) and their homes under ``directory``, by node id. Nothing is written yet."""
    extra = len(extra_listeners)
    if first_port is not None:
        client_ports = [first_port + i for i in range(size)]
        other_ports = free_ports((1 + extra) * size)
    else:
        ports = free_ports((2 + extra) * size)
        client_ports, other_ports = ports[:size], ports[size:]
    # Per node: its controller port, then one port per security listener.
    per_node = 1 + extra
    nodes = {}
    for i in range(size):
        mine = other_ports[i * per_node : (i + 1) * per_node]
        nodes[i + 1] = Node(
            i + 1,
            client_ports[i],
            mine[0],
            directory / f"node-{i + 1}",
            extra_ports=dict(zip(extra_listeners, mine[1:], strict=True)),
        )
    return nodes


def write_configs(
    directory: Path,
    nodes: Mapping[int, Node],
    extra_listeners: Sequence[str],
    security: Mapping[str, str],
    broker_config: Mapping[str, str],
    node_config: Mapping[int, Mapping[str, str]] | None = None,
) -> None:
    """Write the log4j2 configurations and each node's ``server.properties`` (making its log
    directory): the harness's settings, then the test-friendly ones, ``security`` (the
    security listeners' settings), ``broker_config`` and the node's own ``node_config``,
    each overriding the ones before."""
    (directory / BROKER_LOG4J2_FILE).write_text(_BROKER_LOG4J2)
    (directory / TOOLS_LOG4J2_FILE).write_text(_TOOLS_LOG4J2)
    voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in nodes.values())
    for node in nodes.values():
        node.log_dir.mkdir(parents=True)
        client_listeners = ",".join(
            f"{name}://{node.listener_address(name)}" for name in ("PLAINTEXT", *extra_listeners)
        )
        # Each security listener is named after its protocol; the controller's is plain.
        protocols = ",".join(
            ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
            + [f"{name}:{name}" for name in extra_listeners]
        )
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            # A static voter set: every node knows the whole quorum from its config, so
            # formatting needs no --standalone/--initial-controllers dance.
            "controller.quorum.voters": voters,
            "listeners": f"{client_listeners},CONTROLLER://{HOST}:{node.controller_port}",
            "advertised.listeners": client_listeners,
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": protocols,
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(node.data_dir),
            **test_friendly_settings(len(nodes)),
            **security,
            **broker_config,
            **(node_config or {}).get(node.node_id, {}),
        }
        write_properties(node.config_path, settings)
