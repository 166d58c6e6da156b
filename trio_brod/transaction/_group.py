"""Who is committing offsets in a transaction: :class:`GroupMetadata` (KIP-447).

A transaction's offset commit (TxnOffsetCommit v3+) carries the consuming member's
generation, member id and instance id, as the Java client's ``ConsumerGroupMetadata`` does,
so that the group coordinator can refuse a commit from a member whose generation is over.
"""

from __future__ import annotations

from typing import NamedTuple

from trio_brod.groups.member import GroupMember

__all__ = ["GroupMetadata", "group_metadata"]


class GroupMetadata(NamedTuple):
    """What a transaction's offset commit says about the consumer (KIP-447): the group, and
    the generation, member id and instance id of the member that consumed.

    The coordinator refuses the commit (IllegalGenerationError, UnknownMemberIdError,
    FencedInstanceIdError) from a member whose generation is over: a zombie that lost its
    partitions cannot commit for them. A bare group id (generation -1) is not checked.
    """

    group_id: str
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: str | None = None


def group_metadata(group: object) -> GroupMetadata:
    """The :class:`GroupMetadata` of a group id, a :class:`~trio_brod.GroupMember`, or
    anything with a ``member`` attribute holding one (a group subscriber, a transaction
    processor).

    Raises:
        TypeError: ``group`` is none of those.
    """
    if isinstance(group, GroupMetadata):
        return group
    if isinstance(group, str):
        return GroupMetadata(group)
    member = getattr(group, "member", group)
    if isinstance(member, GroupMember):
        generation = member.generation
        return GroupMetadata(
            member.group_id,
            generation.generation_id,
            generation.member_id,
            member.config.group_instance_id,
        )
    raise TypeError(
        "group must be a group id, a GroupMember, a group subscriber, a transaction "
        f"processor or a GroupMetadata, not {group!r:.100}"
    )
