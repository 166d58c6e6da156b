"""The commands that produce: ``send`` (one message) and ``pipe`` (a message per line of a file
or stdin)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TextIO

import trio

from trio_brod._config import ProducerConfig
from trio_brod.client import Client
from trio_brod.producer.receipt import DeliveryReceipt
from trio_brod.protocol.errors import BrodError

__all__ = ["pipe", "send", "split_lines"]

logger = logging.getLogger("trio_brod.cli")
#: With --tail or --no-eof-exit: how often to look for more at the end of the source
#: (brod-cli's 100 ms).
_FOLLOW_DELAY = 0.1


def _partition_and_partitioner(args: argparse.Namespace) -> dict[str, Any]:
    """``-p``: a partition number, or the partitioner that chooses one per message."""
    if isinstance(args.partition, str):
        return {"partitioner": args.partition}
    return {"partition": args.partition}


async def send(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    if args.value_file is not None:
        value = await trio.Path(args.value_file).read_bytes()
    else:
        value = args.value.encode()
    await client.start_producer(args.topic, _producer_config(args))
    receipt = await client.produce(
        args.topic,
        value,
        None if args.key is None else args.key.encode(),
        headers=[(name, v.encode()) for name, v in args.header],
        **_partition_and_partitioner(args),
    )
    offset = await receipt
    logger.info(
        "sent %d bytes to %s[%d] at offset %d", len(value), args.topic, receipt.partition, offset
    )
    if args.json:
        document = {"topic": args.topic, "partition": receipt.partition, "offset": offset}
        print(json.dumps(document), file=out)
    else:
        print(offset, file=out)


def _producer_config(args: argparse.Namespace, **options: Any) -> ProducerConfig:
    return ProducerConfig(required_acks=args.acks, compression=args.compression, **options)


class _LineError(BrodError):
    """A line of ``pipe`` input cannot be made into a message."""


async def pipe(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    topic, separator = args.topic, None if args.kv_sep is None else args.kv_sep.encode()
    config = _producer_config(
        args,
        max_linger=args.linger,
        max_linger_count=args.max_linger_count,
        max_batch_size=args.max_batch,
    )
    await client.start_producer(topic, config)
    target = _partition_and_partitioner(args)
    delivered = 0
    failures: list[BaseException] = []

    def done(receipt: DeliveryReceipt) -> None:
        nonlocal delivered
        error = receipt.exception()
        if error is None:
            delivered += 1
        elif not failures:
            failures.append(error)

    number = 0
    try:
        follow = args.tail or args.no_eof_exit
        logger.info(
            "reading %s%s",
            "stdin" if args.source == "-" else args.source,
            " (following)" if follow else "",
        )
        async for line in _lines(args.source, args.blk_size, tail=args.tail, follow=follow):
            number += 1
            key = None
            if separator is not None:
                key, found, line = line.partition(separator)
                if not found:
                    raise _LineError(
                        f"line {number} has no {args.kv_sep!r} to split the key from the value"
                    )
            receipt = await client.produce(topic, line, key, **target)
            receipt.add_done_callback(done)
            if failures:
                break
    except _LineError:
        await client.stop_producer(topic)  # what came before the bad line is delivered
        print(delivered, file=out)
        raise
    await client.stop_producer(topic)  # waits until what is buffered is delivered
    logger.info("read %d lines, %d delivered", number, delivered)
    print(delivered, file=out)
    if failures:
        raise failures[0]


async def _lines(
    source: str, block_size: int, *, tail: bool = False, follow: bool = False
) -> AsyncIterator[bytes]:
    """The lines of a file or stdin, as bytes without their line ending (``\\n`` or
    ``\\r\\n``, as Kafka's console producer reads them), read in blocks of up to
    ``block_size`` bytes: one thread hop per block, not per line.

    With ``tail`` (a file only), reading starts at the file's end. With ``follow``, the end
    of the source is not the end: it is looked at again every 100 ms for more, until the
    command is interrupted (brod-cli's ``--tail`` and ``--no-eof-exit``). A last line
    without its newline then waits for it, since more of it may still come.
    """
    # Plain os.read of the file descriptor: it returns whatever is there (a slow writer's
    # lines go out as they come), and holds no lock of a Python file object, so a read
    # abandoned on Ctrl-C (a terminal's may never return) cannot block the interpreter's exit.
    fd = sys.stdin.fileno() if source == "-" else os.open(source, os.O_RDONLY)
    if tail and source != "-":
        os.lseek(fd, 0, os.SEEK_END)

    async def read() -> bytes:
        while True:
            chunk = await trio.to_thread.run_sync(os.read, fd, block_size, abandon_on_cancel=True)
            if chunk or not follow:
                return chunk
            await trio.sleep(_FOLLOW_DELAY)

    try:
        async for line in split_lines(read):
            yield line
    finally:
        if source != "-":
            os.close(fd)


async def split_lines(read: Callable[[], Awaitable[bytes]]) -> AsyncIterator[bytes]:
    pending = b""
    while chunk := await read():
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line
    if pending:
        yield pending[:-1] if pending.endswith(b"\r") else pending
