"""Is the cluster ready yet? Polling brokers until they answer, list each other, know a topic.

Kafka says "started" well before clients can use it: a broker must answer ApiVersions, open
all its listeners, and be registered (and unfenced) with the controllers, which every broker's
metadata must then show. These checks ask the brokers with the harness's own minimal requests
(``_probe``), every :data:`POLL_INTERVAL` seconds, and explain what is still missing when
they give up. A JVM that dies meanwhile is reported at once, with the end of its logs.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable

from trio_brod.protocol.errors import DecodeError, UnknownTopicOrPartitionError
from trio_brod.testing._errors import KafkaStartError, PortTakenError
from trio_brod.testing._node import HOST, Node, describe_logs, tail
from trio_brod.testing._probe import api_versions, metadata

#: How often readiness loops poll. The probes are cheap (one loopback connection each).
POLL_INTERVAL = 0.05


def check_not_stopping(stopping: threading.Event) -> None:
    """Raise KafkaStartError if the cluster is being stopped (``stopping`` is set)."""
    if stopping.is_set():
        raise KafkaStartError("interrupted: the KafkaCluster is being stopped")


def closed_listeners(node: Node) -> list[str]:
    """The node's security listeners that do not accept a TCP connection (yet).

    The broker opens all its listeners together, after the PLAINTEXT one answers
    ApiVersions or about then; this makes sure before tests use them.
    """
    closed = []
    for name, port in node.extra_ports.items():
        try:
            with socket.create_connection((HOST, port), timeout=2.0):
                pass
        except OSError:
            closed.append(name)
    return closed


def check_alive(nodes: Iterable[Node]) -> None:
    """Raise KafkaStartError (PortTakenError if it could not bind its ports) for the first
    node whose JVM has exited."""
    for node in nodes:
        if node.process is None:
            continue
        code = node.process.poll()
        if code is None:
            continue
        logs = tail(node.server_log, 200) + "\n" + tail(node.console_log, 200)
        if "Address already in use" in logs or "BindException" in logs:
            ports = ", ".join(map(str, node.all_ports))
            raise PortTakenError(
                f"broker {node.node_id} could not bind its ports ({ports}): they are in use\n"
                + describe_logs(node)
            )
        raise KafkaStartError(
            f"broker {node.node_id} exited with code {code} during start-up\n" + describe_logs(node)
        )


def wait_until_ready(
    nodes: Iterable[Node],
    deadline: float,
    stopping: threading.Event,
    target: Node | None = None,
) -> None:
    """Wait until every running node of ``nodes`` answers and every one lists all of them.

    ``target`` is the node being (re)started, the one blamed for a time-out; by default
    every node of the cluster is.
    """
    running = [n for n in nodes if n.process is not None]
    expected = {n.node_id for n in running}
    answered: set[int] = set()
    last_problem = "no broker answered yet"
    while True:
        check_alive(running)
        check_not_stopping(stopping)
        for node in running:
            if node.node_id in answered:
                continue
            try:
                code = api_versions(HOST, node.port, timeout=2.0)
            except (OSError, DecodeError) as exc:
                last_problem = f"broker {node.node_id} did not answer ApiVersions: {exc!r}"
                continue
            if code != 0:
                last_problem = f"broker {node.node_id} answered ApiVersions with error {code}"
                continue
            closed = closed_listeners(node)
            if closed:
                last_problem = f"broker {node.node_id} does not accept connections on {closed}"
                continue
            answered.add(node.node_id)
        if answered == expected:
            missing = brokers_missing_from_metadata(running, expected)
            if not missing:
                return
            last_problem = missing
        if time.monotonic() > deadline:
            blamed = [target] if target is not None else running
            raise KafkaStartError(
                f"Kafka was not ready within the time-out: {last_problem}\n"
                + "\n".join(describe_logs(n) for n in blamed)
            )
        time.sleep(POLL_INTERVAL)


def brokers_missing_from_metadata(asked: Iterable[Node], expected: set[int]) -> str:
    """'' if every node in ``asked`` lists exactly ``expected``, else what is wrong."""
    for node in asked:
        try:
            listed = set(metadata(HOST, node.port, [], timeout=5.0).brokers)
        except (OSError, DecodeError) as exc:
            return f"broker {node.node_id} did not answer Metadata: {exc!r}"
        if listed != expected:
            return (
                f"broker {node.node_id} lists brokers {sorted(listed)}, expected {sorted(expected)}"
            )
    return ""


def wait_for(
    what: str, check: Callable[[], str], timeout: float, stopping: threading.Event
) -> None:
    """Poll ``check`` (which returns '' when satisfied, else what is wrong) until done."""
    deadline = time.monotonic() + timeout
    while True:
        check_not_stopping(stopping)
        problem = check()
        if not problem:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} took over {timeout} s: {problem}")
        time.sleep(POLL_INTERVAL)


def topic_problem(nodes: Iterable[Node], name: str, partitions: int | None) -> str:
    """What keeps topic ``name`` from being as wanted on every running node of ``nodes``, or
    ''.

    ``partitions`` None: the topic must be gone; else it must have that many
    partitions, each with a leader.
    """
    for node in nodes:
        if node.process is None:
            continue
        try:
            topic = metadata(HOST, node.port, [name]).topics.get(name)
        except (OSError, DecodeError) as exc:
            return f"broker {node.node_id} did not answer Metadata: {exc!r}"
        if topic is None:
            return f"broker {node.node_id} did not describe the topic"
        if partitions is None:
            if topic.error_code != UnknownTopicOrPartitionError.code:
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
