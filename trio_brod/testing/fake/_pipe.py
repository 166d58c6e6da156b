"""An in-process byte stream pair: the fake's transport for clients that need no sockets.

A request to the fake over loopback TCP costs two ``send`` and two ``recv`` system calls,
and the event loop polls for them; an example of a hypothesis property makes about thirty
requests, so that is a large part of its time. :func:`stream_pair` joins a client and a
fake broker inside the Trio run instead: bytes written to one end are read from the other,
in order, exactly as over a socket (the client and the broker still speak the whole wire
protocol), with nothing but a task wake-up in between.

Each direction's buffer is unbounded: the fake broker reads whatever arrives as soon as it
can, and the client reads its answers, so neither side needs back-pressure. Both ends
behave like Trio's own streams where it matters to a client: every call is a checkpoint,
reading after the other end closed returns ``b""``, writing to it raises
:class:`trio.BrokenResourceError`, using an end after closing it raises
:class:`trio.ClosedResourceError`, and two tasks sending (or receiving) on one end at once
raise :class:`trio.BusyResourceError`.

A reader can also have what arrives handed to it as it is written (:meth:`PipeStream.deliver_to`):
a client connection then needs no reader task, and a response wakes its caller from the fake
broker's own write, one task step sooner.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import trio

__all__ = ["PipeStream", "stream_pair"]


class _Waiter:
    """The one task waiting to read a direction (receive_some is exclusive), woken directly.

    A :class:`trio.lowlevel.ParkingLot` would do, but it keeps an ordered dict of waiters
    and a cancellation hook per park; one request to the fake parks a reader once each way,
    so this is measurable in a property's run. Same interface as the lot's two methods used
    here: :meth:`park` sleeps until :meth:`unpark_all` (or cancellation, which raises).
    """

    __slots__ = ("task",)

    def __init__(self) -> None:
        self.task: trio.lowlevel.Task | None = None

    async def park(self) -> None:
        """Sleep until :meth:`unpark_all`; cancellable."""
        self.task = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort)

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        self.task = None
        return trio.lowlevel.Abort.SUCCEEDED

    def unpark_all(self) -> None:
        """Wake the parked task, if there is one."""
        task = self.task
        if task is not None:
            self.task = None
            trio.lowlevel.reschedule(task)


class _Direction:
    """The bytes on their way from one end to the other, and who waits for them."""

    __slots__ = ("data", "lot", "reader_closed", "receiver", "writer_closed")

    def __init__(self) -> None:
        self.data = bytearray()
        self.receiver: Callable[[bytes], object] | None = None
        self.lot = _Waiter()
        self.writer_closed = False  # the reader sees end of stream once data runs out
        self.reader_closed = False  # the writer's next send raises BrokenResourceError


class PipeStream(trio.abc.Stream):
    """One end of :func:`stream_pair` (see the module docstring)."""

    def __init__(self, inbound: _Direction, outbound: _Direction) -> None:
        self._in = inbound
        self._out = outbound
        self._closed = False
        self._sending = False
        self._receiving = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Hand ``data`` to the other end (it never blocks: the buffer is unbounded)."""
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            self._put(data)
            await trio.lowlevel.cancel_shielded_checkpoint()
        finally:
            self._sending = False

    def send_nowait(self, data: bytes | bytearray | memoryview) -> None:
        """:meth:`send_all` without its checkpoint, for a task that checkpoints anyway (the
        fake broker's connection loop: it answers, then waits for the next request).

        Raises:
            trio.ClosedResourceError: This end was closed.
            trio.BrokenResourceError: The other end was closed.
            trio.BusyResourceError: Another task is in :meth:`send_all`.
        """
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        self._put(data)

    def _put(self, data: bytes | bytearray | memoryview) -> None:
        self._check_open()
        if self._out.reader_closed:
            raise trio.BrokenResourceError("the other end of the stream was closed")
        if data:
            out = self._out
            receiver = out.receiver
            if receiver is not None:
                receiver(bytes(data))
                return
            out.data += data
            out.lot.unpark_all()

    async def wait_send_all_might_not_block(self) -> None:
        """Return at once: :meth:`send_all` never blocks."""
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        await trio.lowlevel.checkpoint()
        self._check_open()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Up to ``max_bytes`` (default: all) of what the other end wrote, waiting for some;
        ``b""`` once the other end is closed and everything it wrote has been read."""
        if max_bytes is not None:
            max_bytes = operator.index(max_bytes)
            if max_bytes < 1:
                raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
        if self._receiving or self._in.receiver is not None:
            raise trio.BusyResourceError("another task is already receiving on this stream")
        self._receiving = True
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            self._check_open()
            inbound = self._in
            if inbound.data or inbound.writer_closed:
                await trio.lowlevel.cancel_shielded_checkpoint()
            else:
                while not (inbound.data or inbound.writer_closed or self._closed):
                    await inbound.lot.park()
            self._check_open()
            data = inbound.data
            if max_bytes is None or max_bytes >= len(data):
                chunk = bytes(data)
                data.clear()
            else:
                chunk = bytes(data[:max_bytes])
                del data[:max_bytes]
            return chunk
        finally:
            self._receiving = False

    def deliver_to(self, receiver: Callable[[bytes], object] | None) -> None:
        """Hand what the other end writes to ``receiver``, from the writer's own call.

        ``receiver(data)`` is called with each write (what had arrived already first), and
        ``receiver(b"")`` once the other end closes; None goes back to :meth:`receive_some`.
        A client connection uses it to read its responses without a reader task
        (:class:`~trio_brod._net.handshake.DeliversNowait`). Whatever the receiver raises
        goes to the writer.

        Raises:
            trio.ClosedResourceError: This end was closed.
            trio.BusyResourceError: A task is in :meth:`receive_some`.
        """
        self._check_open()
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this stream")
        inbound = self._in
        inbound.receiver = receiver
        if receiver is None:
            return
        if inbound.data:
            chunk = bytes(inbound.data)
            inbound.data.clear()
            receiver(chunk)
        if inbound.writer_closed:
            receiver(b"")

    async def aclose(self) -> None:
        """Close this end: the other end reads what is left and then ``b""``, and its
        writes fail; a task of ours waiting to receive gets ClosedResourceError."""
        self.close()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """:meth:`aclose` without its checkpoint, for code that cannot wait (a fake broker
        closing a connection from inside the client's write)."""
        if not self._closed:
            self._closed = True
            self._out.writer_closed = True
            self._out.lot.unpark_all()
            receiver = self._out.receiver
            if receiver is not None:
                self._out.receiver = None
                receiver(b"")
            self._in.receiver = None
            self._in.reader_closed = True
            self._in.data.clear()
            self._in.lot.unpark_all()

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this end of the stream was closed")


def stream_pair() -> tuple[PipeStream, PipeStream]:
    """Two connected in-process streams: what one sends, the other receives."""
    there, back = _Direction(), _Direction()
    return PipeStream(back, there), PipeStream(there, back)
