"""One fetcher per broker: a task that fetches for every partition the broker leads.

With ``fetch_connection="broker"``, a partition worker (:mod:`trio_brod.consumer.worker`)
does not send Fetch requests itself. Once it knows where its partition's leader is, it
hands the partition to that broker's :class:`BrokerFetcher` (a :class:`FetchTarget`), and
takes it back when the fetcher reports an error for it (the leader moved, the offset is out
of range, the connection was lost): the worker then looks the leader up again and hands the
partition to the new leader's fetcher, at the exact next offset. A partition is in at most
one fetcher at a time, so positions are neither lost nor repeated.

The fetcher only drives I/O. Which partitions go into the next request and how long it may
wait is :func:`~trio_brod.consumer._session.plan`; the incremental fetch session (KIP-227)
is :class:`~trio_brod.consumer._session.FetchSession`; what a partition's data means is the
worker's (:meth:`FetchTarget.take`). One request is in flight per fetcher, on a connection
of its own: it is answered as soon as any partition has data, and the next is sent at once.

A broker answers a connection's requests in order, so a partition that becomes fetchable
while that request long-polls (its subscriber acked and freed room, or it was just
subscribed) would wait for the long poll to end. If its data is there already, it does
not: the fetcher sends it at once on a second connection, outside the session, in a
request that does not wait. A partition found caught up that way joins the session's next
request (so a new subscriber's first long poll may start up to ``max_wait_time`` late, as
in the Java consumer).
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple, Protocol

import trio

from trio_brod._backoff import Backoff
from trio_brod._cluster import ConnectionPool, ConnectionSlot
from trio_brod._exceptions import BrokerConnectionError
from trio_brod._log import consumer_log
from trio_brod._net.merge import FETCH_MAX_BYTES
from trio_brod.consumer._fetch import FETCH_MIN_VERSION, FETCH_TOPIC_ID_VERSION
from trio_brod.consumer._session import (
    SESSION_MIN_VERSION,
    FetchSession,
    PartitionState,
    Plan,
    SessionRequest,
    TopicPartition,
    plan,
    session_request,
    side_request,
)
from trio_brod.protocol import FetchRequest
from trio_brod.protocol.errors import (
    FetchSessionIdNotFoundError,
    FetchSessionTopicIdError,
    InvalidFetchSessionEpochError,
    for_code,
)

__all__ = ["BrokerFetcher", "FetchSettings", "FetchTarget", "Fetchers"]

#: Top-level errors after which the session is opened anew and the request sent again.
_SESSION_ERRORS = (
    FetchSessionIdNotFoundError,
    InvalidFetchSessionEpochError,
    FetchSessionTopicIdError,
)


class FetchSettings(NamedTuple):
    """The request-level fields of a fetcher's requests: partitions that differ in these
    are fetched by different fetchers."""

    isolation: int
    min_bytes: int
    max_wait: float
    #: Seconds to wait after an answer that brought nothing (``sleep_timeout``).
    sleep_timeout: float = 0.0
    rack: str = ""


class FetchTarget(Protocol):
    """A subscribed partition, as its leader's fetcher sees it."""

    @property
    def topic(self) -> str:
        """The topic."""

    @property
    def partition(self) -> int:
        """The partition."""

    @property
    def topic_id(self) -> uuid.UUID | None:
        """The topic's id (None where the cluster gives none)."""

    def state(self) -> PartitionState | None:
        """What to fetch now, or None while the subscriber's window has no room."""

    def take(self, data: Any, offset: int) -> None:
        """A Fetch response's data for the partition, fetched from ``offset``.

        Raises:
            Exception: An error for the partition (a :class:`KafkaError` the broker
                answered, corrupt data): the fetcher drops the partition and reports the
                error through :meth:`fail`.
        """

    def fail(self, error: BaseException) -> None:
        """The fetcher dropped the partition because of ``error``."""


