"""One node of a harness cluster: where it listens, where it keeps its files, its JVM.

A :class:`Node` is plain data that the other parts fill in and read: ``_layout`` chooses its
ports and writes its config, ``_jvm`` starts and stops its process, ``_readiness`` asks it
whether it is up, and ``_cluster`` (``KafkaCluster``) keeps the nodes.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

#: Every node listens on loopback only.
HOST = "127.0.0.1"


@dataclass
class Node:
    """One combined broker+controller: its ports, its directory and its JVM."""

    node_id: int
    port: int
    controller_port: int
    home: Path
    # The security listeners' ports, by listener name ("SASL_PLAINTEXT", "SSL", "SASL_SSL").
    extra_ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    # Where this JVM dumps a class-data archive at exit (see _jvm.ClassDataArchive), if it does.
    dumping_archive: Path | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def all_ports(self) -> list[int]:
        return [self.port, self.controller_port, *self.extra_ports.values()]

    def listener_address(self, listener: str) -> str:
        port = self.port if listener == "PLAINTEXT" else self.extra_ports[listener]
        return f"{HOST}:{port}"

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


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of the text file ``path``, or a note that it is missing or
    empty."""
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


def describe_logs(node: Node, lines: int = 40) -> str:
    """The end of the node's server log and console log, for error messages."""
    return (
        f"--- last lines of {node.server_log} ---\n{tail(node.server_log, lines)}\n"
        f"--- last lines of {node.console_log} ---\n{tail(node.console_log, 15)}"
    )
