"""One topic's workers: a nursery with a task per partition (brod's per-topic supervisor).

Producers and consumers of a topic have the same shape, so they share this one class rather
than two copies that drift apart: it counts the topic's partitions, starts a worker per
partition, starts workers for partitions added to the topic later (looked for every
``metadata_max_age``, and whenever a caller asks for a partition it has not seen), finds a
partition's worker, and closes them all. What a worker *does* is its own business: the class
only needs a way to make one and to ask it to stop.

How the nursery ends is the owner's choice, because producers and consumers stop
differently: a producer delivers what it holds first, so closing asks every worker to
:meth:`~Worker.close` and waits for them to return; a consumer has nothing to deliver, so
closing cancels the nursery (``cancel_on_close=True``).

When a worker's task starts is the owner's choice too: a producer's starts with the worker,
while a consumer's waits for the partition's first subscriber (``start_tasks=False``), since
a client often subscribes to only some of a topic's partitions (a group member, to those
assigned to it) and an idle task per other partition would cost for nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import trio

from trio_brod._exceptions import NotFound
from trio_brod.protocol.errors import BrodError

if TYPE_CHECKING:
    from trio_brod._cluster import MetadataCache

__all__ = ["TopicWorkers", "Worker"]


class Worker(Protocol):
    """What :class:`TopicWorkers` needs of a partition's worker."""

    async def run(self) -> None:
        """The worker's task: returns once the worker was closed (and is done).

        Started by :class:`TopicWorkers` as the worker is made, or, with
        ``start_tasks=False``, by the worker itself when it first needs it.
        """

    def close(self) -> None:
        """Ask the worker to finish; its :meth:`run` returns when it has."""


W = TypeVar("W", bound=Worker)


class TopicWorkers(Generic[W]):
    """The workers of one topic, one per partition, in a nursery of their own.

    Args:
        metadata: Where the partition count comes from.
        topic: The topic.
        kind: ``"producer"`` or ``"consumer"``: names the tasks and the errors.
        make: Makes the worker of a partition; called in the topic's nursery context, with
            that nursery (a worker may run connections there).
        auto_create: Whether looking the topic up may create it
            (``allow_topic_auto_creation``).
        cancel_on_close: Cancel the workers when closed, instead of waiting for them to
            finish on their own. Each is closed first (:meth:`~Worker.close`), also when
            the nursery is cancelled from outside: a worker whose task has not started
            yet learns so that it must not start it any more.
        start_tasks: Start each worker's :meth:`~Worker.run` in the nursery as the worker
            is made. Without, a worker starts it there itself when it first needs it (and
            at most once); workers not started then are only closed.
    """

    def __init__(
        self,
        metadata: MetadataCache,
        topic: str,
        kind: str,
        make: Callable[[int, trio.Nursery], W],
        *,
        auto_create: bool,
        cancel_on_close: bool = False,
        start_tasks: bool = True,
    ) -> None:
        self._metadata = metadata
        self.topic = topic
        self.kind = kind
        self._make = make
        self._auto_create = auto_create
        self._cancel_on_close = cancel_on_close
        self._start_tasks = start_tasks
        #: The workers, by partition (those of ``start_tasks=False`` may not run yet).
        self.partitions: dict[int, W] = {}
        #: How many partitions the topic had when last looked at.
        self.partition_count = 0
        self._nursery: trio.Nursery | None = None
        self._closing = False
        # Cancelled by close(): ends the partition watching that run() does while open.
        self._watching = trio.CancelScope()
        #: Set once every worker has ended and the nursery is closed.
        self.finished = trio.Event()

    def __repr__(self) -> str:
        return f"<{self.kind}s of {self.topic} partitions={self.partition_count}>"

    @property
    def closing(self) -> bool:
        """Whether :meth:`close` was called (or the nursery is ending, cancelled)."""
        return self._closing

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The topic's nursery: a worker per partition, until closed.

        Reports itself started once every partition known at start has its worker.

        Raises:
            UnknownTopicOrPartitionError: The topic does not exist (before starting).
        """
        try:
            self.partition_count = await self._metadata.partitions_count(
                self.topic, auto_create=self._auto_create
            )
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for partition in range(self.partition_count):
                    self._start(partition)
                task_status.started()
                try:
                    # The nursery's own task watches the partition count until closed,
                    # rather than a task of its own: one task less per topic.
                    with self._watching:
                        await self._watch_partitions()
                finally:
                    # Also when cancelled from outside: no worker is made from now on, and
                    # with cancel_on_close none starts its task (all are closed before the
                    # nursery may close to new tasks).
                    self._closing = True
                    if self._cancel_on_close:
                        nursery.cancel_scope.cancel()  # first: running workers are cancelled
                        for worker in self.partitions.values():
                            worker.close()
                if not self._cancel_on_close:
                    for worker in self.partitions.values():
                        worker.close()
        finally:
            self.finished.set()

    async def _watch_partitions(self) -> None:
        """Look at the partition count again every ``metadata_max_age``, until closed
        (:meth:`close` cancels it, also while it asks).

        Partitions added to the topic get workers, as the Java client does when its
        metadata shows them. (For producers, keys then map to other partitions: see
        :mod:`trio_brod.producer.partitioners`.)
        """
        while True:
            await trio.sleep(self._metadata.config.metadata_max_age)
            try:
                count = await self._metadata.partitions_count(self.topic, auto_create=False)
            except BrodError:
                continue  # the workers report what matters; try again next time
            self._grow(count)

    def _grow(self, count: int) -> None:
        for partition in range(self.partition_count, count):
            if partition not in self.partitions:
                self._start(partition)
        self.partition_count = max(self.partition_count, count)

    def _start(self, partition: int) -> W:
        assert self._nursery is not None
        worker = self._make(partition, self._nursery)
        self.partitions[partition] = worker
        if self._start_tasks:
            self._nursery.start_soon(
                worker.run, name=f"trio_brod {self.kind} {self.topic}[{partition}]"
            )
        return worker

    async def worker(self, partition: int) -> W:
        """The worker of a partition; partitions added to the topic since start get one.

        Returns without a checkpoint's scheduling point when the worker exists (it still
        raises if the caller was cancelled).

        Raises:
            TypeError: ``partition`` is not an int.
            ValueError: The topic has no such partition.
            NotFound: The workers were stopped.
        """
        if isinstance(partition, bool) or not isinstance(partition, int):
            raise TypeError(f"partition must be an int, not {partition!r}")
        worker = self.partitions.get(partition)
        if worker is not None:
            await trio.lowlevel.checkpoint_if_cancelled()
            return worker
        if self.closing or self._nursery is None:
            raise NotFound(f"the {self.kind}s of {self.topic} were stopped")
        count = await self._metadata.partitions_count(self.topic, auto_create=self._auto_create)
        if not 0 <= partition < count:
            raise ValueError(f"{self.topic} has {count} partitions, no partition {partition}")
        if self.closing:
            raise NotFound(f"the {self.kind}s of {self.topic} were stopped")
        self._grow(count)
        return self.partitions[partition]

    def close(self) -> None:
        """Stop the workers: each is closed (or, with ``cancel_on_close``, cancelled)."""
        self._closing = True
        self._watching.cancel()
