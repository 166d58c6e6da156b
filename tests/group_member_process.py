"""A trio-brod group member in a process of its own, for tests that kill it for real.

Run as ``python -m tests.group_member_process BOOTSTRAP GROUP TOPIC DELAY [PROTOCOL]``: it
joins GROUP (classic: range assignor, session_timeout 6 s, heartbeats every second; or
with PROTOCOL ``consumer``, KIP-848's protocol, the broker's timeouts; commits every half
second),
consumes TOPIC from the earliest offset, sleeps DELAY seconds in each message's handler, and
prints ``generation partition offset`` for every message handled (flushed at once), so the
test knows exactly what it handled before it was SIGKILLed.
"""

from __future__ import annotations

import sys

import trio

from trio_brod import (
    AssignedPartition,
    ConsumerConfig,
    GroupConfig,
    open_client,
    open_group_subscriber,
)
from trio_brod.protocol.records import Record

#: The group options of every member in the failure tests (short, for short tests).
CONFIG = GroupConfig(
    partition_assignment_strategy="range",
    session_timeout=6.0,
    heartbeat_rate=1.0,
    rebalance_timeout=10.0,
    offset_commit_interval=0.5,
)
#: The same for the KIP-848 consumer protocol (generation = the member epoch).
CONSUMER_CONFIG = GroupConfig(
    group_protocol="consumer", rebalance_timeout=10.0, offset_commit_interval=0.5
)


async def main(bootstrap: str, group: str, topic: str, delay: float, protocol: str) -> None:
    config = CONSUMER_CONFIG if protocol == "consumer" else CONFIG

    async def handle(assigned: AssignedPartition, message: Record) -> None:
        await trio.sleep(delay)
        print(assigned.generation_id, assigned.partition, message.offset, flush=True)

    async with (
        open_client(bootstrap.split(",")) as client,
        open_group_subscriber(
            client,
            group,
            [topic],
            handle,
            config=config,
            consumer_config=ConsumerConfig(begin_offset="earliest"),
        ),
    ):
        await trio.sleep_forever()


if __name__ == "__main__":
    protocol = sys.argv[5] if len(sys.argv) > 5 else "classic"
    trio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), protocol)