class BrokerFetcher:
    """The fetcher of one broker: one Fetch request at a time for all its partitions.

    Args:
        pool: Where its connection comes from (a private one, in ``nursery``).
        host: The broker.
        port: The broker's port.
        settings: The request-level fields.
        request_timeout: Seconds a request may take beyond its ``max_wait``.
        nursery: Where the connection's tasks run.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        host: str,
        port: int,
        settings: FetchSettings,
        request_timeout: float,
        nursery: trio.Nursery,
    ) -> None:
        self._pool = pool
        self.host = host
        self.port = port
        self.settings = settings
        self._request_timeout = request_timeout
        self._nursery = nursery
        self._slot = ConnectionSlot()
        self._side_slot = ConnectionSlot()
        self._targets: dict[TopicPartition, FetchTarget] = {}
        # Every topic fetched for so far, with its id (None: the cluster gives none); kept
        # with its inverse and the topics without an id, so that neither a request nor an
        # answer looks through every topic a long-lived client ever fetched.
        self._topic_ids: dict[str, uuid.UUID | None] = {}
        self._topic_names: dict[uuid.UUID, str] = {}
        self._without_id: set[str] = set()
        self._woken = trio.Event()
        self._side_woken = trio.Event()
        # The partitions of the session's request in flight and of the side request in
        # flight, and when the session's long poll ends (None: none in flight).
        self._main_busy: dict[TopicPartition, FetchTarget] = {}
        self._side_busy: dict[TopicPartition, FetchTarget] = {}
        # Partitions a side request found caught up, until the session's poll is answered.
        self._side_idle: dict[TopicPartition, FetchTarget] = {}
        self._poll_deadline: float | None = None
        self._session = FetchSession()
        self._version = -1
        self._backoff = Backoff(0.05, 1.0)
        #: How many answers brought data for some partition (for tests and debugging).
        self.answers_with_data = 0

    def __repr__(self) -> str:
        return (
            f"<BrokerFetcher {self.host}:{self.port} partitions={len(self._targets)} "
            f"{self._session!r}>"
        )

    @property
    def session(self) -> FetchSession:
        """The fetch session (for tests and debugging)."""
        return self._session

    def add(self, target: FetchTarget) -> None:
        """Fetch for ``target`` from now on (until it fails or is removed)."""
        tp = (target.topic, target.partition)
        current = self._targets.get(tp)
        if current is not None and current is not target:
            raise RuntimeError(f"{tp[0]}[{tp[1]}] is fetched already")
        self._targets[tp] = target
        self._set_topic_id(target.topic, target.topic_id)
        self.wake()

    def _set_topic_id(self, topic: str, topic_id: uuid.UUID | None) -> None:
        old = self._topic_ids.get(topic)
        if old is not None and self._topic_names.get(old) == topic:
            del self._topic_names[old]
        self._topic_ids[topic] = topic_id
        if topic_id is None:
            self._without_id.add(topic)
        else:
            self._without_id.discard(topic)
            self._topic_names[topic_id] = topic

    def remove(self, target: FetchTarget) -> None:
        """Stop fetching for ``target``; an answer in flight for it is dropped."""
        tp = (target.topic, target.partition)
        if self._targets.get(tp) is target:
            del self._targets[tp]

    def wake(self) -> None:
        """Some partition may be fetchable again (its window freed room)."""
        self._woken.set()
        self._side_woken.set()

    async def run(self) -> None:
        """Fetch while there is something to fetch for; wait otherwise. Runs until
        cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._side_loop)
            await self._main_loop()

    async def _main_loop(self) -> None:
        max_wait = self.settings.max_wait
        while True:
            self._woken = trio.Event()
            main = plan(self._states(), max_wait, self._busy(self._side_busy))
            if not main.wanted:
                await self._woken.wait()
                continue
            polled_at = trio.current_time()
            self._main_busy = {tp: self._targets[tp] for tp in main.wanted}
            if max_wait > 0:
                # While the long poll is in flight, partitions that become fetchable go out
                # at once on the side connection (the main one is busy until answered).
                self._poll_deadline = polled_at + max_wait
                self._side_woken.set()
            try:
                got = await self._fetch(main, None)
            finally:
                self._poll_deadline = None
                self._main_busy = {}
                self._side_idle = {}
            if not got:
                # Nothing new, and perhaps early (a high watermark moved, nothing to read):
                # poll again once the long poll would have ended, and after sleep_timeout
                # (brod's pause after an empty answer), unless a partition became fetchable.
                delay = max(self.settings.sleep_timeout, polled_at + max_wait - trio.current_time())
                if delay > 0:
                    with trio.move_on_after(delay):
                        await self._woken.wait()

    async def _side_loop(self) -> None:
        """Requests outside the session, on the side connection, for partitions that
        became fetchable while the session's long poll is in flight.

        They do not wait for data (``max_wait`` 0): they are for partitions whose data is
        already there (an ack freed room in a window that had stopped fetching). One that
        gets nothing is caught up and waits for the session's next request, as the Java
        consumer's newly fetchable partitions do. A side request in flight when the long
        poll is answered is not cancelled (its answer would be lost and fetched again): its
        partitions stay out of the session's requests until it is answered.
        """
        while True:
            self._side_woken = trio.Event()
            if self._poll_deadline is None:
                await self._side_woken.wait()
                continue
            busy = self._busy(self._main_busy) + self._busy(self._side_idle)
            side = plan(self._states(), 0.0, busy)
            if not side.wanted:
                await self._side_woken.wait()
                continue
            self._side_busy = {tp: self._targets[tp] for tp in side.wanted}
            try:
                await self._fetch(side, side_request(side.wanted))
            finally:
                sent, self._side_busy = self._side_busy, {}
                self._woken.set()  # its partitions may join the session again
            for tp, target in sent.items():
                state = target.state()
                if state is not None and state.fetch_offset == side.wanted[tp].fetch_offset:
                    self._side_idle[tp] = target  # nothing new: the session's next poll

    def _busy(self, in_flight: dict[TopicPartition, FetchTarget]) -> list[TopicPartition]:
        """The partitions of a request in flight that are still fetched for by the same
        target (a partition subscribed anew meanwhile is not: that answer is not its)."""
        targets = self._targets
        return [tp for tp, target in in_flight.items() if targets.get(tp) is target]

    def _states(self) -> dict[TopicPartition, PartitionState | None]:
        return {tp: target.state() for tp, target in self._targets.items()}

    async def _fetch(self, next_plan: Plan, side: SessionRequest | None) -> bool:
        """One request: the session's (``side`` None), or ``side`` on the side connection.

        Errors are reported to the partitions concerned, never raised. Returns whether the
        answer brought anything (records or an error).
        """
        snapshot = {tp: self._targets[tp] for tp in next_plan.wanted}
        slot = self._slot if side is None else self._side_slot
        try:
            connection = await self._pool.connect_slot(slot, self.host, self.port, self._nursery)
            version = connection.best_version(FetchRequest, min_version=FETCH_MIN_VERSION)
            topic_ids = self._topic_ids
            if version >= FETCH_TOPIC_ID_VERSION and self._without_id:
                version = FETCH_TOPIC_ID_VERSION - 1
            session = None
            if side is None:
                if version != self._version:
                    self._version = version
                    self._session = FetchSession(enabled=version >= SESSION_MIN_VERSION)
                session = self._session
                request = session.next_request(next_plan.wanted)
            else:
                request = side
            settings = self.settings
            # The sum, so that each partition can get what it would alone; bounded so that
            # the answer fits the frame limit with room for the brokers' KIP-74 exception
            # (a first batch always whole), but never below one partition's own.
            sizes = [state.max_bytes for state in next_plan.wanted.values()]
            frame = self._pool.config.max_frame_size // 2
            max_bytes = max(max(sizes), min(sum(sizes), FETCH_MAX_BYTES, frame))
            message = session_request(
                request,
                topic_ids,
                version=version,
                max_wait=next_plan.max_wait,
                min_bytes=settings.min_bytes,
                max_bytes=max_bytes,
                isolation=settings.isolation,
                rack=settings.rack,
            )
            try:
                response = await connection.request(
                    message, version, timeout=next_plan.max_wait + self._request_timeout
                )
            except BaseException:
                if session is not None:
                    session.failed()
                raise
        except BrokerConnectionError as exc:
            # The broker is gone or unreachable: every partition asks again where its
            # leader is (each worker backs off on its own).
            self._fail(self._targets if side is None else snapshot, exc)
            return True
        if response.error_code:
            error = for_code(response.error_code)()
            if session is not None:
                session.failed()
                if isinstance(error, _SESSION_ERRORS):
                    # The broker evicted the session (or lost track of it): open a new one.
                    consumer_log.debug("%s:%d: %s; new fetch session", self.host, self.port, error)
                    await trio.sleep(self._backoff.next_delay())
                    return True
            self._fail(snapshot, error)
            return True
        if session is not None:
            self._backoff.reset()
            session.answered(response.session_id)
        return self._apply(response, version, next_plan, snapshot)

    def _fail(self, targets: dict[TopicPartition, FetchTarget], error: BaseException) -> None:
        """Drop ``targets`` (those still fetched for here), reporting ``error`` to each."""
        for tp, target in list(targets.items()):
            if self._targets.get(tp) is target:
                del self._targets[tp]
                target.fail(error)

    def _apply(
        self,
        response: Any,
        version: int,
        next_plan: Plan,
        snapshot: dict[TopicPartition, FetchTarget],
    ) -> bool:
        """Hand each partition's data to its target, if it is still fetched for here.
        Returns whether any partition had records or an error."""
        news = False
        by_id = version >= FETCH_TOPIC_ID_VERSION
        names = self._topic_names if by_id else {}
        targets = self._targets
        for topic_response in response.responses:
            name = names.get(topic_response.topic_id) if by_id else topic_response.topic
            if name is None:
                continue
            for data in topic_response.partitions:
                tp = (name, data.partition_index)
                if data.records or data.error_code:
                    news = True
                target = snapshot.get(tp)
                if target is None or targets.get(tp) is not target:
                    continue  # removed meanwhile (unsubscribed, or moved away)
                if data.records:
                    self.answers_with_data += 1
                try:
                    target.take(data, next_plan.wanted[tp].fetch_offset)
                except Exception as exc:
                    del targets[tp]
                    target.fail(exc)
        return news


