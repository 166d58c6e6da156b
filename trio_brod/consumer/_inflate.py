"""Decompressing fetched batches in a worker thread, before they are delivered.

A consumer of compressed data spends a large part of its time in the codec: with zstd
batches of about 100 KB, about 0.17 s per million records, against about 0.28 s for
everything else trio-brod does (see docs/performance.rst). The codecs (cramjam's zstd, lz4
and snappy, and ``zlib``) release the GIL while they work, so that part can run on another
core. A partition worker therefore calls :func:`inflate_pending` before it delivers: the
large compressed batches waiting in its prefetch window are decompressed in a thread
(:meth:`RecordBatch.inflate <trio_brod.protocol.records.RecordBatch.inflate>`) while the
event loop goes on, typically with the subscriber reading the message set before them.
Records are still decoded in the subscriber's task, when it iterates (the decoder makes
Python objects and needs the GIL, so a thread would gain nothing there).

Which thread may do what: the worker thread only ever runs ``RecordBatch.inflate`` on batches
that nobody else can see yet (undelivered, in the window of the worker that waits for the
thread). Everything else stays on the event loop's thread. Small batches are decompressed
inline, when iterated, as before: a thread round trip costs more than it saves for them,
and latency would suffer.

Errors do not change place either: a batch whose decompression fails in the thread is left
as it was, and iterating it decompresses again and raises the same CorruptRecordError, in
the subscriber's task, as without the thread.
"""

from __future__ import annotations

import os
from collections.abc import Container, Iterable

import trio

from trio_brod.consumer._fetch import Run
from trio_brod.protocol.errors import ProtocolError
from trio_brod.protocol.records import RecordBatch

__all__ = [
    "INFLATE_THRESHOLD",
    "inflate",
    "inflate_pending",
    "needs_inflating",
    "ready_runs",
    "to_inflate",
]

#: Compressed batches at least this large (bytes on the wire) are decompressed in a thread.
#: A thread round trip costs some tens of µs of the event loop's time; a 16 KiB zstd batch
#: takes about as long to decompress, a 100 KB one (librdkafka's usual) about 170 µs.
INFLATE_THRESHOLD = 16 * 1024

# One limiter per Trio run, shared by every consumer of the process: threads beyond the
# cores left beside the event loop would only take turns.
_LIMITER: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("trio_brod_inflate")
_THREADS = max(1, min(4, (os.cpu_count() or 2) - 1))


def needs_inflating(batch: RecordBatch, threshold: int = INFLATE_THRESHOLD) -> bool:
    """Whether ``batch`` is worth decompressing in a thread: compressed, large, not done."""
    return batch.size >= threshold and not batch.inflated


def to_inflate(
    runs: Iterable[Run],
    threshold: int = INFLATE_THRESHOLD,
    skip: Container[RecordBatch] = (),
) -> list[RecordBatch]:
    """The batches of ``runs`` worth decompressing in a thread, each once, in order; not
    those in ``skip`` (they failed already)."""
    batches: list[RecordBatch] = []
    last = None
    for run in runs:
        batch = run.batch
        if batch is not last and needs_inflating(batch, threshold) and batch not in skip:
            batches.append(batch)
        last = batch
    return batches


def ready_runs(runs: Iterable[Run], skip: Container[RecordBatch] = ()) -> int:
    """How many of the first ``runs`` can be delivered: up to the first whose batch is
    still to be decompressed in a thread."""
    ready = 0
    for run in runs:
        batch = run.batch
        if needs_inflating(batch) and batch not in skip:
            break
        ready += 1
    return ready


def _limiter() -> trio.CapacityLimiter:
    try:
        return _LIMITER.get()
    except LookupError:
        limiter = trio.CapacityLimiter(_THREADS)
        _LIMITER.set(limiter)
        return limiter


def _inflate_all(batches: list[RecordBatch]) -> list[RecordBatch]:
    """In the worker thread: decompress ``batches``, stopping early if the task is cancelled.

    Returns those that failed: they are left as they were, and iterating them raises the
    same error in the subscriber's task, where it would have come from without the thread.
    """
    failed = []
    for batch in batches:
        trio.from_thread.check_cancelled()
        try:
            batch.inflate()
        except ProtocolError:
            failed.append(batch)
    return failed


async def inflate(batches: list[RecordBatch]) -> list[RecordBatch]:
    """Decompress ``batches`` (from :func:`to_inflate`) in a worker thread; return those
    that failed.

    Cancellation waits for the batch being decompressed (at most a few hundred µs), then
    raises: no thread work is left behind.
    """
    return await trio.to_thread.run_sync(_inflate_all, batches, limiter=_limiter())


async def inflate_pending(runs: Iterable[Run], threshold: int = INFLATE_THRESHOLD) -> None:
    """Decompress the large compressed batches of ``runs`` in a worker thread (none: no
    checkpoint)."""
    batches = to_inflate(runs, threshold)
    if batches:
        await inflate(batches)
