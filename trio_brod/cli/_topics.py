"""The ``topics`` command: create or delete topics."""

from __future__ import annotations

import argparse
from typing import TextIO

from trio_brod.admin import NewTopic, create_topics, delete_topics
from trio_brod.client import Client

__all__ = ["topics"]


async def topics(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    names = list(dict.fromkeys(args.names))
    if args.action == "create":
        configs = dict(args.config)
        new = [NewTopic(n, args.partitions, args.replication_factor, configs) for n in names]
        await create_topics(client, new, timeout=args.timeout, validate_only=args.validate_only)
        verb = "valid" if args.validate_only else "created"
    else:
        await delete_topics(client, names, timeout=args.timeout)
        verb = "deleted"
    for name in names:
        print(f"{verb} {name}", file=out)
