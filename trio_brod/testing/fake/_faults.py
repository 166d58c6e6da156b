"""Fault injection for the fake Kafka: intercept requests, answer errors, delay, hang up.

A test registers a *control* for an API key (and, where the request names them, a topic and a
partition, and a broker); the next request it matches gets the control's action instead of,
or before, the normal answer:

* :class:`Fail` answers a Kafka error. Filtered by topic (and partition), only those
  partitions fail and the rest of the request is served (Produce, Fetch, ListOffsets,
  DeleteRecords, Metadata); otherwise, and for other APIs, the whole request fails (the
  error in every error code the response has).
* :class:`Delay` waits (on Trio's clock, so MockClock skips it) and then serves the request.
* :class:`Drop` closes the connection without answering; ``Drop(after_serving=True)``
  serves the request first (a Produce is written) and then closes it, as a broker whose
  answer is lost on the way: the client cannot tell whether its request took effect.
* :class:`Hang` never answers, and keeps the connection open (a client's request timeout
  is what ends it).
* :class:`Hold` keeps the request waiting until the test calls :meth:`Hold.release`, and
  then serves it: to look at the client while its request is at the broker.
* :class:`Pass` serves the request normally: for a control that only watches
  (:attr:`Control.seen`) or a function that decides request by request.

The action can also be a function of the :class:`Intercepted` request, returning an action, or
None to leave the request to the next control. A control acts ``times`` times (None: until
cancelled); controls are tried in the order they were added. This is the model of franz-go's
kfake ``ControlKey``, with declarative actions instead of hand-built responses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import trio

from trio_brod.protocol import Message
from trio_brod.protocol.errors import KafkaError

__all__ = [
    "Action",
    "Control",
    "Delay",
    "Drop",
    "Fail",
    "Faults",
    "Hang",
    "Hold",
    "Intercepted",
    "Pass",
    "touched",
]


@dataclass(frozen=True)
class Fail:
    """Answer this Kafka error (a class from :mod:`trio_brod.protocol.errors`)."""

    error: type[KafkaError]


@dataclass(frozen=True)
class Delay:
    """Wait this many seconds (Trio's clock), then serve the request normally."""

    seconds: float


@dataclass(frozen=True)
class Drop:
    """Close the connection instead of answering.

    With ``after_serving=True`` the request is served first (its records written, its
    offsets committed ...) and only the answer is lost: the case an idempotent producer's
    sequence numbers exist for.
    """

    after_serving: bool = False


@dataclass(frozen=True)
class Hang:
    """Never answer; keep the connection open."""


@dataclass(frozen=True)
class Hold:
    """Keep the request waiting, unanswered, until :meth:`release`; then serve it normally,
    or act as the release says.

    One ``Hold`` can hold many requests (a control with ``times=None``); one release lets
    them all go, and any that comes later passes at once. The connection's later requests
    wait behind a held one, as they do behind any request a broker is still working on::

        hold = Hold()
        fake.control(ProduceRequest, hold, times=None)
        ...  # the client's batch is on the wire, unanswered
        hold.release()  # or hold.release(Fail(NotEnoughReplicasError)): refused after all
    """

    _released: trio.Event = field(default_factory=trio.Event, compare=False, repr=False)
    _then: list[Fail | Drop | Hang | Pass] = field(default_factory=list, compare=False)

    def release(self, then: Fail | Drop | Hang | Pass | None = None) -> None:
        """Let every held request go on (and those that come later), served normally or,
        given *then*, with that action: what a broker that kept the request a while then
        did with it (refused it, hung up ...)."""
        if then is not None:
            self._then[:] = [then]
        self._released.set()

    async def wait(self) -> Fail | Drop | Hang | Pass:
        """Wait until released (the server's side); the action to take then."""
        await self._released.wait()
        return self._then[0] if self._then else Pass()


@dataclass(frozen=True)
class Pass:
    """Serve the request normally."""


Action = Fail | Delay | Drop | Hang | Hold | Pass


@dataclass(frozen=True)
class Intercepted:
    """A request as a control sees it."""

    api_key: int
    version: int
    broker: int
    client_id: str | None
    body: Message
    #: (topic, partition) pairs the request names; partition None for topic-level requests.
    targets: tuple[tuple[str, int | None], ...]
    #: The connection it came on: 1 for the first its broker accepted, 2 for the next ...
    #: (see :meth:`FakeKafka.connections`).
    connection: int = 0


Decide = Callable[[Intercepted], Action | None]


@dataclass(eq=False)
class Control:
    """One registered control; :meth:`cancel` removes it. ``seen`` lists what it acted on,
    and :meth:`wait_seen` waits for it to act (a test's way to wait for a client's request).
    """

    api_key: int | None
    action: Action | Decide
    topic: str | None = None
    partition: int | None = None
    broker: int | None = None
    times: int | None = 1
    seen: list[Intercepted] = field(default_factory=list)
    owner: Faults | None = field(default=None, repr=False)
    _acted: trio.Event = field(default_factory=trio.Event, repr=False)

    def saw(self, request: Intercepted) -> None:
        """Record that this control acted on *request* (and wake :meth:`wait_seen`)."""
        self.seen.append(request)
        self._acted.set()
        self._acted = trio.Event()

    async def wait_seen(self, count: int = 1) -> Intercepted:
        """Wait until this control has acted on *count* requests in all; return the last.

        A control that only watches (``Pass()``, or a function returning ``Pass()`` for the
        request a test waits for, None for the others) turns this into "wait until the client
        sent that request", e.g. the long poll a caught-up consumer sends next::

            polling = fake.control(FetchRequest, lambda r: Pass() if at(r, 10) else None)
            ...
            await polling.wait_seen()  # the fetch at offset 10 arrived (it is being served)
        """
        while len(self.seen) < count:
            await self._acted.wait()
        return self.seen[-1]

    def cancel(self) -> None:
        """Stop acting (idempotent)."""
        if self.owner is not None:
            self.owner.remove(self)

    def matches_target(self, topic: str, partition: int | None) -> bool:
        """Whether this control's topic/partition filter covers that target."""
        if self.topic is not None and self.topic != topic:
            return False
        return self.partition is None or partition is None or self.partition == partition

    def applies(self, request: Intercepted) -> bool:
        if self.api_key is not None and self.api_key != request.api_key:
            return False
        if self.broker is not None and self.broker != request.broker:
            return False
        if self.topic is None:
            return True
        return any(self.matches_target(t, p) for t, p in request.targets)


@dataclass(frozen=True)
class Decision:
    """What the server must do with one request."""

    action: Action
    #: For a :class:`Fail` filtered by topic: the control, to ask which partitions fail.
    partial: Control | None = None


class Faults:
    """The registered controls of a fake cluster, in order."""

    def __init__(self) -> None:
        self._controls: list[Control] = []

    def add(self, control: Control) -> Control:
        """Register a control (its ``owner`` is set so that it can cancel itself)."""
        control.owner = self
        self._controls.append(control)
        return control

    def remove(self, control: Control) -> None:
        """Unregister a control, if it still is."""
        if control in self._controls:
            self._controls.remove(control)

    def __iter__(self) -> Iterator[Control]:
        return iter(list(self._controls))

    def __len__(self) -> int:
        """How many controls are registered (none: every request passes)."""
        return len(self._controls)

    def decide(self, request: Intercepted) -> Decision:
        """The action for a request: the first control that applies and acts, else Pass."""
        for control in list(self._controls):
            if not control.applies(request):
                continue
            action = control.action
            if not isinstance(action, Fail | Delay | Drop | Hang | Hold | Pass):
                decided = action(request)
                if decided is None:
                    continue
                action = decided
            control.saw(request)
            if control.times is not None:
                control.times -= 1
                if control.times <= 0:
                    self.remove(control)
            partial = control if isinstance(action, Fail) and control.topic is not None else None
            return Decision(action, partial)
        return Decision(Pass())


# -- what a request names ------------------------------------------------------------------

_TOPIC_LISTS = ("topics", "topic_data", "resources", "v3_and_below_topics")
#: Lists of entries that each hold topics: OffsetFetch's groups (v8+), AddPartitionsToTxn's
#: transactions (v4+).
_TOPIC_HOLDERS = ("groups", "transactions")
_TOPIC_NAMES = ("name", "topic", "resource_name")
_PARTITION_LISTS = ("partitions", "partition_data", "partition_indexes")
_PARTITION_INDEXES = ("partition_index", "index", "partition")


def touched(body: Any, topic_of: Callable[[Any], str | None]) -> tuple[tuple[str, int | None], ...]:
    """The (topic, partition) pairs a request names (partition None for a whole topic).

    *topic_of* maps a topic entry to its name: it resolves Fetch's topic ids.
    """
    found: list[tuple[str, int | None]] = []
    for names in ("topic_names",):
        for name in getattr(body, names, None) or []:
            found.append((name, None))
    holders = [body]
    for list_name in _TOPIC_HOLDERS:
        holders.extend(h for h in getattr(body, list_name, None) or [] if hasattr(h, "topics"))
    for holder in holders:
        for list_name in _TOPIC_LISTS:
            for entry in getattr(holder, list_name, None) or []:
                _add_topic(found, entry, topic_of)
    return tuple(found)


def _add_topic(
    found: list[tuple[str, int | None]], entry: Any, topic_of: Callable[[Any], str | None]
) -> None:
    topic = topic_of(entry)
    if topic is None:
        return
    partitions = next((getattr(entry, p) for p in _PARTITION_LISTS if hasattr(entry, p)), None)
    if not partitions:
        found.append((topic, None))
        return
    for item in partitions:
        if isinstance(item, int):  # a list of plain indexes
            found.append((topic, item))
            continue
        index = next((getattr(item, i) for i in _PARTITION_INDEXES if hasattr(item, i)), None)
        found.append((topic, index if isinstance(index, int) else None))


def entry_name(entry: Any) -> str | None:
    """The topic name of a request's topic entry, if it has one by name."""
    for attribute in _TOPIC_NAMES:
        value = getattr(entry, attribute, None)
        if isinstance(value, str) and value:
            return value
    return None
