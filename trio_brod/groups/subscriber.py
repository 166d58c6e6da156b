"""The group subscriber: brod's ``brod_group_subscriber_v2`` in Trio form.

::

    async def handle(assigned: AssignedPartition, message: Record) -> None:
        ...

    async with open_group_subscriber(client, "billing", ["orders"], handle) as group:
        await trio.sleep_forever()

One nursery holds the group member's tasks (:mod:`trio_brod.groups.member`) and one worker
task per assigned partition. A worker subscribes to its partition's consumer from the
group's committed offset (else ``consumer_config.begin_offset``) and calls the handler for
each message in order, inside the partition's cancel scope.

What the handler returns (brod's three outcomes of ``handle_message``):

* ``None`` -- **done**: the message is acknowledged (the prefetch window moves on) and its
  offset is committed at the next commit (every ``offset_commit_interval``, at
  :meth:`GroupSubscriber.commit`, and before the partition is given up);
* ``"ack"`` -- **ack only**: the prefetch window moves on, nothing is marked for commit;
  the application calls ``assigned.ack(offset)`` (or ``await assigned.commit(offset)``) when
  the message is really done;
* ``False`` -- **neither**: the message stays unacknowledged (the consumer stops fetching
  once ``prefetch_count`` messages wait) until ``assigned.ack(offset)`` /
  ``assigned.commit(offset)``, which acknowledge everything up to ``offset`` both ways.

Per-partition state (brod's ``init``/``terminate``): pass ``handler_factory``, called with
the :class:`~trio_brod.AssignedPartition` at each assignment; it returns an async context
manager whose value is the partition's handler, ``async def handle(message)``. It is
entered before the first message and exited when the worker stops (revoked, lost, or the
subscriber closing): put the state's setup and flush there. ``handle`` is then None.

A handler exception stops the subscriber: the member gives its other partitions up (with a
commit), leaves the group, and then the exception is raised from the ``async with``. No
silent retry, no zombie member.
"""

from __future__ import annotations

import dataclasses
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from functools import partial
from typing import Any, Literal, Protocol

import trio

from trio_brod._cluster import ConnectionPool, MetadataCache
from trio_brod._config import ConsumerConfig
from trio_brod._config_groups import GroupConfig
from trio_brod._log import group_log as log
from trio_brod._util import unwrap_single_exception
from trio_brod.consumer.message_set import MessageSet
from trio_brod.consumer.worker import Subscription
from trio_brod.groups._assigned import AssignedPartition
from trio_brod.groups.member import (
    CommittedOffsets,
    GroupHealth,
    GroupMember,
    Listener,
    Topics,
)
from trio_brod.observe import HandlerTimer, handler_timer, traced_handler

__all__ = ["GroupSubscriber", "Outcome", "open_group_subscriber"]

#: What a handler returns: None (done), ``"ack"`` (ack only) or False (neither).
Outcome = Literal["ack", False] | None
#: ``handle(assigned, message)`` (or a message set with ``message_type="message_set"``).
GroupHandler = Callable[[AssignedPartition, Any], Awaitable[Outcome]]
#: A per-partition handler from ``handler_factory``: ``handle(message)``.
PartitionHandler = Callable[[Any], Awaitable[Outcome]]
HandlerFactory = Callable[[AssignedPartition], AbstractAsyncContextManager[PartitionHandler]]


class _Client(Protocol):
    """What a group subscriber needs of a :class:`~trio_brod.Client`."""

    @property
    def pool(self) -> ConnectionPool: ...

    @property
    def metadata(self) -> MetadataCache: ...

    def subscribe(
        self, topic: str, partition: int, **options: Any
    ) -> AbstractAsyncContextManager[Subscription]: ...


class GroupSubscriber:
    """A running group subscriber; made by :func:`open_group_subscriber`.

    Attributes:
        member: The :class:`~trio_brod.GroupMember` underneath.
    """

    def __init__(self, member: GroupMember) -> None:
        self.member = member

    def __repr__(self) -> str:
        return f"<GroupSubscriber {self.member!r}>"

    async def commit(self) -> None:
        """Commit every owned partition's acknowledged offsets now, and wait.

        Raises:
            RebalanceInProgressError, KafkaError: As :meth:`GroupMember.commit`.
        """
        await self.member.commit()

    def assignments(self) -> list[AssignedPartition]:
        """The partitions owned now."""
        return self.member.assignments()

    def health(self) -> GroupHealth:
        """Brod's health check: state, generation, member id, assignment, last heartbeat,
        and each partition's position, committed offset and lag."""
        return self.member.health()

    async def wait_stable(self) -> None:
        """Wait until the member has completed its first rebalance."""
        await self.member.wait_stable()


