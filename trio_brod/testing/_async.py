"""The Trio face of :class:`~trio_brod.testing.KafkaCluster`.

Starting and stopping JVMs blocks (subprocesses, polling sockets), so each blocking call runs
in a worker thread with :func:`trio.to_thread.run_sync`; the Trio loop keeps running meanwhile.
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import trio

from trio_brod.testing._cluster import KafkaCluster
from trio_brod.testing._probe import ClusterMetadata

__all__ = ["AsyncKafkaCluster", "kafka_cluster"]

T = TypeVar("T")


async def _in_thread(fn: Callable[[], T]) -> T:
    # abandon_on_cancel: a cancelled caller stops waiting; see AsyncKafkaCluster's docstring.
    return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)


@asynccontextmanager
async def kafka_cluster(brokers: int = 1, **kwargs: Any) -> AsyncIterator[AsyncKafkaCluster]:
    """Run a real Kafka cluster for the duration of an ``async with`` block.

    ::

        async with trio_brod.testing.kafka_cluster(brokers=3) as cluster:
            await cluster.create_topic("orders", partitions=3, replication_factor=3)
            await cluster.stop_broker(2)
            ...
            await cluster.start_broker(2)

    Waiting for the start-up can be cancelled. Leaving the block, however it is left, stops
    every JVM and deletes the cluster's data; that part is shielded from cancellation.

    Args:
        brokers: How many nodes.
        kwargs: Passed to :class:`~trio_brod.testing.KafkaCluster` (``heap``,
            ``broker_config``, ``kafka_version``, ``sasl_users``, ``tls`` ...).
    """
    cluster = KafkaCluster(brokers, **kwargs)
    try:
        # On cancellation the start-up thread is abandoned; stop() below tells it to give up
        # (it checks between every step), waits for it, and kills whatever it had started.
        await trio.to_thread.run_sync(cluster.start, abandon_on_cancel=True)
        yield AsyncKafkaCluster(cluster)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(cluster.stop)


class AsyncKafkaCluster:
    """A running :class:`~trio_brod.testing.KafkaCluster`, with async methods for Trio code.

    :func:`kafka_cluster` returns one. To use a cluster started elsewhere (a pytest session
    fixture, say) from a Trio test, wrap it: ``AsyncKafkaCluster(kafka_cluster3)``; the
    wrapper does not own it and never stops it.

    The async methods run the blocking work in a worker thread. Cancelling one (say with
    :func:`trio.fail_after`) returns at once, but the operation itself goes on in its thread
    until done or timed out (the synchronous methods' time-outs), so the cluster never
    stops half-way through a change; the next lifecycle call waits for it. Stopping the
    cluster makes such leftovers give up.
    """

    def __init__(self, cluster: KafkaCluster) -> None:
        self._cluster = cluster

    @property
    def sync(self) -> KafkaCluster:
        """The underlying synchronous cluster."""
        return self._cluster

    @property
    def bootstrap_servers(self) -> list[str]:
        """``"127.0.0.1:port"`` of every broker, stopped ones included."""
        return self._cluster.bootstrap_servers

    @property
    def broker_ids(self) -> list[int]:
        """The node ids, ``[1 .. brokers]``."""
        return self._cluster.broker_ids

    @property
    def running_broker_ids(self) -> list[int]:
        """The ids of the nodes whose JVM is running."""
        return self._cluster.running_broker_ids

    @property
    def kafka_version(self) -> str:
        """The version of Kafka running."""
        return self._cluster.kafka_version

    @property
    def directory(self) -> Path:
        """The cluster's directory (configs, data, logs)."""
        return self._cluster.directory

    def broker_address(self, node_id: int) -> str:
        """``"127.0.0.1:port"`` of one broker."""
        return self._cluster.broker_address(node_id)

    @property
    def listeners(self) -> list[str]:
        """See :attr:`KafkaCluster.listeners`."""
        return self._cluster.listeners

    def listener_bootstrap(self, listener: str) -> list[str]:
        """See :meth:`KafkaCluster.listener_bootstrap`."""
        return self._cluster.listener_bootstrap(listener)

    @property
    def sasl_users(self) -> dict[str, str]:
        """See :attr:`KafkaCluster.sasl_users`."""
        return self._cluster.sasl_users

    @property
    def sasl_mechanisms(self) -> list[str]:
        """See :attr:`KafkaCluster.sasl_mechanisms`."""
        return self._cluster.sasl_mechanisms

    @property
    def tls_ca_file(self) -> Path:
        """See :attr:`KafkaCluster.tls_ca_file`."""
        return self._cluster.tls_ca_file

    def client_ssl_context(self) -> ssl.SSLContext:
        """See :meth:`KafkaCluster.client_ssl_context`."""
        return self._cluster.client_ssl_context()

    def log_path(self, node_id: int) -> Path:
        """The broker's ``server.log``."""
        return self._cluster.log_path(node_id)

    def tool_command(self, main_class: str, *args: str, bootstrap: bool = True) -> list[str]:
        """See :meth:`KafkaCluster.tool_command`; e.g. for :func:`trio.run_process`."""
        return self._cluster.tool_command(main_class, *args, bootstrap=bootstrap)

    async def stop_broker(self, node_id: int, *, graceful: bool = True) -> None:
        """See :meth:`KafkaCluster.stop_broker`."""
        await _in_thread(partial(self._cluster.stop_broker, node_id, graceful=graceful))

    async def start_broker(self, node_id: int) -> None:
        """See :meth:`KafkaCluster.start_broker`."""
        await _in_thread(partial(self._cluster.start_broker, node_id))

    async def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
    ) -> None:
        """See :meth:`KafkaCluster.create_topic`."""
        await _in_thread(
            partial(self._cluster.create_topic, name, partitions, replication_factor, config)
        )

    async def delete_topic(self, name: str) -> None:
        """See :meth:`KafkaCluster.delete_topic`."""
        await _in_thread(partial(self._cluster.delete_topic, name))

    async def metadata(
        self, topics: list[str] | None = None, *, node_id: int | None = None
    ) -> ClusterMetadata:
        """See :meth:`KafkaCluster.metadata`."""
        return await _in_thread(partial(self._cluster.metadata, topics, node_id=node_id))

    async def run_tool(
        self,
        main_class: str,
        *args: str,
        input: str | None = None,
        bootstrap: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run one of Kafka's tools to completion, as :meth:`KafkaCluster.run_tool` does.

        This one is cancellable (the tool is killed): put it under :func:`trio.fail_after`
        or :func:`trio.move_on_after` for a time-out. It never raises for a non-zero exit;
        look at ``returncode``.
        """
        command = self._cluster.tool_command(main_class, *args, bootstrap=bootstrap)
        result = await trio.run_process(
            command,
            stdin=input.encode() if input is not None else b"",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        return subprocess.CompletedProcess(
            result.args,
            result.returncode,
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )

    def __repr__(self) -> str:
        return f"<AsyncKafkaCluster of {self._cluster!r}>"
