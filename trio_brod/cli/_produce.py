"""The commands that produce: ``send`` (one message) and ``pipe`` (a message per line of a file
or stdin)."""

from __future__ import annotations

import argparse
import json
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

_READ_SIZE = 1 << 20


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
        partition=args.partition,
        headers=[(name, v.encode()) for name, v in args.header],
    )
    offset = await receipt
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
    await client.start_producer(topic, _producer_config(args, max_linger=args.linger))
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
        async for line in _lines(args.source):
            number += 1
            key = None
            if separator is not None:
                key, found, line = line.partition(separator)
                if not found:
                    raise _LineError(
                        f"line {number} has no {args.kv_sep!r} to split the key from the value"
                    )
            receipt = await client.produce(topic, line, key, partition=args.partition)
            receipt.add_done_callback(done)
            if failures:
                break
    except _LineError:
        await client.stop_producer(topic)  # what came before the bad line is delivered
        print(delivered, file=out)
        raise
    await client.stop_producer(topic)  # waits until what is buffered is delivered
    print(delivered, file=out)
    if failures:
        raise failures[0]


async def _lines(source: str) -> AsyncIterator[bytes]:
    """The lines of a file or stdin, as bytes without their line ending (``\\n`` or
    ``\\r\\n``, as Kafka's console producer reads them), read in chunks of up to a MiB: one
    thread hop per chunk, not per line."""
    # Plain os.read of the file descriptor: it returns whatever is there (a slow writer's
    # lines go out as they come), and holds no lock of a Python file object, so a read
    # abandoned on Ctrl-C (a terminal's may never return) cannot block the interpreter's exit.
    fd = sys.stdin.fileno() if source == "-" else os.open(source, os.O_RDONLY)

    async def read() -> bytes:
        return await trio.to_thread.run_sync(os.read, fd, _READ_SIZE, abandon_on_cancel=True)

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
