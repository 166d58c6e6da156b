"""The ``fetch`` command: messages of one partition, one line each."""

from __future__ import annotations

import argparse
import logging
from typing import Literal, TextIO

from trio_brod.cli._format import record_formatter
from trio_brod.client import Client

__all__ = ["fetch"]

logger = logging.getLogger("trio_brod.cli")


async def fetch(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    topic, partition = args.topic, args.partition
    render = record_formatter(args.fmt, args.kv_sep)
    offset = args.offset
    if offset == "last":
        latest = await client.resolve_offset(topic, partition, "latest")
        earliest = await client.resolve_offset(topic, partition, "earliest")
        offset = max(latest - 1, earliest)
        logger.info(
            "%s[%d]: offsets %d to %d, starting at %d", topic, partition, earliest, latest, offset
        )
    elif isinstance(offset, str):
        when: Literal["earliest", "latest"] = "earliest" if offset == "earliest" else "latest"
        offset = await client.resolve_offset(topic, partition, when)
    remaining: int | None = args.count
    while remaining is None or remaining > 0:
        logger.debug("fetching %s[%d] from offset %d", topic, partition, offset)
        message_set = await client.fetch(
            topic, partition, offset, max_wait_time=args.wait, max_bytes=args.max_bytes
        )
        records = message_set.messages
        if not records and message_set.next_offset <= offset:
            logger.info("done: nothing came within %g s", args.wait)
            return  # nothing came within --wait
        for record in records:
            print(render(record, topic, partition), file=out, end=args.msg_deli)
            if remaining is not None:
                remaining -= 1
                if remaining == 0:
                    logger.info("done: %d messages", args.count)
                    break
        out.flush()
        offset = max(message_set.next_offset, offset)
