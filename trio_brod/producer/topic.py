"""The producers of one topic: a partition producer per partition, and the partitioner.

The nursery itself (a worker per partition, new partitions picked up, lookup, close) is
:class:`~trio_brod._topic_workers.TopicWorkers`, shared with consumers so that the two
cannot drift apart. What is a producer's own is added here: which partition a message goes
to, and failing everything still buffered when the client cannot wait any longer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from trio_brod._topic_workers import TopicWorkers
from trio_brod.producer.identity import ProducerIdentity
from trio_brod.producer.partitioners import (
    Partitioner,
    PartitionerName,
    checked_partition,
    resolve_partitioner,
)
from trio_brod.producer.receipt import raise_callback_errors
from trio_brod.producer.worker import PartitionProducer

if TYPE_CHECKING:
    from trio_brod._cluster import MetadataCache
    from trio_brod._config import ProducerConfig

__all__ = ["TopicProducer"]


class TopicProducer(TopicWorkers[PartitionProducer]):
    """The producers of one topic, in their own nursery; one worker per partition.

    A :class:`~trio_brod._topic_workers.TopicWorkers` (a subclass, not a wrapper, so that
    ``produce`` finds ``partitions`` and ``partition_count`` with no extra lookup). Closing
    lets every partition producer deliver what it holds; :meth:`abort` does not wait.

    Attributes:
        config: The configuration its partition producers share.
        partitioner: The partitioner of ``config``, made once (sticky ones keep state).
    """

    def __init__(
        self,
        metadata: MetadataCache,
        topic: str,
        config: ProducerConfig,
        identity: ProducerIdentity | None,
    ) -> None:
        def make(partition: int, nursery: trio.Nursery) -> PartitionProducer:
            return PartitionProducer(metadata, topic, partition, config, identity)

        super().__init__(
            metadata,
            topic,
            "producer",
            make,
            auto_create=metadata.config.allow_topic_auto_creation,
        )
        self.config = config
        self.partitioner: Partitioner = resolve_partitioner(config.partitioner)
        self._named_partitioners: dict[str, Partitioner] = {}

    def choose(
        self,
        key: bytes | None,
        value: bytes | None,
        partitioner: PartitionerName | Partitioner | None,
    ) -> int:
        """The partition the partitioner (or ``partitioner``, for this call) picks.

        Raises:
            ConfigError: ``partitioner`` is not a partitioner, or it returned a partition
                the topic does not have.
        """
        chooser = self.partitioner if partitioner is None else self._override(partitioner)
        return checked_partition(chooser, self.topic, self.partition_count, key, value)

    def _override(self, spec: PartitionerName | Partitioner) -> Partitioner:
        """A per-call partitioner; named ones are made once, so sticky ones stay sticky."""
        if isinstance(spec, str):
            chooser = self._named_partitioners.get(spec)
            if chooser is None:
                chooser = self._named_partitioners[spec] = resolve_partitioner(spec)
            return chooser
        if callable(spec) and not isinstance(spec, type):
            return spec
        return resolve_partitioner(spec)  # raises the ConfigError that explains why not

    def close(self) -> None:
        """Close every partition's producer now (produce calls fail from here on); they
        deliver what they hold and end, then the nursery closes."""
        super().close()
        for producer in self.partitions.values():
            producer.close()

    def abort(self, error: BaseException) -> None:
        """Fail everything buffered in every partition, and stop the workers.

        Raises:
            Exception: What receipts' done-callbacks raised, after every receipt failed.
        """
        self.close()
        errors: list[Exception] = []
        for producer in self.partitions.values():
            try:
                producer.abort(error)
            except Exception as exc:
                errors.append(exc)
        raise_callback_errors(errors)
