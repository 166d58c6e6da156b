"""The commands about consumer groups: ``groups`` (list or describe them) and ``commits``
(their committed offsets and lag, or commit offsets)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Literal, TextIO

from trio_brod.admin import (
    ConsumerGroupDescription,
    GroupDescription,
    commit_offsets,
    describe_consumer_groups,
    describe_groups,
    fetch_committed_offsets,
    list_groups,
)
from trio_brod.cli._args import names
from trio_brod.cli._format import table_lines
from trio_brod.cli._meta import partition_numbers
from trio_brod.client import Client

__all__ = ["commits", "groups"]


async def groups(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    wanted = names(args.group)
    if not wanted and not args.describe:
        listing = await list_groups(client)
        if args.json:
            print(json.dumps([dataclasses.asdict(g) for g in listing], indent=2), file=out)
            return
        rows = [
            (g.group_id, g.protocol_type or "-", g.state or "-", g.type or "-", g.coordinator_id)
            for g in listing
        ]
        for line in table_lines(("GROUP", "PROTOCOL", "STATE", "TYPE", "COORDINATOR"), rows):
            print(line, file=out)
        return
    listing = await list_groups(client)
    if not wanted:
        wanted = [g.group_id for g in listing]
    # KIP-848 groups are unknown to DescribeGroups: ConsumerGroupDescribe describes them.
    kip848 = [g.group_id for g in listing if g.type == "consumer" and g.group_id in wanted]
    classic = [g for g in wanted if g not in kip848]
    described = await describe_groups(client, classic) if classic else {}
    consumer = await describe_consumer_groups(client, kip848) if kip848 else {}
    if args.json:
        document = [
            _consumer_group_json(consumer[g]) if g in consumer else _group_json(described[g])
            for g in wanted
        ]
        print(json.dumps(document, indent=2), file=out)
        return
    for group_id in wanted:
        if group_id in consumer:
            _print_consumer_group(consumer[group_id], out)
            continue
        group = described[group_id]
        protocol = "/".join(p for p in (group.protocol_type, group.protocol) if p) or "-"
        coordinator = group.coordinator.node_id
        print(f"{group.group_id}: {group.state}, {protocol}, coordinator {coordinator}", file=out)
        for member in group.members:
            instance = f" instance {member.group_instance_id}" if member.group_instance_id else ""
            who = f"{member.client_id} at {member.client_host}{instance}"
            print(f"  {member.member_id} ({who})", file=out)
            for topic, partitions in sorted((member.assignment or {}).items()):
                print(f"    {topic}: {','.join(map(str, partitions)) or '-'}", file=out)


def _print_consumer_group(group: ConsumerGroupDescription, out: TextIO) -> None:
    """A KIP-848 group: its epochs and assignor, each member's epoch and assignment (with
    the target it is reconciling towards, where that differs)."""
    print(
        f"{group.group_id}: {group.state}, consumer protocol, assignor "
        f"{group.assignor_name or '-'}, epoch {group.group_epoch} (assignment "
        f"{group.assignment_epoch}), coordinator {group.coordinator.node_id}",
        file=out,
    )
    for member in group.members:
        instance = f" instance {member.instance_id}" if member.instance_id else ""
        who = f"{member.client_id} at {member.client_host}{instance}"
        print(f"  {member.member_id} ({who}) epoch {member.member_epoch}", file=out)
        for topic in sorted(member.assignment.keys() | member.target_assignment.keys()):
            now = member.assignment.get(topic, ())
            line = f"    {topic}: {','.join(map(str, now)) or '-'}"
            target = member.target_assignment.get(topic, ())
            if target != now:
                line += f" (target {','.join(map(str, target)) or '-'})"
            print(line, file=out)


def _consumer_group_json(group: ConsumerGroupDescription) -> dict[str, Any]:
    def partitions(assignment: Mapping[str, tuple[int, ...]]) -> dict[str, list[int]]:
        return {t: list(ps) for t, ps in assignment.items()}

    return {
        "group_id": group.group_id,
        "type": "consumer",
        "state": group.state,
        "group_epoch": group.group_epoch,
        "assignment_epoch": group.assignment_epoch,
        "assignor": group.assignor_name,
        "coordinator": group.coordinator.node_id,
        "members": [
            {
                "member_id": m.member_id,
                "instance_id": m.instance_id,
                "member_epoch": m.member_epoch,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "subscribed_topic_names": list(m.subscribed_topic_names),
                "subscribed_topic_regex": m.subscribed_topic_regex,
                "assignment": partitions(m.assignment),
                "target_assignment": partitions(m.target_assignment),
            }
            for m in group.members
        ],
    }


def _group_json(group: GroupDescription) -> dict[str, Any]:
    return {
        "group_id": group.group_id,
        "state": group.state,
        "protocol_type": group.protocol_type,
        "protocol": group.protocol,
        "coordinator": group.coordinator.node_id,
        "members": [
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "subscription": None if m.subscription is None else list(m.subscription),
                "assignment": None
                if m.assignment is None
                else {t: list(ps) for t, ps in m.assignment.items()},
            }
            for m in group.members
        ],
    }


async def commits(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    topics = names(args.topic)
    if args.offsets is not None:
        await _commit(client, args.group, topics[0], args.offsets, args.metadata, out)
        return
    committed = await fetch_committed_offsets(client, args.group, topics or None)
    keys = set(committed)
    for topic in topics:  # partitions without a commit are shown too
        keys.update((topic, p) for p in await partition_numbers(client, topic))
    rows = []
    for topic, partition in sorted(keys):
        end = await client.resolve_offset(topic, partition, "latest")
        entry = committed.get((topic, partition))
        lag = None if entry is None else max(end - entry.offset, 0)
        rows.append((topic, partition, entry, end, lag))
    if args.json:
        document = [
            {
                "topic": topic,
                "partition": partition,
                "committed": None if entry is None else entry.offset,
                "metadata": None if entry is None else entry.metadata,
                "end": end,
                "lag": lag,
            }
            for topic, partition, entry, end, lag in rows
        ]
        print(json.dumps({"group": args.group, "offsets": document}, indent=2), file=out)
        return
    table = [
        (
            topic,
            partition,
            "-" if entry is None else entry.offset,
            end,
            "-" if lag is None else lag,
            "" if entry is None else entry.metadata,
        )
        for topic, partition, entry, end, lag in rows
    ]
    for line in table_lines(("TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "METADATA"), table):
        print(line, file=out)


async def _commit(
    client: Client,
    group_id: str,
    topic: str,
    spec: str | dict[int, int],
    metadata: str,
    out: TextIO,
) -> None:
    if isinstance(spec, str):
        when: Literal["earliest", "latest"] = "earliest" if spec == "earliest" else "latest"
        offsets = {
            p: await client.resolve_offset(topic, p, when)
            for p in await partition_numbers(client, topic)
        }
    else:
        offsets = spec
    await commit_offsets(client, group_id, {(topic, p): o for p, o in offsets.items()}, metadata)
    for partition, offset in sorted(offsets.items()):
        print(f"{topic}:{partition}:{offset}", file=out)
