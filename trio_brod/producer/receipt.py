"""Delivery receipts: what ``produce`` hands back once a message is accepted.

brod answers an asynchronous produce with a call reference and later sends the caller a
``#brod_produce_reply{}`` (or runs its ``produce_cb``). A :class:`DeliveryReceipt` is both:
``await receipt`` gives the offset (or raises why the message was not written), and
``receipt.add_done_callback(fn)`` runs ``fn(receipt)`` when the outcome is known.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Generator
from typing import Any

import trio

__all__ = ["DeliveryReceipt", "raise_callback_errors"]

_UNSET = object()
_Callback = Callable[["DeliveryReceipt"], object]


class DeliveryReceipt:
    """The outcome of one produce call: an offset, or the error that stopped it.

    Awaiting a receipt waits for the broker's acknowledgement and returns the offset of the
    message (for a batch, the offset of its first message). It raises the error that failed
    the delivery: a :class:`~trio_brod.KafkaError` from the broker after retries ran out,
    a :class:`~trio_brod.ProducerClosed` if the client closed first, and so on.

    The offset is ``-1`` when it cannot be known: with ``required_acks=0`` the broker sends
    no acknowledgement, so the receipt completes when the request is written; and a retry
    that an idempotent producer's broker recognises as a duplicate of a batch written too
    long ago to remember its offset (DUPLICATE_SEQUENCE_NUMBER) is written, but where is
    not said.

    A failed receipt may still have been written if the error was about the answer rather
    than the request (the connection broke, or no answer came in time) and the retries ran
    out: the usual uncertainty of any client. With idempotence, retries never write a
    message twice.

    Attributes:
        topic: The topic the message went to.
        partition: The partition the message went to.
    """

    __slots__ = ("_callbacks", "_error", "_event", "_offset", "partition", "topic")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self._offset: Any = _UNSET
        self._error: BaseException | None = None
        self._event: trio.Event | None = None
        # One callback as itself (the common case, and no list to allocate), several in
        # a list.
        self._callbacks: _Callback | list[_Callback] | None = None

    def __repr__(self) -> str:
        if self._error is not None:
            state = f"failed: {self._error!r}"
        elif self._offset is not _UNSET:
            state = f"offset={self._offset}"
        else:
            state = "pending"
        return f"<DeliveryReceipt {self.topic}[{self.partition}] {state}>"

    def done(self) -> bool:
        """True once the outcome (offset or error) is known."""
        return self._error is not None or self._offset is not _UNSET

    def result(self) -> int:
        """The offset, without waiting.

        Raises:
            RuntimeError: The outcome is not known yet.
            Exception: Whatever failed the delivery.
        """
        if self._error is not None:
            raise _fresh(self._error)
        if self._offset is _UNSET:
            raise RuntimeError(f"{self!r} is not done yet")
        offset: int = self._offset
        return offset

    def exception(self) -> BaseException | None:
        """The error that failed the delivery, None if it succeeded or is still pending."""
        return self._error

    def add_done_callback(self, callback: Callable[[DeliveryReceipt], object]) -> None:
        """Call ``callback(receipt)`` once the outcome is known (at once if it already is).

        Callbacks run synchronously in the producer's worker task (in the caller's task if
        the receipt is already done), so keep them short and never block: to do async work,
        hand the receipt to a task of yours through a memory channel.

        An exception raised by a callback is not swallowed. Every other callback of every
        receipt in the same acknowledgement still runs; then the error ends the producer
        worker, the receipts it still held fail with :class:`~trio_brod.ProducerClosed`
        (whose ``__cause__`` is that error), and the client's ``async with`` block
        re-raises it. For an already-done receipt, the error comes out of this call.
        """
        if self.done():
            callback(self)
        elif self._callbacks is None:
            self._callbacks = callback
        elif isinstance(self._callbacks, list):
            self._callbacks.append(callback)
        else:
            self._callbacks = [self._callbacks, callback]

    async def wait(self) -> int:
        """Wait for the outcome and return the offset (raising the error, if it failed)."""
        if not self.done():
            if self._event is None:
                self._event = trio.Event()
            await self._event.wait()
        else:
            await trio.lowlevel.checkpoint()
        return self.result()

    def __await__(self) -> Generator[Any, None, int]:
        return self.wait().__await__()

    # ---------------------------------------------------------------- producer side

    def resolve(self, offset: int) -> None:
        """Record the offset and wake whoever waits: for the producer that owns the receipt.

        Applications never call this (nor :meth:`fail`): the partition producer that handed
        the receipt out completes it, once, when the broker answers. A second completion is
        ignored. Done-callbacks run here, in the caller's task; what they raise comes out.
        """
        # Called once per message by the worker: done() and _finish() inlined.
        if self._offset is not _UNSET or self._error is not None:
            return
        self._offset = offset
        if self._event is not None or self._callbacks is not None:
            self._finish()

    def fail(self, error: BaseException) -> None:
        """Record why delivery failed and wake whoever waits: for the producer that owns
        the receipt (see :meth:`resolve`)."""
        if self.done():
            return
        self._error = error
        self._finish()

    def _finish(self) -> None:
        if self._event is not None:
            self._event.set()
        callbacks, self._callbacks = self._callbacks, None
        if callbacks is None:
            return
        if not isinstance(callbacks, list):
            callbacks(self)  # what it raises is the only error
            return
        errors: list[Exception] = []
        for callback in callbacks:
            try:
                callback(self)
            except Exception as exc:
                errors.append(exc)
        raise_callback_errors(errors)


def raise_callback_errors(errors: list[Exception]) -> None:
    """Raise what done-callbacks raised, if anything: one error as itself, several together.

    Whoever completes receipts runs every callback first and calls this afterwards, so that
    one failing callback never keeps other receipts from completing.
    """
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ExceptionGroup("receipt done-callbacks raised", errors)


def _fresh(error: BaseException) -> BaseException:
    """A copy of a shared error, so that raising it in many tasks does not pile up
    tracebacks on one object (a failed batch fails many receipts with one error)."""
    try:
        clone = copy.copy(error)
    except Exception:
        return error
    clone.__cause__ = error.__cause__
    clone.__traceback__ = None
    return clone
