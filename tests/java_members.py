"""Kafka's own Java clients as members of a consumer group, run as subprocesses."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trio_brod.testing import KafkaCluster, KafkaTool


@contextmanager
def java_consumer(
    kafka: KafkaCluster, topic: str, group_id: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Kafka's console consumer as a member of a classic group, for as long as the block.

    Its output goes to ``log``, to read when something goes wrong.
    """
    command = kafka.tool_command(
        KafkaTool.CONSOLE_CONSUMER,
        "--topic",
        topic,
        "--group",
        group_id,
        "--consumer-property",
        "group.protocol=classic",
        "--consumer-property",
        "client.id=java-member",
    )
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
