"""The group's coordinator: the broker that runs one consumer group, found and found again.

Every group request (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch)
goes to the broker leading the group's partition of ``__consumer_offsets``. That broker
changes: it is stopped, the partition's leadership moves, the group is still loading on a
new leader. :class:`GroupCoordinator` hides the moves from its callers: a lost connection,
or an answer saying NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE, makes it forget the
broker, find the coordinator again (FindCoordinator, through the metadata cache) and send
the request again there; COORDINATOR_LOAD_IN_PROGRESS is waited out on the same broker.
All of it within the client's ``request_timeout``, through one :class:`~trio_brod._backoff.Retry`.
Every other error is the caller's: it stays in the response, where the member's state
machine reads it (an UNKNOWN_MEMBER_ID means something to a member, not to a coordinator).

Sending a request again after a coordinator move is safe for every group request: each is
either idempotent (a commit of the same offsets, a heartbeat, a fetch) or refused by the new
coordinator in a way the member understands (a JoinGroup from a member id it lost).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import trio

from trio_brod._backoff import Retry
from trio_brod._cluster import ConnectionPool, ConnectionSlot, CoordinatorType, MetadataCache
from trio_brod._exceptions import BrokerConnectionError
from trio_brod._metadata import BrokerMetadata
from trio_brod._net import Connection
from trio_brod.protocol.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    KafkaError,
    NotCoordinatorError,
    for_code,
)

__all__ = ["GroupCoordinator", "coordinator_error"]

#: Answers meaning the broker asked is not (or no longer) the group's coordinator.
_MOVED: Final = (NotCoordinatorError, CoordinatorNotAvailableError)
#: Answers this module handles itself; every other error code is the caller's.
_OURS: Final = (*_MOVED, CoordinatorLoadInProgressError)


def coordinator_error(response: Any, **context: Any) -> KafkaError | None:
    """The first coordinator error (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
    COORDINATOR_LOAD_IN_PROGRESS) anywhere in a group response, or None.

    Group responses carry their errors in three shapes: one top-level ``error_code``
    (JoinGroup, Heartbeat, OffsetFetch before v8), one per group (OffsetFetch v8+) or one per
    partition (OffsetCommit, OffsetFetch's partitions). All are looked at: a coordinator
    that moved answers OffsetCommit with NOT_COORDINATOR on every partition.
    """
    for code in _error_codes(response):
        if code:
            error = for_code(code)(**context)
            if isinstance(error, _OURS):
                return error
    return None


def _error_codes(response: Any) -> list[int]:
    codes = [getattr(response, "error_code", 0)]
    for container in (response, *getattr(response, "groups", ())):
        codes.append(getattr(container, "error_code", 0))
        for topic in getattr(container, "topics", ()) or ():
            codes.extend(p.error_code for p in topic.partitions)
    return codes


class GroupCoordinator:
    """Requests to one group's coordinator, wherever it currently is.

    Args:
        pool: Where the connection to the coordinator comes from (the shared one to that
            broker).
        metadata: Where the coordinator is looked up (FindCoordinator), and whose
            ``config.request_timeout`` bounds each request's retries.
        group_id: The group.

    Several tasks of one member (heartbeats, commits, the join) may send at once. They
    share the lookup: when one finds the coordinator moved, the others wait for the new
    address instead of each asking for it.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        metadata: MetadataCache,
        group_id: str,
        *,
        key_type: int = CoordinatorType.GROUP,
    ) -> None:
        self.pool = pool
        # CoordinatorType.TRANSACTION makes this a transactional id's coordinator (the
        # transactional producer's requests move and load the same way).
        self.key_type = key_type
        self.metadata = metadata
        self.group_id = group_id
        self._broker: BrokerMetadata | None = None
        self._lookup = trio.Lock()
        # With own_connection: a connection of this coordinator's own, and its broker.
        self._slot: ConnectionSlot | None = None
        self._slot_broker: BrokerMetadata | None = None

    def __repr__(self) -> str:
        return f"<GroupCoordinator {self.group_id!r} at {self._broker}>"

    @property
    def broker(self) -> BrokerMetadata | None:
        """The coordinator as last found, or None when it must be looked up again."""
        return self._broker

    def mark_dead(self, broker: BrokerMetadata | None = None) -> None:
        """Forget the coordinator: the next request looks it up again.

        For callers that learnt from an answer of their own that the coordinator moved.
        With ``broker``, only that one is forgotten: a task that saw the old coordinator
        fail does not throw away the new one that another task just found.
        """
        if broker is None or broker == self._broker:
            self._broker = None

    async def find(self) -> BrokerMetadata:
        """The coordinator, looked up (FindCoordinator) unless already known.

        Raises:
            KafkaError: The lookup failed (GroupAuthorizationFailedError, or
                CoordinatorNotAvailableError that outlasted ``request_timeout``).
            BrokerConnectionError: No broker could be asked.
        """
        if self._broker is None:
            async with self._lookup:
                if self._broker is None:
                    self._broker = await self.metadata.find_coordinator(
                        self.group_id, self.key_type
                    )
        return self._broker

    def own_connection(self) -> None:
        """From now on, talk to the coordinator over a connection of this object's own
        (reopened after a coordinator move); :meth:`close` hands it back to the pool.

        A broker answers a connection's requests in order, and holds a JoinGroup until
        every member has rejoined (up to the rebalance timeout): on the pool's shared
        connection that would hold up everything queued behind it, another member's
        heartbeats (which then time out of the group) and the client's produce requests
        alike. Java's consumer also keeps a connection of its own to its coordinator.

        The connection is a spare the pool kept, if it has one to that broker, or a new
        one; either way it lives in the pool's nursery, so that when this member is done
        with it and nothing is in flight on it, the client's next member takes it over
        without a new connection and handshake (:meth:`ConnectionPool.give_back`).
        """
        self._slot = ConnectionSlot()
        self._slot_broker = None

    def close(self) -> None:
        """Hand the connection of :meth:`own_connection` back to the pool, which keeps it
        if it is idle and closes it otherwise (later requests share the pool's)."""
        slot, self._slot = self._slot, None
        if slot is not None and slot.connection is not None:
            self.pool.give_back(slot.connection)

    async def _connect(self, broker: BrokerMetadata) -> Connection:
        slot = self._slot
        if slot is None:
            return await self.pool.get(broker.host, broker.port)
        if self._slot_broker != broker:
            # The coordinator moved: the connection to the old one goes.
            if slot.connection is not None:
                slot.connection.close()
            slot.connection, slot.error = self.pool.take_spare(broker.host, broker.port), None
            self._slot_broker = broker
        return await self.pool.connect_slot(slot, broker.host, broker.port, self.pool.nursery)

    async def connection(self) -> tuple[BrokerMetadata, Connection]:
        """The coordinator and the connection to it (the pool's shared one, unless
        :meth:`own_connection`)."""
        broker = await self.find()
        return broker, await self._connect(broker)

    async def request(
        self,
        message: Any,
        *,
        min_version: int | None = None,
        max_version: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (a per-request timeout, not a deadline)
    ) -> Any:
        """Send a request to the coordinator; return its response.

        Lost connections and coordinator moves are retried (see the module docstring)
        until the client's ``request_timeout``; any other error is left in the response.

        Args:
            message: The request.
            min_version: The lowest version the caller can read (default: the class's).
            max_version: The highest version to send (default: the highest stable one).
            timeout: Seconds to wait for each response (default: ``request_timeout``);
                JoinGroup needs more (the broker holds it up to the rebalance timeout).

        Raises:
            BrokerConnectionError: The coordinator could not be reached in time, or
                speaks no version in range (UnsupportedVersion).
            KafkaError: A coordinator error that outlasted ``request_timeout``, or the
                lookup's own failure (GroupAuthorizationFailedError).
        """
        return await self.request_versioned(
            type(message),
            lambda _version: message,
            min_version=min_version,
            max_version=max_version,
            timeout=timeout,
        )

    async def request_versioned(
        self,
        api: Any,
        build: Callable[[int], Any],
        *,
        min_version: int | None = None,
        max_version: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (a per-request timeout, not a deadline)
    ) -> Any:
        """:meth:`request`, for a request whose fields depend on its version.

        ``build(version)`` makes the request once the version is known, for each attempt
        (a new coordinator may speak other versions): OffsetCommit carries a group instance
        id only from v7, OffsetFetch asks for stable offsets only from v7.
        """
        retry = Retry(self.metadata.config.request_timeout)
        low = api.MIN_VERSION if min_version is None else min_version
        high = api.MAX_STABLE_VERSION if max_version is None else max_version
        while True:
            broker: BrokerMetadata | None = None
            try:
                broker = await self.find()
                connection = await self._connect(broker)
                version = connection.version_for(api.API_KEY, high, low)
                response = await connection.request(build(version), version, timeout=timeout)
            except BrokerConnectionError as exc:
                if not exc.retriable or retry.expired:
                    raise
                self.mark_dead(broker)
                await retry.wait()
                continue
            except KafkaError as exc:
                # The lookup itself failed for good (it retries what is worth retrying).
                if not isinstance(exc, _OURS) or retry.expired:
                    raise
                await retry.wait()
                continue
            error = coordinator_error(response, group_id=self.group_id)
            if error is None:
                return response
            if isinstance(error, _MOVED):
                self.mark_dead(broker)
            if retry.expired:
                raise error
            await retry.wait()
