"""Event hooks: what the client tells observers, and how it tells them cheaply.

Workers call the emit functions below at request, batch or message-set granularity, never
per message, and only after checking the ``hooks`` tuple of their client's registry (a
:class:`Hooks`, which the connection pool owns; an empty tuple when no hook is registered),
so that a client nobody observes pays one attribute test per batch.

Two kinds of hooks: process-wide ones (:func:`add_hook`, OpenTelemetry's), which see every
client's events, and a client's own (``open_client(hooks=...)``, ``client.hooks.add``). A
client's registry keeps the two together in one tuple, recomputed when either changes: the
process-wide registry (:data:`state`) refreshes the clients' registries it knows (weakly).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol

__all__ = [
    "Committed",
    "ConnectionClosed",
    "ConnectionFailed",
    "ConnectionOpened",
    "Delivered",
    "Handled",
    "Hook",
    "Hooks",
    "Produced",
    "Rebalanced",
    "RequestAnswered",
    "RequestSent",
    "Retried",
    "add_hook",
    "remove_hook",
]

_log = logging.getLogger("trio_brod.observe")


# ------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class ConnectionOpened:
    """A connection to a broker is ready for requests (connected and handshaken)."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """A connection that was open has closed (``reason`` says why, as text)."""

    host: str
    port: int
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionFailed:
    """A connection could not be opened (refused, timed out, handshake or SASL failed)."""

    host: str
    port: int
    error: BaseException


@dataclass(frozen=True, slots=True)
class RequestSent:
    """A request's frame was encoded and queued to be written to ``address``.

    Every request, produce and fetch included: ``api`` is its name (``"Produce"``,
    ``"Fetch"``, ``"Metadata"``...), ``version`` the version sent, ``size`` the bytes of
    the frame on the wire (size prefix included). One-partition produce and fetch requests
    waiting together are merged into one request: one event for the merged request.
    """

    address: str
    api: str
    version: int
    size: int


@dataclass(frozen=True, slots=True)
class RequestAnswered:
    """A request sent with ``Connection.request`` was answered, or failed (``error``).

    Covers metadata, fetches, offsets, group and admin requests; produce requests have
    their own event, :class:`Produced`. ``latency`` is in seconds; ``size`` the bytes of
    the response frame (size prefix included), 0 when there was none (an error).
    """

    address: str
    api: str
    version: int
    latency: float
    error: BaseException | None
    size: int = 0


@dataclass(frozen=True, slots=True)
class Produced:
    """A produce request for one batch of one partition was answered.

    ``count`` messages in ``size`` bytes (as estimated when accepted), ``latency`` seconds
    from sending to the answer. ``error`` is None when the broker acknowledged the batch
    (at ``base_offset``, -1 if unknown, e.g. with ``acks=0``); otherwise the batch may be
    sent again (a :class:`Retried` event follows) or be given up.
    """

    topic: str
    partition: int
    count: int
    size: int
    latency: float
    base_offset: int
    error: BaseException | None


@dataclass(frozen=True, slots=True)
class Delivered:
    """A message set was handed to a subscriber (one per set, not per message).

    ``count`` messages, ``size`` bytes of fetched batches, the partition's
    ``high_watermark`` when fetched, and ``lag``: how many messages after this set are
    still to come up to the high watermark (0 when the subscriber is caught up).
    """

    topic: str
    partition: int
    count: int
    size: int
    high_watermark: int
    lag: int


@dataclass(frozen=True, slots=True)
class Handled:
    """A subscriber's handler finished a message set (or raised ``error``).

    One event per message set, whether the handler takes messages or message sets:
    ``count`` messages handled, ``duration`` the seconds spent in the handler for them (see
    :class:`~trio_brod.observe.HandlerTimer`). ``group`` is the consumer group for a
    group subscriber, None for a topic subscriber.
    """

    topic: str
    partition: int
    group: str | None
    count: int
    duration: float
    error: BaseException | None


@dataclass(frozen=True, slots=True)
class Committed:
    """Offsets of ``partitions`` partitions were committed for ``group`` (or failed)."""

    group: str
    partitions: int
    latency: float
    error: BaseException | None


@dataclass(frozen=True, slots=True)
class Rebalanced:
    """A group member completed a rebalance: ``assignment`` is what it owns now.

    ``duration`` is the seconds from the decision to (re)join to this moment.
    """

    group: str
    generation: int
    member_id: str
    assignment: frozenset[tuple[str, int]]
    duration: float


@dataclass(frozen=True, slots=True)
class Retried:
    """A failed request will be sent again: ``operation`` is ``"send"`` (a produce batch)
    or ``"receive"`` (a fetch)."""

    operation: str
    topic: str
    partition: int
    error: BaseException | None


# ------------------------------------------------------------------------------- hooks


class Hook:
    """Receives the client's events: subclass it and override the methods you need.

    Every method is called synchronously, from the task where the event happened, so it
    must be quick and must not block (count, time, put on a queue). An exception from a
    hook is logged (``trio_brod.observe``) and otherwise ignored: observing cannot break
    the client. Register with :func:`add_hook` for every client in the process, as
    OpenTelemetry's global providers do, or with one client only:
    ``open_client(..., hooks=[hook])`` or ``client.hooks.add(hook)``.
    """

    def connection_opened(self, event: ConnectionOpened) -> None:
        """A connection to a broker is ready."""

    def connection_closed(self, event: ConnectionClosed) -> None:
        """A connection closed."""

    def connection_failed(self, event: ConnectionFailed) -> None:
        """A connection could not be opened."""

    def request_sent(self, event: RequestSent) -> None:
        """A request's frame was queued to be written."""

    def request_answered(self, event: RequestAnswered) -> None:
        """A request (other than produce) was answered or failed."""

    def produced(self, event: Produced) -> None:
        """A produce request (one batch) was answered or failed."""

    def delivered(self, event: Delivered) -> None:
        """A message set was handed to a subscriber."""

    def handled(self, event: Handled) -> None:
        """A subscriber's handler finished a message set."""

    def committed(self, event: Committed) -> None:
        """Offsets were committed (or the commit failed)."""

    def rebalanced(self, event: Rebalanced) -> None:
        """A group member completed a rebalance."""

    def retried(self, event: Retried) -> None:
        """A produce batch or fetch is being tried again."""

    def observes_handlers(self) -> bool:
        """Whether subscribers' handlers should be timed for this hook.

        Timing a handler costs a little per message; subscribers ask this when a
        subscription starts and only wrap their handler if some hook says yes. By default,
        a hook that overrides :meth:`handled` does.
        """
        return type(self).handled is not Hook.handled


