"""Consumers: a worker per partition (its task from the first subscriber on), subscriptions
with a prefetch window and acks.

This is ``brod_consumer`` in Trio form. Starting a topic's consumers
(:meth:`Client.start_consumer <trio_brod.Client.start_consumer>`) starts a per-topic nursery
inside the client's consumers nursery, with one worker per partition. A worker is idle until
someone subscribes to its partition (its task starts with the first subscriber); then it
fetches from the partition's leader and delivers :class:`~trio_brod.MessageSet` objects to
the subscriber::

    async with client.subscribe("orders", 0, begin_offset="earliest") as subscription:
        async for message_set in subscription:
            for message in message_set:
                handle(message)
            subscription.ack(message_set.high_offset)

The prefetch window
    The subscriber acknowledges what it has processed. At any time, the messages delivered
    and not yet acknowledged number at most ``prefetch_count`` and take at most
    ``prefetch_bytes`` bytes (of fetched batches, pro rata for a batch split at the window's
    edge); one message larger than the whole window is delivered alone. Besides that window
    the worker holds at most one fetch response it has not delivered yet: it fetches the next
    response while the subscriber works on the last one, then waits for acks. A slow
    subscriber slows the fetching; it never makes the worker buffer without bound.

Offsets
    A subscription starts at ``begin_offset``; a later subscription to the same partition
    without a ``begin_offset`` continues after the last acknowledged offset, or where the
    previous one started if it acknowledged nothing: its ``begin_offset`` as resolved, or
    resolved anew if it left before it was (see
    :meth:`trio_brod.lowlevel.PartitionConsumer.subscribe`).
    A leader move or a lost connection never loses the position: the worker fetches again
    from the exact next offset.

The package
    ============================  ==========================================================
    ``_fetch``                    sans-IO: Fetch requests, reading answers (aborted
                                  transactions, control batches, cut batches), runs of records
    ``_window``                   sans-IO: the prefetch window, acks, where a later
                                  subscriber continues
    ``message_set``               :class:`~trio_brod.MessageSet`, what a subscriber receives
    ``worker``                    :class:`~trio_brod.lowlevel.PartitionConsumer` (the I/O around the
                                  two cores) and :class:`~trio_brod.Subscription`
    ``topic``                     a topic's workers and their shared fetch connections
    ``subscriber``                :func:`~trio_brod.open_topic_subscriber`: one handler over
                                  every partition of a topic
    ``fold``                      :meth:`Client.fold <trio_brod.Client.fold>`: fold a
                                  function over a partition with one-off fetches
    ============================  ==========================================================
"""

from __future__ import annotations

from trio_brod.consumer.fold import FoldResult, FoldStop
from trio_brod.consumer.message_set import MessageSet
from trio_brod.consumer.subscriber import (
    MessageHandler,
    MessageSetHandler,
    TopicSubscriber,
    open_topic_subscriber,
)
from trio_brod.consumer.topic import TopicConsumer
from trio_brod.consumer.worker import PartitionConsumer, Subscription

__all__ = [
    "FoldResult",
    "FoldStop",
    "MessageHandler",
    "MessageSet",
    "MessageSetHandler",
    "PartitionConsumer",
    "Subscription",
    "TopicConsumer",
    "TopicSubscriber",
    "open_topic_subscriber",
]
