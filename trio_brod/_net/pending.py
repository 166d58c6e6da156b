"""What a connection keeps about a request between ``send`` and its response.

* :class:`PendingResponse` is the caller's handle:
  :meth:`~trio_brod._net.connection.Connection.send` returns one, and the connection's reader
  (or writer) completes it.
* A :class:`Part` is a one-partition Produce or Fetch request queued unencoded, so that the
  writer can merge it with others (:mod:`trio_brod._net.merge`) or hold it back while another
  fetch is in flight.
* A :class:`MergedRequest` is a request written for several parts, waiting for its response
  to be split among them.

Both the connection and the merging code use these types, and neither imports the other
for them: this module is below both.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Final

import trio

from trio_brod.protocol import FetchRequest

__all__ = ["MergedRequest", "Part", "PendingResponse", "Queued", "Write"]

_FETCH: Final = FetchRequest.API_KEY


class PendingResponse:
    """A request on its way: written (or queued to be), its response not yet read.

    :meth:`Connection.send <trio_brod.lowlevel.Connection.send>` returns one. Most callers use
    :meth:`Connection.request <trio_brod.lowlevel.Connection.request>`, which sends and waits in one
    step; workers that keep several requests in flight hold these handles and look at
    them as responses arrive (they come back in order).

    Attributes:
        response: The decoded response, once done without error.
        error: The request's error, once done with one.
        done: Set when the request is done.
        abandoned: True once the caller stopped waiting for the response.
        parts: How many one-partition requests went out in the request that carried this
            one (1 when it went alone, or has not been written yet).
        size: The bytes of the response frame, size prefix included (of the merged
            response, when ``parts`` > 1); 0 until it is read.
    """

    __slots__ = (
        "abandoned",
        "done",
        "error",
        "on_done",
        "parts",
        "response",
        "response_cls",
        "size",
        "version",
    )

    def __init__(
        self, response_cls: Any, version: int, on_done: Callable[[], object] | None
    ) -> None:
        self.response_cls = response_cls
        self.version = version
        self.on_done = on_done
        self.done = trio.Event()
        self.response: Any = None
        self.error: BaseException | None = None
        # The caller gave up (timed out or was cancelled); drop the response when it comes.
        self.abandoned = False
        self.parts = 1
        # The response frame's bytes (size prefix included), once read (for the hooks).
        self.size = 0

    def result(self) -> Any:
        """The decoded response; raises the request's error. Only call once done."""
        if not self.done.is_set():
            raise RuntimeError("the response has not arrived yet")
        if self.error is not None:
            raise self.error
        return self.response

    def finish(self) -> None:
        """Mark the request done and wake its caller (``done``, then ``on_done``).

        For the connection's use, once it has set ``response`` or ``error``: callers only
        wait on ``done`` or pass ``on_done``.
        """
        self.done.set()
        if self.on_done is not None:
            self.on_done()

    def fail(self, error: BaseException) -> None:
        """Complete the request with ``error``, unless it is done or its caller gave up.

        For the connection's use (a connection that closed, a request that could not be
        encoded, a merged response that could not be decoded).
        """
        if not self.abandoned and not self.done.is_set():
            self.error = error
            self.finish()


class Part:
    """A one-partition request waiting in a connection's queue, not yet encoded.

    Attributes:
        key: What must be equal for two parts to share a request: the API key, the version,
            whether a response is expected, and every request-level field.
        address: The part's (topic, partition); a request holds each address at most once.
            The topic is its name, or for Fetch v13+ its id (the name is not sent).
        message: The one-partition request.
        pending: The caller's handle, completed with this part's share of the response.
        expect_response: False for a Produce with ``acks=0``.
        size: About how many bytes the part adds to a request: its record batch for a
            Produce (what :data:`~trio_brod._net.merge.PRODUCE_MERGE_LIMIT` counts), a
            nominal few for a Fetch.
    """

    __slots__ = ("address", "expect_response", "key", "message", "pending", "size")

    def __init__(
        self,
        key: tuple[Hashable, ...],
        address: tuple[Hashable, int],
        message: Any,
        pending: PendingResponse,
        expect_response: bool,
        size: int,
    ) -> None:
        self.key = key
        self.address = address
        self.message = message
        self.pending = pending
        self.expect_response = expect_response
        self.size = size

    def __repr__(self) -> str:
        return f"<Part {type(self.message).__name__} {self.address}>"

    @property
    def is_fetch(self) -> bool:
        """Whether the part is a Fetch request (which a connection keeps one at a time in
        flight: see :class:`~trio_brod._net.connection.Connection`)."""
        return self.key[0] == _FETCH


class MergedRequest:
    """A request written for several parts, waiting for its response to be split."""

    __slots__ = ("parts", "response_cls", "version")

    def __init__(self, parts: list[Part], response_cls: Any, version: int) -> None:
        self.parts = parts
        self.response_cls = response_cls
        self.version = version


#: What the writer's queue holds: an encoded frame with, for a request that gets no
#: response, the handle to complete once written; or a part, encoded by the writer.
Queued = tuple[bytes, PendingResponse | None] | Part
#: A frame to write, with what to complete once it is written (requests without a response).
Write = tuple[bytes, PendingResponse | list[PendingResponse] | None]
