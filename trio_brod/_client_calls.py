"""The bodies of some :class:`~trio_brod.Client` calls, kept out of ``client.py`` so that it
stays a readable facade (under the 800 lines of ``tests/unit/test_architecture.py``):
one-off offset lookups and fetches, and how a client's block closes it.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

import trio

from trio_brod._cluster.requests import list_offset, offset_time_ms
from trio_brod._config import ConsumerConfig, IsolationLevel, Timestamp
from trio_brod.consumer.fold import fetch_once

if TYPE_CHECKING:
    from trio_brod._cluster import MetadataCache
    from trio_brod.consumer.message_set import MessageSet

__all__ = ["close_after", "fetch_partition", "resolve_offset"]


async def resolve_offset(
    metadata: MetadataCache,
    topic: str,
    partition: int,
    time: Literal["earliest", "latest"] | int | Timestamp | datetime.datetime,
    isolation_level: IsolationLevel,
) -> int:
    """:meth:`Client.resolve_offset <trio_brod.Client.resolve_offset>` (ListOffsets)."""
    timestamp = offset_time_ms(time)
    isolation = 1 if isolation_level == "read_committed" else 0
    return await list_offset(metadata, topic, partition, timestamp, isolation)


async def fetch_partition(
    metadata: MetadataCache,
    topic: str,
    partition: int,
    offset: int,
    isolation_level: IsolationLevel,
    *,
    max_wait_time: float,
    min_bytes: int,
    max_bytes: int,
) -> MessageSet:
    """:meth:`Client.fetch <trio_brod.Client.fetch>`: one Fetch, no consumer started."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be an int >= 0, not {offset!r}")
    config = ConsumerConfig(
        max_wait_time=max_wait_time,
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        isolation_level=isolation_level,
    )
    return await fetch_once(metadata, topic, partition, offset, config)


#: Ways out of a block that must not wait for producers to flush: a cancel, Ctrl-C, exit.
_NO_WAITING = (trio.Cancelled, KeyboardInterrupt, SystemExit)


async def close_after(aclose: Callable[..., Awaitable[None]], exc: BaseException) -> None:
    """Close a client whose block raised ``exc``: at once (pending messages fail) if it was
    cancelled or interrupted; otherwise let producers deliver, unless cancelled meanwhile."""
    cancelled = isinstance(exc, _NO_WAITING) or (
        isinstance(exc, BaseExceptionGroup) and exc.subgroup(_NO_WAITING) is not None
    )
    with trio.CancelScope(shield=True):
        if cancelled:
            await aclose(cancelled=True)
            return
    # An error in the block: still deliver what was produced, but let a cancel stop it.
    try:
        await aclose(cancelled=False)
    except trio.Cancelled:
        with trio.CancelScope(shield=True):
            await aclose(cancelled=True)
        raise