class Fetchers:
    """The fetchers of a consumer, one per broker and request settings, started on first use.

    Args:
        pool: Where connections come from.
        request_timeout: Seconds a Fetch may take beyond its ``max_wait``.
        nursery: Where fetchers and their connections run (they end with it).
    """

    def __init__(self, pool: ConnectionPool, request_timeout: float, nursery: trio.Nursery) -> None:
        self._pool = pool
        self._request_timeout = request_timeout
        self._nursery = nursery
        self._fetchers: dict[tuple[str, int, FetchSettings], BrokerFetcher] = {}

    def __len__(self) -> int:
        return len(self._fetchers)

    def fetcher(self, host: str, port: int, settings: FetchSettings) -> BrokerFetcher:
        """The fetcher of a broker for requests with these settings, started if new."""
        key = (host, port, settings)
        fetcher = self._fetchers.get(key)
        if fetcher is None:
            fetcher = self._fetchers[key] = BrokerFetcher(
                self._pool, host, port, settings, self._request_timeout, self._nursery
            )
            self._nursery.start_soon(fetcher.run, name=f"trio_brod fetcher {host}:{port}")
        return fetcher

    @property
    def fetchers(self) -> list[BrokerFetcher]:
        """The fetchers started so far."""
        return list(self._fetchers.values())
