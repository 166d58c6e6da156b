"""Kafka consumer groups (the classic protocol, and KIP-848's consumer protocol): membership,
assignors, commits, subscribers.

The pure cores (the ConsumerProtocol bytes, the assignors, the membership state machine) are
kept apart from the tasks that talk to the group coordinator, so that each can be tested
without a broker.
"""

from __future__ import annotations

from trio_brod.groups._assigned import AssignedPartition
from trio_brod.groups._consumer_member import ConsumerProtocolUnsupportedError
from trio_brod.groups.member import GroupHealth, GroupMember, PartitionHealth, open_group_member
from trio_brod.groups.subscriber import GroupSubscriber, open_group_subscriber

__all__ = [
    "AssignedPartition",
    "ConsumerProtocolUnsupportedError",
    "GroupHealth",
    "GroupMember",
    "GroupSubscriber",
    "PartitionHealth",
    "open_group_member",
    "open_group_subscriber",
]
