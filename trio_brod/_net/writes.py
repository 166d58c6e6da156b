"""Writing a connection's frames, and failing requests that will never be answered.

The connection's writer takes what is queued and hands it here as :data:`Write` pairs: a
frame, and the handles of requests that get no response (``acks=0`` produces), which are
complete once their frame is written. A write that fails fails those handles at once:
they were taken off the queue, so closing the connection would not find them.

Every request failed for a connection problem gets an exception object of its own
(:func:`again`), so that each caller raises, and adds to the traceback of, its own copy.
"""

from __future__ import annotations

import trio

from trio_brod._exceptions import BrokerConnectionError, ConnectionLost
from trio_brod._net.pending import Part, Queued, Write
from trio_brod._util import describe

__all__ = ["again", "fail_queued", "write_frames"]

#: Frames smaller than this are joined before writing, so many small requests cost one write.
COALESCE_LIMIT = 64 * 1024


async def write_frames(stream: trio.abc.Stream, writes: list[Write], address: str) -> None:
    """Write frames, small ones joined; complete the requests that get no response.

    Raises:
        Whatever ``send_all`` raises, once the unanswered requests are failed.
    """
    try:
        if len(writes) == 1:
            await stream.send_all(writes[0][0])
        else:
            chunk: list[bytes] = []
            size = 0
            for frame, _ in writes:
                if chunk and size + len(frame) > COALESCE_LIMIT:
                    await stream.send_all(b"".join(chunk))
                    chunk = []
                    size = 0
                chunk.append(frame)
                size += len(frame)
            await stream.send_all(b"".join(chunk))
    except BaseException as exc:
        reason = ConnectionLost(address, f"write failed: {describe(exc)}")
        for _, unanswered in writes:
            if isinstance(unanswered, list):
                for handle in unanswered:
                    handle.fail(again(reason))
            elif unanswered is not None:
                unanswered.fail(again(reason))
        raise
    for _, unanswered in writes:
        if unanswered is not None:
            if isinstance(unanswered, list):
                for handle in unanswered:
                    handle.finish()
            else:
                unanswered.finish()


def fail_queued(item: Queued, reason: BrokerConnectionError) -> None:
    """Fail a request taken off the writer's queue that will never be written."""
    handle = item.pending if isinstance(item, Part) else item[1]
    if handle is not None:
        handle.fail(again(reason))


def again(reason: BrokerConnectionError) -> BrokerConnectionError:
    """A fresh copy of a connection error, so each caller raises its own exception object."""
    error = type(reason)(reason.address, reason.reason)
    error.__cause__ = reason.__cause__
    return error