class HasHooks(Protocol):
    """Where an emit function finds its hooks: a :class:`Hooks`, or :data:`state`."""

    @property
    def hooks(self) -> tuple[Hook, ...]:
        """The hooks to tell, empty when nobody observes."""
        ...


class _State:
    """The process-wide hooks, as a tuple to iterate without copying."""

    __slots__ = ("clients", "hooks", "producers", "rebalancing")

    def __init__(self) -> None:
        self.hooks: tuple[Hook, ...] = ()
        #: Every client's registry, to refresh when the process-wide hooks change.
        self.clients: weakref.WeakSet[Hooks] = weakref.WeakSet()
        # Live producer buffers -> (topic, partition), for gauges read at collection time.
        self.producers: weakref.WeakKeyDictionary[Any, tuple[str, int]] = (
            weakref.WeakKeyDictionary()
        )
        # group id -> when its member first sent JoinGroup (time.perf_counter)
        self.rebalancing: dict[str, float] = {}

    def refresh(self) -> None:
        """Recompute every client's hooks after the process-wide ones changed."""
        for registry in list(self.clients):
            registry.refresh()


#: The process's hooks (every client's events). Workers of no client (a ``Connection``
#: made by hand, a bare ``ConnectionPool``'s default) test ``state.hooks`` themselves.
state: Final = _State()


class Hooks:
    """One client's hooks: the process-wide ones (:func:`add_hook`) and its own.

    ``client.hooks`` is one; its connection pool owns it and every worker of the client
    reads ``hooks`` from it, the tuple of both kinds of hooks (process-wide first), empty
    when nobody observes, so the check before building an event is one attribute test.
    """

    __slots__ = ("__weakref__", "_own", "hooks")

    def __init__(self, own: Iterable[Hook] = ()) -> None:
        self._own: tuple[Hook, ...] = tuple(own)
        self.hooks: tuple[Hook, ...] = ()
        self.refresh()
        state.clients.add(self)

    def __repr__(self) -> str:
        return f"<Hooks {len(self._own)} own, {len(state.hooks)} process-wide>"

    @property
    def own(self) -> tuple[Hook, ...]:
        """The client's own hooks (not the process-wide ones)."""
        return self._own

    def add(self, hook: Hook) -> Callable[[], None]:
        """Send this client's events (only) to ``hook`` too; returns a function that
        removes it."""
        self._own = (*self._own, hook)
        self.refresh()
        return lambda: self.remove(hook)

    def remove(self, hook: Hook) -> None:
        """Stop sending this client's events to ``hook`` (nothing if it was not added here;
        a process-wide hook is removed with :func:`remove_hook`)."""
        self._own = tuple(h for h in self._own if h is not hook)
        self.refresh()

    def refresh(self) -> None:
        """Recompute ``hooks`` (the process-wide hooks changed, or this client's)."""
        self.hooks = (*state.hooks, *self._own)


def hooks_of(pool: object) -> HasHooks:
    """A connection pool's hooks (its client's), read once when a worker is built; the
    process's for a stand-in pool that has none (the fakes of unit tests)."""
    hooks: HasHooks | None = getattr(pool, "hooks", None)
    return state if hooks is None else hooks


def add_hook(hook: Hook) -> Callable[[], None]:
    """Register ``hook`` for every client's events; returns a function that removes it."""
    state.hooks = (*state.hooks, hook)
    state.refresh()
    return lambda: remove_hook(hook)


