"""Incremental fetch sessions (Kafka's KIP-227), a broker's half. Pure: no I/O, no clock.

A Fetch request's (session id, epoch) says what it is:

* (0, -1): a full fetch outside any session.
* (0, 0): a full fetch that opens a session; the answer carries the new session's id.
* (id, n > 0): an incremental fetch in session *id*: the request names only partitions that
  were added or changed, and ``forgotten_topics_data`` those to drop; the broker fetches
  every partition of the session, and answers only about those with something new (records,
  a moved high watermark, last stable offset or log start, an error). *n* must be the
  session's next epoch (1, 2, ..., wrapping to 1 after int32's max).
* (id, 0): close session *id* and open a new one with a full fetch.
* (id, -1): close session *id*; a full fetch outside any session.

An unknown id is FETCH_SESSION_ID_NOT_FOUND, a wrong epoch INVALID_FETCH_SESSION_EPOCH,
as Kafka answers. Sessions are kept per broker and lost when it stops.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from trio_brod.protocol import FetchRequest, FetchResponse
from trio_brod.protocol.errors import (
    FetchSessionIdNotFoundError,
    InvalidFetchSessionEpochError,
    KafkaError,
)

__all__ = ["FetchSession", "FetchSessions", "SessionError"]

_FINAL, _INITIAL = -1, 0
_INT32_MAX = 2**31 - 1
# A partition's identity in a session: (topic name or id, partition).
_Key = tuple[str | uuid.UUID, int]


class SessionError(Exception):
    """A fetch the session rules refuse; ``error`` is the top-level error to answer."""

    def __init__(self, error: type[KafkaError]) -> None:
        super().__init__(error.__name__)
        self.error = error


def _key(topic: FetchRequest.FetchTopic, partition: int, version: int) -> _Key:
    return (topic.topic_id if version >= 13 else topic.topic, partition)


@dataclass
class FetchSession:
    """One session: its partitions (as last sent) and what the client was last told."""

    session_id: int
    epoch: int = 1
    partitions: dict[_Key, tuple[FetchRequest.FetchTopic, FetchRequest.FetchPartition]] = field(
        default_factory=dict
    )
    #: (high watermark, last stable offset, log start offset) last answered, per partition.
    told: dict[_Key, tuple[int, int, int]] = field(default_factory=dict)

    def topics(self) -> list[FetchRequest.FetchTopic]:
        """Every partition of the session, grouped by topic, as a full request would list."""
        grouped: dict[str | uuid.UUID, FetchRequest.FetchTopic] = {}
        for (name, _), (topic, partition) in self.partitions.items():
            entry = grouped.get(name)
            if entry is None:
                entry = grouped[name] = FetchRequest.FetchTopic(
                    topic=topic.topic, topic_id=topic.topic_id
                )
            entry.partitions.append(partition)
        return list(grouped.values())


@dataclass
class FetchSessions:
    """A broker's fetch sessions."""

    sessions: dict[int, FetchSession] = field(default_factory=dict)
    _next_id: int = 0

    def open(
        self, request: FetchRequest, version: int
    ) -> tuple[FetchSession | None, bool, list[FetchRequest.FetchTopic]]:
        """Apply a request to the sessions: (the session or None, whether the fetch is
        incremental, the partitions to fetch).

        Raises:
            SessionError: An unknown session, or an epoch out of turn.
        """
        session_id, epoch = request.session_id, request.session_epoch
        if version < 7 or (session_id == 0 and epoch == _FINAL):
            return None, False, list(request.topics)
        if session_id == 0 and epoch != _INITIAL:
            raise SessionError(InvalidFetchSessionEpochError)
        if session_id != 0:
            if session_id not in self.sessions:
                raise SessionError(FetchSessionIdNotFoundError)
            if epoch in (_FINAL, _INITIAL):
                del self.sessions[session_id]
                if epoch == _FINAL:
                    return None, False, list(request.topics)
            else:
                return self._incremental(self.sessions[session_id], request, version)
        self._next_id += 1
        session = self.sessions[self._next_id] = FetchSession(self._next_id)
        self._update(session, request, version)
        return session, False, list(request.topics)

    def _incremental(
        self, session: FetchSession, request: FetchRequest, version: int
    ) -> tuple[FetchSession, bool, list[FetchRequest.FetchTopic]]:
        if request.session_epoch != session.epoch:
            raise SessionError(InvalidFetchSessionEpochError)
        self._update(session, request, version)
        for forgotten in request.forgotten_topics_data:
            name = forgotten.topic_id if version >= 13 else forgotten.topic
            for index in forgotten.partitions:
                session.partitions.pop((name, index), None)
                session.told.pop((name, index), None)
        return session, True, session.topics()

    @staticmethod
    def _update(session: FetchSession, request: FetchRequest, version: int) -> None:
        session.epoch = 1 if request.session_epoch >= _INT32_MAX else request.session_epoch + 1
        for topic in request.topics:
            for partition in topic.partitions:
                session.partitions[_key(topic, partition.partition, version)] = (topic, partition)

    @staticmethod
    def answer(
        session: FetchSession, incremental: bool, response: FetchResponse, version: int
    ) -> None:
        """Record what the response tells the client and, in an incremental fetch, leave out
        the partitions with nothing new.
        """
        response.session_id = session.session_id
        for topic in response.responses:
            name: str | uuid.UUID = topic.topic_id if version >= 13 else topic.topic
            kept = []
            for data in topic.partitions:
                state = (data.high_watermark, data.last_stable_offset, data.log_start_offset)
                key = (name, data.partition_index)
                new = data.error_code != 0 or bool(data.records) or session.told.get(key) != state
                session.told[key] = state
                if new or not incremental:
                    kept.append(data)
            topic.partitions = kept
        if incremental:
            response.responses = [t for t in response.responses if t.partitions]
