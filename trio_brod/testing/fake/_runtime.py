"""What every request handler of the fake Kafka shares: the cluster, the API table, a context.

An API is a :class:`Api` entry (key, version range, handler) in :attr:`FakeCluster.apis`:
ApiVersions advertises exactly these entries, and the brokers answer anything else with
UNSUPPORTED_VERSION. The group and transaction coordinators plug in the same way, as modules
with an ``install(cluster)`` function (called by ``fake_kafka`` beside ``install_admin_apis``
and ``install_data_apis``) that registers their APIs, keeps their own state beside the
:class:`ClusterModel`, sets the transaction hooks below, and runs its timers (session and
transaction timeouts) as tasks in :attr:`FakeCluster.nursery`, on Trio's clock.

A handler is an ``async def`` that never awaits Trio itself: when it must wait (a long-poll
Fetch, a JoinGroup until the rebalance completes), it awaits :func:`wait_for`, which hands
the wait to whoever drives the handler (:func:`start_handler`, then :func:`finish_handler`).
So a broker can start answering a request inside the client's own write, as an in-process
connection does (see :mod:`._server`), and only a request that waits needs a task: the
driver's waiting is done in the task that finishes it, never in the client's.
"""

from __future__ import annotations

import math
import types
import zlib
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any

import trio

from trio_brod.protocol import Message
from trio_brod.testing.fake._faults import Control, Faults
from trio_brod.testing.fake._model import ClusterModel
from trio_brod.testing.fake._sessions import FetchSessions

__all__ = [
    "Api",
    "CloseConnection",
    "FakeCluster",
    "Handler",
    "HandlerRun",
    "RequestContext",
    "Wait",
    "finish_handler",
    "run_handler",
    "start_handler",
    "wait_for",
]

#: A handler's coroutine: it returns the response, or None for no response at all (Produce
#: with acks=0), and waits only through :func:`wait_for`.
HandlerRun = Coroutine[Any, Any, Message | None]
#: A handler gets the context and the decoded request.
Handler = Callable[["RequestContext", Any], HandlerRun]


class Wait:
    """What a handler yields to its driver to wait: until ``event`` is set, or the clock
    reaches ``deadline``."""

    __slots__ = ("deadline", "event")

    def __init__(self, event: trio.Event, deadline: float) -> None:
        self.event = event
        self.deadline = deadline


@types.coroutine
def wait_for(event: trio.Event, deadline: float = math.inf) -> Generator[Wait, None, None]:
    """Inside a handler: sleep until ``event`` is set or the clock reaches ``deadline``.

    The only way a handler waits (see the module docstring). The driver raises
    :class:`trio.Cancelled` here, as Trio would, if it is cancelled while waiting.
    """
    if not event.is_set() and trio.current_time() < deadline:
        yield Wait(event, deadline)


def _stepped(coro: HandlerRun, sent: BaseException | None) -> Wait:
    """Resume ``coro`` (with ``sent`` raised where it waits, if any) until it waits again.

    Raises:
        StopIteration: It returned (its answer is the exception's ``value``).
    """
    waiting = coro.send(None) if sent is None else coro.throw(sent)
    if type(waiting) is not Wait:
        coro.close()
        raise RuntimeError(
            f"a fake Kafka handler awaited {waiting!r}: handlers wait only through wait_for"
        )
    return waiting


def start_handler(coro: HandlerRun) -> tuple[Message | None, Wait | None]:
    """Run a handler until it answers or waits, in the calling task (any task: it does no
    I/O and takes no lock): ``(answer, None)``, or ``(None, wait)`` for
    :func:`finish_handler` to go on from, in a task that may wait."""
    try:
        return None, _stepped(coro, None)
    except StopIteration as done:
        answer: Message | None = done.value
        return answer, None


async def finish_handler(coro: HandlerRun, waiting: Wait) -> Message | None:
    """Do a started handler's waiting in this task, and return its answer."""
    while True:
        sent: BaseException | None = None
        try:
            with trio.move_on_at(waiting.deadline):
                await waiting.event.wait()
        except BaseException as exc:  # cancelled: the handler sees it where it waits
            sent = exc
        try:
            waiting = _stepped(coro, sent)
        except StopIteration as done:
            answer: Message | None = done.value
            return answer