class _Failure:
    """The first handler error, and what to do about it: ``on_failure``, called once (it
    starts a task that leaves the group and raises the error; no task waits meanwhile)."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.on_failure: Callable[[], object] | None = None

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
            if self.on_failure is not None:
                self.on_failure()

    def then(self, on_failure: Callable[[], object]) -> None:
        """Call ``on_failure`` at the first failure (at once if there was one already)."""
        self.on_failure = on_failure
        if self.error is not None:
            on_failure()


@asynccontextmanager
async def open_group_subscriber(
    client: _Client,
    group_id: str,
    topics: Topics,
    handle: GroupHandler | None,
    *,
    config: GroupConfig | None = None,
    consumer_config: ConsumerConfig | None = None,
    message_type: Literal["message", "message_set"] = "message",
    handler_factory: HandlerFactory | None = None,
    on_assigned: Listener | None = None,
    on_revoked: Listener | None = None,
    on_lost: Listener | None = None,
    committed_offsets: CommittedOffsets | None = None,
    metadata_refresh: float | None = None,
) -> AsyncIterator[GroupSubscriber]:
    """Consume topics as a member of a consumer group, for the block's duration.

    Args:
        client: An open client.
        group_id: The group.
        topics: Topic names, or a compiled regular expression (new matching topics join at
            the next metadata refresh).
        handle: ``async def handle(assigned, message)``; see the module docstring for what
            it returns. None when ``handler_factory`` is given.
        config: The group options (:class:`~trio_brod.GroupConfig`).
        consumer_config: The partitions' subscriptions' options; ``begin_offset`` (default
            ``"earliest"``) where the group has no committed offset.
        message_type: ``"message"`` calls the handler per message, ``"message_set"`` per
            :class:`~trio_brod.MessageSet` (its outcome covers the whole set).
        handler_factory: Per-partition state: ``handler_factory(assigned)`` returns an async
            context manager giving ``async def handle(message)``.
        on_assigned: Rebalance listener: the new partitions (see
            :func:`~trio_brod.open_group_member`).
        on_revoked: Rebalance listener: revoked partitions, after their commit.
        on_lost: Rebalance listener: lost partitions, after their workers were cancelled.
        committed_offsets: With ``offset_commit_policy="consumer_managed"``, the callback
            giving each assigned partition's starting offset (brod's
            ``get_committed_offset``; the next offset to consume, or None).
        metadata_refresh: Seconds between metadata checks (new matching topics, partition
            counts); default: the client's ``metadata_max_age``.

    Raises:
        Exception: The first exception a handler raised, after the member left the group.
        KafkaError: A fatal group error (FencedInstanceIdError...).
    """
    if message_type not in ("message", "message_set"):
        raise ValueError(f"message_type must be 'message' or 'message_set', not {message_type!r}")
    if (handle is None) == (handler_factory is None):
        raise TypeError("give either handle or handler_factory")
    if isinstance(topics, str):
        raise TypeError("topics must be a list of names or a re.Pattern, not a str")
    if not isinstance(topics, re.Pattern):
        topics = list(topics)
    cconfig = consumer_config or ConsumerConfig(begin_offset="earliest")
    options = {f.name: getattr(cconfig, f.name) for f in dataclasses.fields(cconfig)}
    failure = _Failure()

    with unwrap_single_exception():
        async with trio.open_nursery() as nursery:

            async def assigned_hook(partitions: Sequence[AssignedPartition]) -> None:
                for assigned in partitions:
                    nursery.start_soon(
                        _work,
                        client,
                        group_id,
                        assigned,
                        handle,
                        handler_factory,
                        options,
                        message_type,
                        failure,
                        name=f"trio_brod group worker {assigned.topic}[{assigned.partition}]",
                    )
                if on_assigned is not None:
                    await on_assigned(partitions)

            member = GroupMember(
                client.pool,
                client.metadata,
                group_id,
                topics,
                config or GroupConfig(),
                on_assigned=assigned_hook,
                on_revoked=on_revoked,
                on_lost=on_lost,
                committed_offsets=committed_offsets,
                metadata_refresh=metadata_refresh,
                iterate=False,
            )
            await nursery.start(member.run, name=f"trio_brod group member {group_id}")

            async def leave_and_raise() -> None:
                # Not in the failed worker: leaving waits for every worker to finish.
                with trio.CancelScope(shield=True):
                    await member.leave("a handler raised an exception")
                assert failure.error is not None
                raise failure.error

            def on_failure() -> None:
                # Once the subscriber is closing (its workers cancelled), a handler's error
                # is not raised: the group has been left already. It is logged.
                if not nursery.cancel_scope.cancel_called:
                    nursery.start_soon(leave_and_raise)
                else:
                    log.warning(
                        "%s: a handler raised while the subscriber was closing: %r",
                        group_id,
                        failure.error,
                    )

            failure.then(on_failure)
            try:
                yield GroupSubscriber(member)
            finally:
                with trio.CancelScope(shield=True):
                    await member.leave()
                nursery.cancel_scope.cancel()


#: The timers of the partitions being handled, when observed (trio_brod.observe): _receive
#: finishes one message set and starts the next.
_timers: weakref.WeakKeyDictionary[AssignedPartition, HandlerTimer] = weakref.WeakKeyDictionary()


async def _work(
    client: _Client,
    group_id: str,
    assigned: AssignedPartition,
    handle: GroupHandler | None,
    handler_factory: HandlerFactory | None,
    options: Mapping[str, Any],
    message_type: str,
    failure: _Failure,
) -> None:
    """One partition's worker, inside the partition's cancel scope."""
    with assigned:
        partition_options = dict(options)
        if assigned.begin_offset is not None:
            partition_options["begin_offset"] = assigned.begin_offset
        try:
            async with client.subscribe(
                assigned.topic, assigned.partition, **partition_options
            ) as subscription:
                assigned.on_ack = subscription.ack

                def observed(handler: PartitionHandler) -> PartitionHandler:
                    # Timed and traced only when observed (see trio_brod.observe).
                    timer = handler_timer(
                        assigned.topic, assigned.partition, group_id, subscription.hooks
                    )
                    if timer is not None:
                        _timers[assigned] = timer
                    return traced_handler(
                        handler,
                        assigned.topic,
                        assigned.partition,
                        group_id,
                        message_type,
                        subscription.config.trace_context,
                    )

                if handler_factory is not None:
                    async with handler_factory(assigned) as partition_handler:
                        handler = observed(partition_handler)
                        await _consume(assigned, subscription, handler, message_type)
                else:
                    assert handle is not None
                    # A partial, not a wrapper coroutine: one frame less per message.
                    bound = partial(handle, assigned)
                    await _consume(assigned, subscription, observed(bound), message_type)
        except Exception as exc:
            timer = _timers.get(assigned)
            if timer is not None:
                timer.finish(exc)
            failure.fail(exc)
        finally:
            assigned.on_ack = None
            timer = _timers.pop(assigned, None)
            if timer is not None:
                timer.finish()


async def _consume(
    assigned: AssignedPartition,
    subscription: Subscription,
    handle: PartitionHandler,
    message_type: str,
) -> None:
    # The set is dropped before the wait for the next, so that two are never kept alive.
    step = _handle_set if message_type == "message_set" else _handle_messages
    while not assigned.revoked:
        message_set = await _receive(assigned, subscription)
        if message_set is None:
            return  # revoked while waiting, or the subscription ended
        assigned.high_watermark = message_set.high_watermark
        if not await step(assigned, subscription, handle, message_set):
            return
        del message_set


async def _handle_set(
    assigned: AssignedPartition,
    subscription: Subscription,
    handle: PartitionHandler,
    message_set: MessageSet,
) -> bool:
    outcome = await handle(message_set)
    offset = message_set.high_offset
    if outcome is None:
        assigned.ack(offset)
    elif outcome == "ack":
        subscription.ack(offset)
    elif outcome is not False:
        raise _bad_outcome(outcome)
    return True


async def _handle_messages(
    assigned: AssignedPartition,
    subscription: Subscription,
    handle: PartitionHandler,
    message_set: MessageSet,
) -> bool:
    """Call the handler for each message of the set, in order.

    The hot path of the default ``message_type``, so it does per message only what must be
    per message: the handler call, and for a done message moving :attr:`position` (which a
    commit running meanwhile reads). The prefetch window is acknowledged once, when the set
    is left: it counts whole sets, so acknowledging it message by message would buy nothing.
    """
    window = -1  # the highest offset the window may be acknowledged to
    complete = True
    try:
        for message in message_set:
            outcome = await handle(message)
            if outcome is None:
                offset = message.offset
                window = offset
                # Inlined AssignedPartition.ack, minus the window: monotonic, since a
                # handler may have acknowledged further ahead itself.
                position = assigned.position
                if position is None or offset >= position:
                    assigned.position = offset + 1
            else:
                complete = False
                if outcome == "ack":
                    window = message.offset
                elif outcome is not False:
                    raise _bad_outcome(outcome)
            if assigned.revoked:
                return False
        if complete:
            # Both ways at once, to the set's end: compaction can leave offsets without
            # messages there.
            window = -1
            assigned.ack(message_set.high_offset)
    finally:
        if window >= 0:
            subscription.ack(window)
    return True


async def _receive(assigned: AssignedPartition, subscription: Subscription) -> MessageSet | None:
    timer = _timers.get(assigned)
    if timer is not None:
        timer.finish()  # the previous message set is handled
    received: MessageSet | None = None
    with assigned.interruptible(), suppress(StopAsyncIteration):
        received = await subscription.receive()
    if timer is not None and received is not None:
        timer.start(len(received))
    return received


def _bad_outcome(outcome: object) -> TypeError:
    return TypeError(f"a group handler returns None, 'ack' or False, not {outcome!r}")
