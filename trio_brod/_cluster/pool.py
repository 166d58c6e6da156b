"""The connection pool: every broker connection a client shares, and the rules for opening them.

Workers (producers, consumers, group members, transactions) reach brokers through a
:class:`ConnectionPool`, never through :class:`~trio_brod.Client`. The pool knows addresses
and connections, nothing about topics; the metadata cache (:mod:`trio_brod._cluster.metadata`)
sits on top of it and tells it which brokers exist.

Its rules are brod's:

* one shared connection per broker address, opened on first use by one caller while the
  others wait for it (:meth:`ConnectionPool.get`);
* after a failure, the same error comes back at once for ``reconnect_cool_down`` seconds,
  without a new attempt, so a dead broker does not slow every caller down (brod's
  ``{dead_since, ...}``);
* private connections (:meth:`ConnectionPool.open_private`) for workers that must not share,
  at most ``_MAX_OPENING`` being opened to one broker at a time;
* a private connection its worker is done with may be handed back
  (:meth:`ConnectionPool.give_back`) when nothing is in flight on it; the next worker that
  needs one to that broker (:meth:`ConnectionPool.take_spare`) gets it, without a new
  connection and handshake. A group member's connection to its coordinator is reused that
  way by the next member of the same client.

Every time here is read from Trio's clock, so ``MockClock`` drives the cool-down.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import trio

from trio_brod._backoff import now
from trio_brod._config import ClientConfig
from trio_brod._exceptions import (
    BrokerConnectionError,
    ClientClosed,
    ConnectionFailed,
    ConnectionLost,
    RequestTimedOut,
)
from trio_brod._log import Repeats, connection_log
from trio_brod._net import Connection, mechanism_factory
from trio_brod.observe import _hooks as observe

__all__ = ["ConnectionPool", "ConnectionSlot"]

#: Private connections opened to one broker at a time (see ConnectionPool.open_private).
_MAX_OPENING = 8
#: Idle private connections kept for reuse, per broker (see ConnectionPool.give_back).
_MAX_SPARE = 4


class ConnectionSlot:
    """A place for one connection to a broker that its users open when needed, and what
    the last attempt to open it left behind (for ``reconnect_cool_down``).

    The pool keeps one per broker address for its shared connections; a broker's fetcher
    (``fetch_connection="broker"``) keeps one for each of its two connections.
    """

    __slots__ = ("connecting", "connection", "error", "failed_at")

    def __init__(self) -> None:
        self.connection: Connection | None = None
        #: Set while one caller opens the connection; the others wait for it.
        self.connecting: trio.Event | None = None
        #: The last failure, and when (on Trio's clock).
        self.error: BrokerConnectionError | None = None
        self.failed_at = -math.inf


class ConnectionPool:
    """The shared and private connections of one client, living in the client's nursery.

    Args:
        bootstrap_servers: Where :meth:`any_connection` looks first.
        config: The client's config (timeouts, cool-down, TLS, SASL).
        nursery: Where shared connections' tasks run.
    """

    def __init__(
        self,
        bootstrap_servers: Sequence[tuple[str, int]],
        config: ClientConfig,
        nursery: trio.Nursery,
        hooks: Iterable[observe.Hook] = (),
    ) -> None:
        self.config = config
        #: The client's event hooks (its own ``hooks`` and the process-wide ones): every
        #: worker built on this pool emits its events through them (trio_brod.observe).
        self.hooks = observe.Hooks(hooks)
        self.bootstrap_servers = list(bootstrap_servers)
        self._nursery = nursery
        self._slots: dict[tuple[str, int], ConnectionSlot] = {}
        self._sasl = mechanism_factory(config)
        # Private connections being opened to each broker (see open_private).
        self._opening: dict[tuple[str, int], trio.Semaphore] = {}
        self._known: list[tuple[str, int]] = []
        # Idle private connections handed back, by broker address (see give_back).
        self._spare: dict[tuple[str, int], list[Connection]] = {}
        self._last_any: tuple[str, int] | None = None
        self._closed = False
        #: The client's guard against repeating the same failure in the log (shared by
        #: its workers): see :mod:`trio_brod._log`.
        self.repeats = Repeats()

    def __len__(self) -> int:
        """How many shared connections are open."""
        return sum(
            1 for s in self._slots.values() if s.connection is not None and not s.connection.closed
        )

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called: no connection opens any more."""
        return self._closed

    def raise_if_closed(self) -> None:
        """Raise :class:`~trio_brod.ClientClosed` once the pool is closed."""
        if self._closed:
            raise ClientClosed(f"client {self.config.client_id!r} is closed")

    def learn_brokers(self, addresses: Iterable[tuple[str, int]]) -> None:
        """Brokers the cluster has (from metadata), for :meth:`any_connection` to try."""
        self._known = list(addresses)

    async def get(self, host: str, port: int) -> Connection:
        """The shared connection to a broker, opened on first use.

        Raises:
            ConnectionFailed: The broker cannot be reached (now, or within the cool-down).
            ClientClosed: The pool is closed.
        """
        slot = self._slots.get((host, port))
        if slot is None:
            slot = self._slots[host, port] = ConnectionSlot()
        return await self.connect_slot(slot, host, port, self._nursery)

    async def connect_slot(
        self, slot: ConnectionSlot, host: str, port: int, nursery: trio.Nursery
    ) -> Connection:
        """The slot's connection, opened (in ``nursery``) if it has none that works.

        The rules of :meth:`get`: one caller opens, the others wait for it; within
        ``reconnect_cool_down`` of a failure, the failure comes back at once. Returns
        without a checkpoint when the connection is there.

        Raises:
            ConnectionFailed: The broker cannot be reached (now, or within the cool-down).
            ClientClosed: The pool is closed.
        """
        while True:
            self.raise_if_closed()
            connection = slot.connection
            if connection is not None:
                if not connection.closed:
                    return connection
                slot.connection = None
                reason = connection.close_reason
                if reason is not None and reason.retriable:
                    slot.error = reason
                    slot.failed_at = connection.closed_at or now()
            if slot.connecting is not None:
                await slot.connecting.wait()
                continue
            at = now()
            age = at - slot.failed_at
            retry_at = slot.failed_at + self.config.reconnect_cool_down
            if slot.error is not None and at < retry_at:
                # brod's cool-down: the last error again, at once, without a new attempt
                # (as a ConnectionFailed, or the kind of ConnectionFailed it was: SaslFailed).
                kind = type(slot.error) if isinstance(slot.error, ConnectionFailed) else None
                refusal = (kind or ConnectionFailed)(
                    slot.error.address,
                    f"{slot.error.reason} ({age:.2f}s ago; no new attempt within "
                    f"reconnect_cool_down={self.config.reconnect_cool_down}s)",
                )
                refusal.cool_down_left = retry_at - at
                refusal.retry_at = retry_at
                raise refusal from slot.error
            return await self._connect(slot, host, port, nursery)

    async def _connect(
        self, slot: ConnectionSlot, host: str, port: int, nursery: trio.Nursery
    ) -> Connection:
        slot.connecting = trio.Event()
        try:
            connection = await self.open_private(host, port, nursery)
        except BrokerConnectionError as exc:
            slot.error, slot.failed_at = exc, now()
            self.repeats.warning(
                connection_log,
                ("connect", host, port),
                "cannot connect to %s: %s",
                exc.address,
                exc.reason,
            )
            raise
        finally:
            slot.connecting.set()
            slot.connecting = None
        slot.connection, slot.error = connection, None
        if self.repeats.failing(("connect", host, port)):
            self.repeats.recovered(
                connection_log, ("connect", host, port), "connected to %s", connection.address
            )
        else:
            connection_log.info("connected to %s", connection.address)
        return connection

    async def open_private(self, host: str, port: int, nursery: trio.Nursery) -> Connection:
        """A new connection, living in ``nursery``, that nothing else shares.

        At most ``_MAX_OPENING`` are opened to one broker at a time. The consumers of a
        topic with hundreds of partitions each open one at once, and a broker's listen
        backlog (Kafka's ``socket.listen.backlog.size``, 50) drops the connection attempts
        that do not fit: the kernel tries them again only a second later, then three.
        """
        self.raise_if_closed()
        limit = self._opening.get((host, port))
        if limit is None:
            limit = self._opening[host, port] = trio.Semaphore(_MAX_OPENING)
        connection = Connection(host, port, self.config, self.hooks)
        async with limit:
            try:
                await nursery.start(self._run_connection, connection)
            except BrokerConnectionError as exc:
                if self.hooks.hooks:
                    observe.connection_failed(self.hooks, host, port, exc)
                raise
        if self.hooks.hooks:
            observe.connection_opened(self.hooks, host, port)
        return connection

    @property
    def nursery(self) -> trio.Nursery:
        """The client's nursery, where shared connections (and spares) live."""
        return self._nursery

    def take_spare(self, host: str, port: int) -> Connection | None:
        """An idle private connection to the broker that a worker handed back, or None.

        It lives in the pool's nursery (it was opened there: see :meth:`give_back`).
        """
        spares = self._spare.get((host, port))
        while spares:
            connection = spares.pop()
            if connection.idle:
                return connection
        return None

    def give_back(self, connection: Connection) -> None:
        """A worker is done with a private connection opened in :attr:`nursery`: keep it for
        the next worker if it is idle (nothing queued, nothing awaiting an answer), else
        close it. A connection with an answer still to come (an abandoned JoinGroup) must
        not be shared: its answer would be the next owner's first.
        """
        key = (connection.host, connection.port)
        spares = self._spare.setdefault(key, [])
        if self._closed or not connection.idle or len(spares) >= _MAX_SPARE:
            connection.close()
            return
        spares.append(connection)

    async def _run_connection(
        self, connection: Connection, *, task_status: trio.TaskStatus[Connection]
    ) -> None:
        try:
            await connection.run(sasl_mechanism=self._sasl, task_status=task_status)
        finally:
            if connection.closed_at is not None and self.hooks.hooks:
                reason = connection.close_reason
                observe.connection_closed(self.hooks, connection.host, connection.port, reason)
        reason = connection.close_reason
        if isinstance(reason, (ConnectionLost, RequestTimedOut)):
            # Every private connection to a broker that died closes at once: one line.
            self.repeats.warning(
                connection_log, ("lost", connection.address), "connection lost: %s", reason
            )

    async def any_connection(self) -> Connection:
        """A connection to some broker, for requests any broker can answer (metadata).

        The previous choice is reused while it works; otherwise the bootstrap servers are
        tried in turn, then the brokers learnt from metadata.

        Raises:
            ConnectionFailed: No broker is reachable; the message lists each one's reason.
        """
        candidates = list(self.bootstrap_servers) + self._known
        if self._last_any is not None:
            candidates.insert(0, self._last_any)
        errors: list[BrokerConnectionError] = []
        seen = set()
        for address in candidates:
            if address in seen:
                continue
            seen.add(address)
            try:
                connection = await self.get(*address)
            except BrokerConnectionError as exc:
                errors.append(exc)
                continue
            self._last_any = address
            return connection
        bootstrap = ",".join(f"{h}:{p}" for h, p in self.bootstrap_servers)
        # Of the same kind everywhere (a wrong password on every broker): keep that kind.
        kind = type(errors[0]) if len({type(e) for e in errors}) == 1 else ConnectionFailed
        if not issubclass(kind, ConnectionFailed):
            kind = ConnectionFailed
        reasons = "; ".join(str(e) for e in errors)
        error = kind(bootstrap, f"no broker reachable: {reasons}")
        # Every broker in its cool-down: nothing was tried, and a caller may wait for the
        # first to end rather than count a failed attempt.
        waits = [e.cool_down_left if isinstance(e, ConnectionFailed) else 0.0 for e in errors]
        if waits and min(waits) > 0:
            error.cool_down_left = min(waits)
            error.retry_at = min(
                e.retry_at for e in errors if isinstance(e, ConnectionFailed) and e.retry_at
            )
        raise error from errors[-1]

    def close(self) -> None:
        """Refuse new connections and close the shared ones (their tasks then end)."""
        self._closed = True
        for slot in self._slots.values():
            if slot.connection is not None:
                slot.connection.close()
        for spares in self._spare.values():
            for connection in spares:
                connection.close()
        self._spare.clear()
