"""The fake Kafka's smaller levers: removing an API (an older broker), a failed OffsetCommit
answered per partition, and the KIP-848 groups' state for assertions."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trio_brod.admin
from trio_brod import GroupConfig, open_client, open_group_member
from trio_brod.groups import ConsumerProtocolUnsupportedError
from trio_brod.protocol import (
    ApiVersionsRequest,
    ConsumerGroupHeartbeatRequest,
    ListGroupsRequest,
    OffsetCommitRequest,
)
from trio_brod.protocol.errors import GroupAuthorizationFailedError
from trio_brod.testing import fake_kafka
from trio_brod.testing.fake import Pass


async def test_a_removed_api_is_not_offered_nor_served(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka() as fake:
        fake.create_topic("orders")
        fake.remove_api(ListGroupsRequest.API_KEY)
        fake.remove_api(ConsumerGroupHeartbeatRequest)
        with pytest.raises(ValueError, match="ApiVersions"):
            fake.remove_api(ApiVersionsRequest)
        async with open_client(fake.bootstrap_servers) as client:
            host, port = fake.bootstrap_servers[0].split(":")
            offered = (await client.pool.get(host, int(port))).api_versions
            assert ListGroupsRequest.API_KEY not in offered
            assert ConsumerGroupHeartbeatRequest.API_KEY not in offered
            assert OffsetCommitRequest.API_KEY in offered
            config = GroupConfig(group_protocol="consumer")
            with pytest.raises(ConsumerProtocolUnsupportedError):
                async with open_group_member(client, "g", ["orders"], config=config):
                    await trio.sleep_forever()


async def test_a_failed_offset_commit_fails_every_partition(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("orders", partitions=2)
        fake.fail(OffsetCommitRequest, GroupAuthorizationFailedError)
        with pytest.RaisesGroup(GroupAuthorizationFailedError, GroupAuthorizationFailedError):
            await trio_brod.admin.commit_offsets(client, "g", {("orders", 0): 3, ("orders", 1): 4})
        group = fake.group("g")
        assert group is None or not group.offsets
        await trio_brod.admin.commit_offsets(client, "g", {("orders", 0): 3})
        group = fake.group("g")
        assert group is not None
        assert {tp: c.offset for tp, c in group.offsets.items()} == {("orders", 0): 3}


async def test_a_consumer_group_s_state_is_there_to_look_at(
    loopback_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka() as fake, open_client(fake.bootstrap_servers) as client:
        fake.create_topic("orders", partitions=3)
        watch = fake.control(ConsumerGroupHeartbeatRequest, Pass(), times=None)
        assert fake.consumer_group("g") is None
        config = GroupConfig(group_protocol="consumer")
        async with open_group_member(client, "g", ["orders"], config=config) as member:
            await trio.sleep(6.0)
            group = fake.consumer_group("g")
            assert group is not None
            assert group.state == "Stable"
            (state,) = group.members.values()
            assert state.member_id == member.generation.member_id
            assert state.epoch == group.epoch == member.generation.generation_id
            assert state.assigned == {("orders", p) for p in range(3)}
            assert fake.group("g") is None  # not a classic group
        assert watch.seen
        assert fake.consumer_group("g") is not None
        assert not fake.consumer_group("g").members  # type: ignore[union-attr]
