"""The fake Kafka's group coordinator answers raw requests as Kafka 4 does, in the cases the
differential test (tests/integration/test_fake_differential_groups.py) found it did not:
SyncGroup v5's mandatory fields, OffsetCommit's unknown partitions, DescribeGroups during a
rebalance and of an empty group, LeaveGroup of an unknown group.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from trio_brod import open_client
from trio_brod.protocol import (
    DescribeGroupsRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    OffsetCommitRequest,
    SyncGroupRequest,
)
from trio_brod.protocol.errors import (
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    MemberIdRequiredError,
    UnknownMemberIdError,
    UnknownTopicOrPartitionError,
)
from trio_brod.testing import fake_kafka
from trio_brod.testing.fake import FakeKafka

GROUP, TOPIC = "g", "t"


async def connect(client: Any, fake: FakeKafka) -> Any:
    """A connection to the fake's only broker (the coordinator of every group)."""
    host, port = fake.bootstrap_servers[0].rsplit(":", 1)
    return await client.get_connection(host, int(port))


async def join(connection: Any, member_id: str = "") -> Any:
    """A JoinGroup v9 (after the MEMBER_ID_REQUIRED round if *member_id* is empty)."""

    async def once(member: str) -> Any:
        return await connection.request(
            JoinGroupRequest(
                group_id=GROUP,
                session_timeout_ms=30_000,
                rebalance_timeout_ms=30_000,
                member_id=member,
                protocol_type="consumer",
                protocols=[JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"m")],
            ),
            9,
        )

    response = await once(member_id)
    if response.error_code == MemberIdRequiredError.code:
        response = await once(response.member_id)
    assert response.error_code == 0
    return response


async def sync(connection: Any, joined: Any, assignment: bytes, version: int = 5) -> Any:
    named = {"protocol_type": "consumer", "protocol_name": joined.protocol_name}
    return await connection.request(
        SyncGroupRequest(
            group_id=GROUP,
            generation_id=joined.generation_id,
            member_id=joined.member_id,
            assignments=[
                SyncGroupRequest.SyncGroupRequestAssignment(
                    member_id=joined.member_id, assignment=assignment
                )
            ],
            **(named if version >= 5 else {}),
        ),
        version,
    )


async def describe(connection: Any) -> Any:
    response = await connection.request(DescribeGroupsRequest(groups=[GROUP]), 5)
    return response.groups[0]


async def test_sync_group_v5_needs_protocol_type_and_name(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        connection = await connect(client, fake)
        joined = await join(connection)
        # Mandatory from v5 (Kafka's request handler refuses the request before the group
        # coordinator sees it); older versions do not have them.
        unnamed = SyncGroupRequest(
            group_id=GROUP, generation_id=joined.generation_id, member_id=joined.member_id
        )
        refused = await connection.request(unnamed, 5)
        assert refused.error_code == InconsistentGroupProtocolError.code
        assert (await connection.request(unnamed, 4)).error_code == 0
        assert (await sync(connection, joined, b"a")).error_code == 0


async def test_offset_commit_answers_unknown_partitions_first_whatever_the_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def commit(generation: int, member_id: str, partitions: list[int]) -> OffsetCommitRequest:
        return OffsetCommitRequest(
            group_id=GROUP,
            generation_id_or_member_epoch=generation,
            member_id=member_id,
            topics=[
                OffsetCommitRequest.OffsetCommitRequestTopic(
                    name=TOPIC,
                    partitions=[
                        OffsetCommitRequest.OffsetCommitRequestPartition(
                            partition_index=p, committed_offset=5
                        )
                        for p in partitions
                    ],
                )
            ],
        )

    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic(TOPIC, partitions=2)
        connection = await connect(client, fake)
        # Only unknown partitions: the group is never asked (nor created, by a "simple"
        # commit with generation -1).
        alone = await connection.request(commit(-1, "", [7]), 8)
        assert [p.error_code for p in alone.topics[0].partitions] == [
            UnknownTopicOrPartitionError.code
        ]
        assert fake.group(GROUP) is None
        joined = await join(connection)
        await sync(connection, joined, b"a")
        stale = await connection.request(
            commit(joined.generation_id + 1, joined.member_id, [0, 7, 1]), 8
        )
        assert [(p.partition_index, p.error_code) for p in stale.topics[0].partitions] == [
            (7, UnknownTopicOrPartitionError.code),
            (0, IllegalGenerationError.code),
            (1, IllegalGenerationError.code),
        ]


async def test_describe_shows_the_last_assignment_until_the_next_sync(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        a = await connect(client, fake)
        async with open_client(fake.bootstrap_servers) as other:
            b = await connect(other, fake)
            first = await join(a)
            await sync(a, first, b"for a")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(join, b)  # held until a rejoins
                while (await describe(a)).group_state != "PreparingRebalance":  # noqa: ASYNC110
                    await trio.sleep(0.01)
                preparing = await describe(a)
                assert {m.member_id: bytes(m.member_assignment) for m in preparing.members} == {
                    first.member_id: b"for a",
                    next(
                        m.member_id for m in preparing.members if m.member_id != first.member_id
                    ): b"",
                }
                assert all(m.member_metadata == b"" for m in preparing.members)
                await join(a, first.member_id)
            completing = await describe(a)
            assert completing.group_state == "CompletingRebalance"
            kept = {m.member_id: bytes(m.member_assignment) for m in completing.members}
            assert kept[first.member_id] == b"for a"
        left = await a.request(
            LeaveGroupRequest(
                group_id=GROUP,
                members=[LeaveGroupRequest.MemberIdentity(member_id=m) for m in sorted(kept)],
            ),
            5,
        )
        assert [m.error_code for m in left.members] == [0, 0]
        empty = await describe(a)
        # An empty group keeps its protocol type (until a member of another type joins).
        assert (empty.group_state, empty.protocol_type, empty.members) == (
            "Empty",
            "consumer",
            [],
        )


async def test_leave_of_an_unknown_group_names_each_member_unknown(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        connection = await connect(client, fake)
        batch = await connection.request(
            LeaveGroupRequest(
                group_id="nobody", members=[LeaveGroupRequest.MemberIdentity(member_id="x")]
            ),
            5,
        )
        assert batch.error_code == 0
        assert [m.error_code for m in batch.members] == [UnknownMemberIdError.code]
        single = await connection.request(LeaveGroupRequest(group_id="nobody", member_id="x"), 2)
        assert single.error_code == UnknownMemberIdError.code
