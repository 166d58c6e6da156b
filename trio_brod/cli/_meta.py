"""The commands that look at the cluster: ``meta`` (brokers, topics, partitions, leaders,
in-sync replicas) and ``offset`` (partitions' offsets)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Sequence
from typing import Any, TextIO

from trio_brod._metadata import ClusterMetadata, TopicMetadata
from trio_brod.cli._args import names
from trio_brod.client import Client

__all__ = ["meta", "offset", "partition_numbers"]

logger = logging.getLogger("trio_brod.cli")


async def meta(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    wanted = names(args.topic)
    # One Metadata request, as brod-cli's brod:get_metadata/3 (trio_brod.get_metadata for
    # scripts); never creating a topic whose name was mistyped.
    logger.info("asking for the metadata of %s", ", ".join(wanted) or "every topic")
    metadata = await client.get_metadata_safe(wanted or None)
    topics = [
        t
        for name, t in sorted(metadata.topics.items())
        if wanted or args.internal or not t.is_internal
    ]
    if args.under_replicated:
        topics = [_only_under_replicated(t) for t in topics]
        topics = [t for t in topics if t.partitions or t.error_code]
    if args.json:
        print(json.dumps(_metadata_json(metadata, topics), indent=2), file=out)
        return
    if args.list:
        for topic in topics:
            print(topic.name, file=out)
        return
    print(f"cluster {metadata.cluster_id}, controller {metadata.controller_id}", file=out)
    print(f"brokers {len(metadata.brokers)}:", file=out)
    for node_id, broker in sorted(metadata.brokers.items()):
        rack = f" rack {broker.rack}" if broker.rack else ""
        print(f"  {node_id}: {broker.address}{rack}", file=out)
    print(f"topics {len(topics)}:", file=out)
    for topic in topics:
        if topic.error is not None:
            print(f"  {topic.name}: {topic.error.name}", file=out)
            continue
        print(f"  {topic.name} {topic.partition_count}:", file=out)
        for number, p in sorted(topic.partitions.items()):
            # As brod-cli: replicas, out-of-sync ones marked with *.
            replicas = ",".join(f"{r}{'' if r in p.isr else '*'}" for r in p.replicas)
            error = f" {p.error.name}" if p.error is not None else ""
            print(f"    {number}: {p.leader} ({replicas}){error}", file=out)


def _only_under_replicated(topic: TopicMetadata) -> TopicMetadata:
    partitions = {n: p for n, p in topic.partitions.items() if len(p.isr) < len(p.replicas)}
    return dataclasses.replace(topic, partitions=partitions)


def _metadata_json(metadata: ClusterMetadata, topics: list[TopicMetadata]) -> dict[str, Any]:
    return {
        "cluster_id": metadata.cluster_id,
        "controller_id": metadata.controller_id,
        "brokers": [
            {"node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack}
            for _, b in sorted(metadata.brokers.items())
        ],
        "topics": [
            {
                "name": t.name,
                "error": t.error.name if t.error is not None else None,
                "internal": t.is_internal,
                "partitions": [
                    {
                        "partition": n,
                        "leader": p.leader,
                        "replicas": list(p.replicas),
                        "isr": list(p.isr),
                        "error": p.error.name if p.error is not None else None,
                    }
                    for n, p in sorted(t.partitions.items())
                ],
            }
            for t in topics
        ],
    }


async def partition_numbers(client: Client, topic: str) -> range:
    return range(await client.get_partitions_count_safe(topic))


async def offset(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    if args.partition is not None:
        partitions: Sequence[int] = [args.partition]
    else:
        partitions = await partition_numbers(client, args.topic)
    offsets = {p: await client.resolve_offset(args.topic, p, args.time) for p in partitions}
    if args.json:
        document = {"topic": args.topic, "offsets": {str(p): o for p, o in offsets.items()}}
        print(json.dumps(document), file=out)
    elif args.partition is not None:
        print(offsets[args.partition], file=out)
    elif args.one_line:
        print(",".join(f"{partition}:{offset}" for partition, offset in offsets.items()), file=out)
    else:
        for partition, offset in offsets.items():
            print(f"{partition}:{offset}", file=out)