async def run_handler(coro: HandlerRun) -> Message | None:
    """Run a handler to its answer in this task."""
    answer, waiting = start_handler(coro)
    if waiting is None:
        return answer
    return await finish_handler(coro, waiting)


class CloseConnection(Exception):
    """Raised by a handler to close the request's connection instead of answering (as Kafka
    does after a failed acks=0 produce: the client has no other way to learn of it).
    """


@dataclass(frozen=True)
class Api:
    """One API the fake implements, and the versions it implements it in."""

    key: int
    min_version: int
    max_version: int
    handler: Handler
    #: The handler answers an injected error per topic/partition
    #: (:meth:`RequestContext.injected`); else a topic-filtered Fail fails the whole request.
    partial_failures: bool = False


@dataclass
class FakeCluster:
    """The state shared by the fake brokers: model, faults, addresses, APIs, wake-ups."""

    model: ClusterModel
    faults: Faults = field(default_factory=Faults)
    apis: dict[int, Api] = field(default_factory=dict)
    #: node id -> (host, port) of each broker's listener.
    addresses: dict[int, tuple[str, int]] = field(default_factory=dict)
    #: ``auto.create.topics.enable``: Metadata (when the client allows) creates topics.
    auto_create_topics: bool = True
    # Hooks for the transaction coordinator (None until it plugs in):
    #: (transactional id, topic, partition, producer id, epoch) -> error code (0: the
    #: transactional batch may be written).
    verify_transactional: Callable[[str, str, int, int, int], int] | None = None
    #: (topic, partition, fetch offset, upto) -> (producer id, first offset) of the aborted
    #: transactions a read_committed fetch must be told about.
    aborted_transactions: Callable[[str, int, int, int], list[tuple[int, int]]] | None = None
    #: InitProducerId with a transactional id.
    init_transactional_producer: Handler | None = None
    #: group id -> the partitions whose offsets an open transaction holds (OffsetFetch with
    #: ``require_stable`` answers them UNSTABLE_OFFSET_COMMIT).
    unstable_offsets: Callable[[str], set[tuple[str, int]]] | None = None
    #: Where coordinators run their timers: the fake's own nursery, while it runs.
    nursery: trio.Nursery | None = None
    #: Each broker's incremental fetch sessions (lost when it stops).
    fetch_sessions: dict[int, FetchSessions] = field(default_factory=dict)
    #: Coordinators a test moved (key -> node id), while that broker runs.
    coordinator_moves: dict[str, int] = field(default_factory=dict)
    _changed: trio.Event = field(default_factory=trio.Event)

    def register(self, api: Api) -> None:
        """Add (or replace) an API."""
        self.apis[api.key] = api

    def data_changed(self) -> None:
        """Wake every long poll (records were appended, leaders moved, topics changed)."""
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        """Sleep until the next :meth:`data_changed` (in a task; a handler awaits
        ``wait_for(cluster.next_change)``)."""
        await self._changed.wait()

    @property
    def next_change(self) -> trio.Event:
        """The event the next :meth:`data_changed` sets."""
        return self._changed

    def coordinator_for(self, key: str) -> int:
        """The broker coordinating a group or transactional id: a stable hash over the
        running brokers, as Kafka maps the key to a partition of its internal topic.
        """
        live = sorted(self.model.live)
        moved = self.coordinator_moves.get(key)
        if moved is not None and moved in live:
            return moved
        if not live:
            return -1
        return live[zlib.crc32(key.encode()) % len(live)]


@dataclass
class RequestContext:
    """One request being served: where it arrived, its version, and injected failures."""

    cluster: FakeCluster
    broker: int
    version: int
    client_id: str | None
    #: A Fail control filtered by topic/partition: those partitions answer its error.
    partial_failure: Control | None = None
    partial_error: int = 0

    @property
    def model(self) -> ClusterModel:
        """The cluster model."""
        return self.cluster.model

    def injected(self, topic: str, partition: int | None) -> int:
        """The error code a fault control set for this topic/partition (0 if none)."""
        control = self.partial_failure
        if control is not None and control.matches_target(topic, partition):
            return self.partial_error
        return 0