def remove_hook(hook: Hook) -> None:
    """Stop sending events to ``hook`` (nothing happens if it was not registered)."""
    state.hooks = tuple(h for h in state.hooks if h is not hook)
    state.refresh()


def _emit(source: HasHooks, method: str, event: Any) -> None:
    for hook in source.hooks:
        try:
            getattr(hook, method)(event)
        except Exception:
            _log.exception("hook %r failed on %s", hook, type(event).__name__)


# ------------------------------------------------------------------ called by workers
# Each takes where its hooks are (the client's Hooks, or ``state``) first; callers test
# ``source.hooks`` before calling (commits and rebalances, rare, are tested here).


def connection_opened(source: HasHooks, host: str, port: int) -> None:
    """Tell the hooks a connection opened."""
    _emit(source, "connection_opened", ConnectionOpened(host, port))


def connection_closed(source: HasHooks, host: str, port: int, reason: object) -> None:
    """Tell the hooks a connection closed."""
    _emit(source, "connection_closed", ConnectionClosed(host, port, str(reason)))


def connection_failed(source: HasHooks, host: str, port: int, error: BaseException) -> None:
    """Tell the hooks a connection failed to open."""
    _emit(source, "connection_failed", ConnectionFailed(host, port, error))


def request_sent(source: HasHooks, address: str, message: Any, version: int, size: int) -> None:
    """Tell the hooks a request's frame of ``size`` bytes was queued to be written."""
    name = type(message).__name__.removesuffix("Request")
    _emit(source, "request_sent", RequestSent(address, name, version, size))


def request_answered(
    source: HasHooks,
    address: str,
    message: Any,
    version: int,
    started: float,
    error: BaseException | None,
    size: int = 0,
) -> None:
    """Tell the hooks a request was answered (a response of ``size`` bytes); ``started`` is
    its ``perf_counter()``."""
    name = type(message).__name__.removesuffix("Request")
    if name == "JoinGroup":
        # A rebalance's clock starts at its first JoinGroup (a rejoin continues it).
        state.rebalancing.setdefault(message.group_id, started)
    latency = time.perf_counter() - started
    event = RequestAnswered(address, name, version, latency, error, size)
    _emit(source, "request_answered", event)


def produced(source: HasHooks, batch: Any, base_offset: int, error: BaseException | None) -> None:
    """Tell the hooks a produce batch (a ``WireBatch``) was answered."""
    call = batch.calls[0]
    latency = time.perf_counter() - batch.sent_at
    event = Produced(
        call.topic, call.partition, batch.record_count, batch.size, latency, base_offset, error
    )
    _emit(source, "produced", event)


def retried(
    source: HasHooks, operation: str, topic: str, partition: int, error: BaseException | None
) -> None:
    """Tell the hooks a batch or fetch is tried again."""
    _emit(source, "retried", Retried(operation, topic, partition, error))


def delivered(source: HasHooks, message_set: Any) -> None:
    """Tell the hooks a message set went to a subscriber."""
    hw = message_set.high_watermark
    lag = max(0, hw - message_set.next_offset) if hw >= 0 else 0
    event = Delivered(
        message_set.topic, message_set.partition, len(message_set), message_set.size, hw, lag
    )
    _emit(source, "delivered", event)


def committed(
    source: HasHooks, group: str, partitions: int, started: float, error: BaseException | None
) -> None:
    """Tell the hooks offsets were committed (``started`` from ``perf_counter()``)."""
    if not source.hooks:
        return
    event = Committed(group, partitions, time.perf_counter() - started, error)
    _emit(source, "committed", event)


def rebalanced(
    source: HasHooks, group: str, generation: Any, assignment: Any, started: float | None = None
) -> None:
    """Tell the hooks a member of ``group`` completed a rebalance (``generation`` has
    ``generation_id`` and ``member_id``). Its duration counts from ``started`` (a
    ``perf_counter()``) if given, else from the first JoinGroup request of the rebalance
    (see :func:`request_answered`)."""
    if not source.hooks:
        return
    joined = state.rebalancing.pop(group, None)
    if started is None:
        started = joined
    duration = 0.0 if started is None else time.perf_counter() - started
    event = Rebalanced(
        group, generation.generation_id, generation.member_id, frozenset(assignment), duration
    )
    _emit(source, "rebalanced", event)


def observes_handlers(source: HasHooks) -> bool:
    """Whether any hook wants subscribers' handlers timed."""
    return any(hook.observes_handlers() for hook in source.hooks)


def handled(
    source: HasHooks,
    topic: str,
    partition: int,
    group: str | None,
    count: int,
    duration: float,
    error: BaseException | None,
) -> None:
    """Tell the hooks a handler finished ``count`` messages in ``duration`` seconds."""
    _emit(source, "handled", Handled(topic, partition, group, count, duration, error))


def track_producer(buffer: Any, topic: str, partition: int) -> None:
    """Remember a partition producer's buffer (weakly) for the records-waiting gauge."""
    state.producers[buffer] = (topic, partition)
