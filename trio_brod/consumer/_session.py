"""The consumer's sans-IO core, part three: a broker's fetch session, and what to fetch next.

One fetcher per broker (:mod:`trio_brod.consumer.fetcher`) sends one Fetch request at a
time for every subscribed partition that broker leads. Two decisions are made here, with no
I/O, no clock and no Trio, so that tests can drive them with any sequence of answers:

* :class:`FetchSession` keeps the client's half of an incremental fetch session (Kafka's
  KIP-227). The first request of a session is *full*: it names every partition to fetch
  (epoch 0). If the broker answers with a session id, the next requests are *incremental*:
  they name only the partitions whose fetch state (offset, size, leader epoch) changed since
  the broker last heard of them, and the partitions to drop ("forgotten"); the broker keeps
  the others as they were, and answers only about partitions that have something new. The
  session's epoch counts the requests (1, 2, ..., wrapping to 1), so the broker can tell a
  request that follows from one that does not. Any error, a lost connection, or the broker
  saying it no longer knows the session (it evicts sessions when its cache is full) resets
  it: the next request is full again, and opens a new session.
* :func:`plan` chooses which partitions go into a request. A partition is fetched only
  while its subscriber's prefetch window has room (its fetched data is all delivered and
  the window is not full), so ``prefetch_count`` and ``prefetch_bytes`` stay exact per
  partition. A broker answers a connection's requests in order, so a partition that
  becomes fetchable while the fetcher's long poll is in flight (a window freed room, a new
  subscriber came) must not wait for it: the fetcher sends it at once on a second
  connection, in a request outside the session (:func:`side_request`), which may wait only
  as long as the long poll has left.

The rules, which ``tests/unit/test_consumer_session.py`` checks with hypothesis:

1. The broker's view (what it was last told about each partition) and the client's view
   (:attr:`FetchSession.sent`) agree after every answered request; a partition is written
   in a request exactly when its state differs from the broker's view, or the request is
   full.
2. A partition the client no longer wants is forgotten in the next incremental request.
3. An error resets the session: the next request is full, with session id 0 and epoch 0.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import NamedTuple

from trio_brod.consumer._fetch import wait_ms
from trio_brod.protocol import FetchRequest

__all__ = [
    "FINAL_EPOCH",
    "INITIAL_EPOCH",
    "SESSION_MIN_VERSION",
    "FetchSession",
    "PartitionState",
    "Plan",
    "SessionRequest",
    "TopicPartition",
    "plan",
    "session_request",
    "side_request",
]

#: Fetch v7 is the first with fetch sessions (KIP-227).
SESSION_MIN_VERSION = 7
#: The epoch of a full request that opens a new session.
INITIAL_EPOCH = 0
#: The epoch of a request outside any session (also: closes a session).
FINAL_EPOCH = -1

#: Fetch v12 is the first with ``last_fetched_epoch``.
LAST_FETCHED_EPOCH_VERSION = 12

_MAX_EPOCH = 2**31 - 1

TopicPartition = tuple[str, int]


class PartitionState(NamedTuple):
    """What a Fetch request says about one partition (and a session remembers)."""

    #: Where to fetch from.
    fetch_offset: int
    #: ``partition_max_bytes``.
    max_bytes: int
    #: The leader epoch the client knows (KIP-320), -1 if unknown.
    leader_epoch: int = -1
    #: The epoch of the last record fetched (for truncation detection), -1 if none.
    last_fetched_epoch: int = -1


class SessionRequest(NamedTuple):
    """The session fields and partitions of the next Fetch request."""

    session_id: int
    epoch: int
    #: Every partition the request fetches for (written in it, or kept by the broker).
    wanted: dict[TopicPartition, PartitionState]
    #: The partitions written in the request.
    send: dict[TopicPartition, PartitionState]
    #: The partitions the broker is to drop from the session.
    forget: list[TopicPartition]

    @property
    def full(self) -> bool:
        """Whether the request names every partition (no session, or a new one)."""
        return self.epoch in (INITIAL_EPOCH, FINAL_EPOCH)


class FetchSession:
    """The client's half of one broker's incremental fetch session (KIP-227).

    Args:
        enabled: Whether the broker's Fetch version has sessions (v7+). Without, every
            request is full and outside any session (epoch -1).
    """

    __slots__ = ("_pending", "enabled", "epoch", "sent", "session_id")

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        #: The broker's id for the session; 0 while there is none.
        self.session_id = 0
        #: The epoch of the next request.
        self.epoch = INITIAL_EPOCH if enabled else FINAL_EPOCH
        #: What the broker was told about each partition in the session.
        self.sent: dict[TopicPartition, PartitionState] = {}
        self._pending: SessionRequest | None = None

    def __repr__(self) -> str:
        return f"<FetchSession id={self.session_id} epoch={self.epoch} partitions={len(self.sent)}>"

    def next_request(self, wanted: Mapping[TopicPartition, PartitionState]) -> SessionRequest:
        """The next request, fetching for ``wanted``; answer it with :meth:`answered` (or
        :meth:`failed`) before asking for another."""
        wanted = dict(wanted)
        if self.epoch in (INITIAL_EPOCH, FINAL_EPOCH):
            request = SessionRequest(self.session_id, self.epoch, wanted, wanted, [])
        else:
            sent = self.sent
            send = {tp: state for tp, state in wanted.items() if sent.get(tp) != state}
            forget = [tp for tp in sent if tp not in wanted]
            request = SessionRequest(self.session_id, self.epoch, wanted, send, forget)
        self._pending = request
        return request

    def answered(self, session_id: int) -> None:
        """The broker answered the last request without a top-level error, with this
        session id (0: it keeps no session for us)."""
        request = self._pending
        assert request is not None, "answered() without a request"
        self._pending = None
        if not self.enabled:
            return
        if request.full:
            if session_id == 0:
                # No session (the broker's cache is full, or sessions are off): keep sending
                # full requests, each asking for a new session.
                self.reset()
                return
            self.session_id = session_id
            self.epoch = 1
        else:
            self.epoch = 1 if self.epoch >= _MAX_EPOCH else self.epoch + 1
        self.sent = request.wanted

    def failed(self) -> None:
        """The last request failed (an error, a lost connection): start over with a full
        request, which opens a new session."""
        self._pending = None
        self.reset()

    def reset(self) -> None:
        """Forget the session; the next request is full."""
        self.session_id = 0
        self.epoch = INITIAL_EPOCH if self.enabled else FINAL_EPOCH
        self.sent = {}


class Plan(NamedTuple):
    """What a Fetch request of a broker's fetcher holds."""

    #: The partitions to fetch for, with their state.
    wanted: dict[TopicPartition, PartitionState]
    #: How long the broker may hold the request waiting for data (seconds).
    max_wait: float


