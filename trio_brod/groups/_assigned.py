"""One partition assigned to a group member for one generation: :class:`AssignedPartition`.

It is what the member hands to whoever consumes the partition (the group subscriber's
worker, or a custom consumer built on :func:`~trio_brod.open_group_member`), and what a
revocation reaches into:

* ``cancel_scope``: the hard stop. A worker runs inside it (``with assigned:``); the member
  cancels it when the partition is lost (at once, nothing committed), or when a graceful
  revocation has waited ``rebalance_timeout`` for the worker in vain.
* :attr:`AssignedPartition.revoked`: the soft stop, set when a graceful revocation starts.
  The worker finishes the message it is handling and stops before the next one; a wait for
  the next message inside :meth:`AssignedPartition.interruptible` is cut short at once.
* :meth:`AssignedPartition.ack` marks what was handled: the member commits ``offset + 1``
  (the next message, as Kafka commits) at its next commit, and before giving the partition
  up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType

import trio

__all__ = ["AssignedPartition", "wait_all_finished"]


class AssignedPartition:
    """A partition owned by this member in one generation (see the module docstring).

    Attributes:
        topic: The topic.
        partition: The partition.
        generation_id: The generation it is owned in; commits for it carry this. With
            cooperative rebalancing a partition the member keeps moves on to each new
            generation (and a revoked one is committed in the generation revoking it).
        member_id: The member id it is owned by.
        begin_offset: Where consumption starts: the group's committed offset (or the
            consumer-managed callback's), None if there was none.
        committed: The offset last committed for it (the next message to consume), or None.
        position: The offset to commit next (last acknowledged offset + 1), or None.
        high_watermark: The partition's high watermark as last seen by its consumer (set by
            the worker; used for the lag in :meth:`GroupMember.health`).
        cancel_scope: Cancelled when the partition is lost, or when a revocation has waited
            ``rebalance_timeout`` for the worker.
    """

    def __init__(
        self,
        topic: str,
        partition: int,
        generation_id: int,
        member_id: str,
        begin_offset: int | None,
        commit: Callable[[AssignedPartition], Awaitable[None]],
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.generation_id = generation_id
        self.member_id = member_id
        self.begin_offset = begin_offset
        self.committed = begin_offset
        self.position: int | None = None
        self.high_watermark: int | None = None
        self.cancel_scope = trio.CancelScope()
        #: Called with each acknowledged offset (the group subscriber acks its prefetch
        #: window there); None when nobody needs to know.
        self.on_ack: Callable[[int], None] | None = None
        self._commit = commit
        self._revoked = trio.Event()
        # Mirrors ``_revoked``: read after every message, and a bool is cheaper to read.
        self._revoking = False
        self._lost = False
        self._entered = False
        self._finished = trio.Event()
        self._interruptible: set[trio.CancelScope] = set()

    def __repr__(self) -> str:
        state = "lost" if self._lost else "revoked" if self.revoked else "owned"
        return (
            f"<AssignedPartition {self.topic}[{self.partition}] generation="
            f"{self.generation_id} {state} position={self.position}>"
        )

    @property
    def topic_partition(self) -> tuple[str, int]:
        """``(topic, partition)``."""
        return (self.topic, self.partition)

    @property
    def revoked(self) -> bool:
        """True once the partition is being given up: stop before the next message."""
        return self._revoking

    @property
    def lost(self) -> bool:
        """True if the partition was lost: another member may own it; nothing is committed."""
        return self._lost

    async def wait_revoked(self) -> None:
        """Wait until the partition is being given up (revoked or lost)."""
        await self._revoked.wait()

    # -- the worker's side ----------------------------------------------------------------

    def __enter__(self) -> AssignedPartition:
        """Run the worker inside ``cancel_scope``; the member waits for it to exit."""
        self._entered = True
        self.cancel_scope.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            return self.cancel_scope.__exit__(exc_type, exc, tb)
        finally:
            self._finished.set()

    @contextmanager
    def interruptible(self) -> Iterator[trio.CancelScope]:
        """A scope for waiting between messages, cancelled when the revocation starts.

        Wrap the wait for the next message in it, and check :attr:`revoked` after: a
        worker idle in that wait stops at once, one busy with a message finishes it.
        """
        with trio.CancelScope() as scope:
            if self.revoked:
                scope.cancel()
            self._interruptible.add(scope)
            try:
                yield scope
            finally:
                self._interruptible.discard(scope)

    def ack(self, offset: int) -> None:
        """Mark every message up to ``offset`` as handled: ``offset + 1`` is committed at the
        member's next commit (and before the partition is given up)."""
        if self.position is None or offset + 1 > self.position:
            self.position = offset + 1
        if self.on_ack is not None:
            self.on_ack(offset)

    async def commit(self, offset: int | None = None) -> None:
        """Acknowledge up to ``offset`` (if given), then commit this partition now and wait.

        Raises:
            KafkaError: The commit was refused (a rebalance is in progress, the generation
                is over: see :meth:`GroupMember.commit`).
        """
        if offset is not None:
            self.ack(offset)
        await self._commit(self)

    # -- the member's side ------------------------------------------------------------------

    def start_revoke(self) -> None:
        """A graceful revocation starts: stop idle waits; the worker stops after its message."""
        self._revoking = True
        self._revoked.set()
        for scope in list(self._interruptible):
            scope.cancel()

    def lose(self) -> None:
        """The partition is lost: cancel the worker now."""
        self._lost = True
        self.start_revoke()
        self.cancel_scope.cancel()

    @property
    def entered(self) -> bool:
        """Whether a worker entered the partition's scope (it may have left it since)."""
        return self._entered

    @property
    def finished(self) -> bool:
        """Whether no worker is in the partition's scope: the one that entered it left, or
        none entered."""
        return self._finished.is_set() or not self._entered

    async def wait_finished(self) -> None:
        """Wait for the worker to leave its scope (at once if none entered it)."""
        if self._entered:
            await self._finished.wait()


async def wait_all_finished(
    partitions: Sequence[AssignedPartition],
    timeout: float,  # noqa: ASYNC109 (rebalance_timeout: it cancels the workers, not us)
) -> None:
    """Wait for every partition's worker to leave its scope; cancel those still in it after
    ``timeout`` seconds, and wait for them to leave.

    A partition no worker ever entered has nothing to wait for: its scope is cancelled, so
    that a worker entering it late stops at once. One task waits for them all, in turn,
    against one deadline: a task per partition would cost as many task switches.
    """
    for assigned in partitions:
        if not assigned.entered:
            assigned.cancel_scope.cancel()
    await trio.lowlevel.checkpoint()
    with trio.move_on_after(timeout):
        for assigned in partitions:
            if not assigned.finished:  # else waiting would only checkpoint again
                await assigned.wait_finished()
    late = [assigned for assigned in partitions if not assigned.finished]
    for assigned in late:
        assigned.cancel_scope.cancel()
    for assigned in late:
        await assigned.wait_finished()
