"""Producers: a worker task per partition, batching, retries, idempotence.

This is ``brod_producer`` in Trio form. Starting a producer for a topic
(:meth:`Client.start_producer <trio_brod.Client.start_producer>`) starts a per-topic nursery
inside the client's producers nursery, and in it one worker task per partition::

    client nursery
    └── producers nursery
        └── "orders" nursery                      (topic.TopicProducer)
            ├── partition 0 worker ◄── bounded memory channel ◄── produce(..., partition=0)
            ├── partition 1 worker ◄── ...          (worker.PartitionProducer, _intake)
            └── ...

``produce`` puts the message into the partition's channel and returns a
:class:`~trio_brod.DeliveryReceipt` at once; when the channel is full
(``partition_buffer_limit`` calls or ``partition_buffer_bytes`` of messages waiting), it
waits: that is the back-pressure.

The modules, by job:

* :mod:`~trio_brod.producer.message`: :class:`Message` and the checks every message passes
  when it is accepted;
* :mod:`~trio_brod.producer.partitioners`: which partition a message goes to;
* :mod:`~trio_brod.producer.topic`: a topic's partition producers and its partitioner;
* :mod:`~trio_brod.producer.worker`: one partition's worker (batching, rounds of retries),
  with its way in in ``_intake``;
* :mod:`~trio_brod.producer.identity`: the producer id, epochs and sequence numbers;
* ``_buffer``: the sans-IO core, the ordered queues of calls and batches;
* :mod:`~trio_brod.producer.receipt`: the :class:`DeliveryReceipt` a caller gets back.
"""

from __future__ import annotations

from trio_brod.producer.identity import ProducerIdentity
from trio_brod.producer.message import Header, Message
from trio_brod.producer.partitioners import Partitioner, PartitionerName
from trio_brod.producer.receipt import DeliveryReceipt
from trio_brod.producer.topic import TopicProducer
from trio_brod.producer.worker import PartitionProducer

__all__ = [
    "DeliveryReceipt",
    "Header",
    "Message",
    "PartitionProducer",
    "Partitioner",
    "PartitionerName",
    "ProducerIdentity",
    "TopicProducer",
]