def plan(
    partitions: Mapping[TopicPartition, PartitionState | None],
    max_wait: float,
    busy: Collection[TopicPartition] = (),
) -> Plan:
    """The next request of a broker's fetcher.

    Args:
        partitions: Every partition the fetcher serves: its state if it may be fetched now,
            or None while its subscriber's window has no room.
        max_wait: How long the request may wait for data.
        busy: Partitions in a request in flight (left out: one request at a time each).
    """
    wanted = {tp: state for tp, state in partitions.items() if state is not None and tp not in busy}
    return Plan(wanted, max_wait)


def side_request(wanted: Mapping[TopicPartition, PartitionState]) -> SessionRequest:
    """A request outside any session, for partitions that became fetchable while the
    session's long poll was in flight."""
    wanted = dict(wanted)
    return SessionRequest(0, FINAL_EPOCH, wanted, wanted, [])


def session_request(
    request: SessionRequest,
    topic_ids: Mapping[str, uuid.UUID | None],
    *,
    version: int,
    max_wait: float,
    min_bytes: int,
    max_bytes: int,
    isolation: int,
    rack: str = "",
) -> FetchRequest:
    """The Fetch request for a :class:`SessionRequest`, to be sent at ``version``.

    ``last_fetched_epoch`` is set only from v12, which has it (an older version cannot
    leave it out silently). Topics are named both ways (v13+ encodes the id, older versions
    the name); forgotten partitions go in ``forgotten_topics_data`` (v7+). ``max_bytes``
    bounds the whole response; each partition keeps its own ``partition_max_bytes``.
    """
    with_epoch = version >= LAST_FETCHED_EPOCH_VERSION
    topics: dict[str, FetchRequest.FetchTopic] = {}
    for (topic, partition), state in request.send.items():
        fetch_topic = topics.get(topic)
        if fetch_topic is None:
            fetch_topic = topics[topic] = FetchRequest.FetchTopic(topic=topic, partitions=[])
            topic_id = topic_ids.get(topic)
            if topic_id is not None:
                fetch_topic.topic_id = topic_id
        fetch_topic.partitions.append(
            FetchRequest.FetchPartition(
                partition=partition,
                current_leader_epoch=state.leader_epoch,
                fetch_offset=state.fetch_offset,
                last_fetched_epoch=state.last_fetched_epoch if with_epoch else -1,
                partition_max_bytes=state.max_bytes,
            )
        )
    forgotten: dict[str, FetchRequest.ForgottenTopic] = {}
    for topic, partition in request.forget:
        forgotten_topic = forgotten.get(topic)
        if forgotten_topic is None:
            forgotten_topic = forgotten[topic] = FetchRequest.ForgottenTopic(
                topic=topic, partitions=[]
            )
            topic_id = topic_ids.get(topic)
            if topic_id is not None:
                forgotten_topic.topic_id = topic_id
        forgotten_topic.partitions.append(partition)
    return FetchRequest(
        max_wait_ms=wait_ms(max_wait),
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        isolation_level=isolation,
        session_id=request.session_id,
        session_epoch=request.epoch,
        topics=list(topics.values()),
        forgotten_topics_data=list(forgotten.values()),
        rack_id=rack,
    )
