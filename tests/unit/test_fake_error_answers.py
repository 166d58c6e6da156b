"""An error injected into a whole request reaches the client, whatever the API and version.

``FakeKafka.fail`` answers a request with :func:`error_response`, which puts the code in
every error field of the answer: the top-level one, and one entry per group, topic and
partition the request named. An API whose answer has no top-level code in some versions
(OffsetFetch from v8, AddPartitionsToTxn up to v3, TxnOffsetCommit) must mirror the
request's entries, or the injected error is silently lost. And a fault control filtered by
topic must find the topics wherever a request keeps them (in OffsetFetch's groups, or as
plain partition indexes).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import trio_brod.admin
from trio_brod import open_client
from trio_brod.protocol import (
    REQUESTS,
    AddPartitionsToTxnRequest,
    OffsetFetchRequest,
    TxnOffsetCommitRequest,
)
from trio_brod.protocol.errors import GroupAuthorizationFailedError
from trio_brod.protocol.frames import decode_response
from trio_brod.testing import fake_kafka
from trio_brod.testing import strategies as kst
from trio_brod.testing.fake import ClusterModel, Pass
from trio_brod.testing.fake._admin_apis import install_admin_apis
from trio_brod.testing.fake._data_apis import install_data_apis
from trio_brod.testing.fake._faults import entry_name, touched
from trio_brod.testing.fake._group_apis import install_group_apis
from trio_brod.testing.fake._runtime import FakeCluster
from trio_brod.testing.fake._txn_apis import install_transaction_apis
from trio_brod.testing.fake._wire import error_response, response_frame


def _served() -> list[tuple[int, int]]:
    """Every (API key, version) a fake broker answers."""
    cluster = FakeCluster(ClusterModel(broker_ids=[1]))
    install_admin_apis(cluster)
    install_data_apis(cluster)
    install_transaction_apis(cluster, install_group_apis(cluster))
    return [
        (api.key, version)
        for api in cluster.apis.values()
        for version in range(api.min_version, api.max_version + 1)
    ]


SERVED = _served()
CODE = GroupAuthorizationFailedError.code


def fields_in(message: Any, version: int) -> list[tuple[str, Any]]:
    """A decoded message's fields that *version* has, with their values."""
    return [
        (schema.name, getattr(message, schema.name))
        for schema in type(message)._SCHEMA
        if version in schema.versions
    ]


#: Error codes that are not the request's: CreateTopics's code for describing the new
#: topic's configs (a tagged field, 0 when there is nothing to describe).
NOT_THE_REQUESTS = {"topic_config_error_code"}


def error_fields(message: Any, version: int) -> list[int]:
    """Every error code in a decoded message of *version*, nested ones included."""
    found: list[int] = []
    for name, value in fields_in(message, version):
        if name in NOT_THE_REQUESTS:
            continue
        if name.endswith("error_code"):
            found.append(value)
        elif dataclasses.is_dataclass(value):
            found.extend(error_fields(value, version))
        elif isinstance(value, list):
            for item in value:
                if dataclasses.is_dataclass(item):
                    found.extend(error_fields(item, version))
    return found


def answered_partitions(message: Any, version: int) -> set[tuple[str, int]]:
    """The (topic, partition) pairs a decoded answer gives an error code of its own."""
    found: set[tuple[str, int]] = set()
    for _, value in fields_in(message, version):
        if not isinstance(value, list):
            if dataclasses.is_dataclass(value):
                found |= answered_partitions(value, version)
            continue
        for item in value:
            if not dataclasses.is_dataclass(item):
                continue
            topic = entry_name(item)
            for _, parts in fields_in(item, version):
                if topic is None or not isinstance(parts, list):
                    continue
                for part in parts:
                    index = getattr(part, "partition_index", getattr(part, "index", None))
                    if isinstance(index, int) and error_fields(part, version):
                        found.add((topic, index))
            found |= answered_partitions(item, version)
    return found


@pytest.mark.parametrize("served", SERVED, ids=lambda served: "{}v{}".format(*served))
@settings(max_examples=20)
@given(st.data())
def test_a_whole_failure_reaches_every_entry_the_request_named(
    served: tuple[int, int], data: st.DataObject
) -> None:
    api_key, version = served
    request = data.draw(kst.messages(REQUESTS[api_key], version))
    frame = response_frame(api_key, version, 7, error_response(api_key, request, CODE))
    answer = decode_response(frame[4:], REQUESTS[api_key].RESPONSE, version)
    assert all(code == CODE for code in error_fields(answer, version)), answer
    named = {(t, p) for t, p in touched(request, entry_name) if p is not None}
    assert named <= answered_partitions(answer, version), (named, answer)


def test_offset_fetch_by_groups_answers_each_group_and_partition() -> None:
    group = OffsetFetchRequest.OffsetFetchRequestGroup
    topic = OffsetFetchRequest.OffsetFetchRequestTopics
    request = OffsetFetchRequest(
        groups=[
            group(group_id="a", topics=[topic(name="t", partition_indexes=[0, 2])]),
            group(group_id="b", topics=None),
        ]
    )
    frame = response_frame(9, 9, 1, error_response(9, request, CODE))
    answer = decode_response(frame[4:], OffsetFetchRequest.RESPONSE, 9)
    assert [(g.group_id, g.error_code) for g in answer.groups] == [("a", CODE), ("b", CODE)]
    partitions = answer.groups[0].topics[0].partitions
    assert [(p.partition_index, p.committed_offset, p.error_code) for p in partitions] == [
        (0, -1, CODE),
        (2, -1, CODE),
    ]


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        (
            OffsetFetchRequest(
                groups=[
                    OffsetFetchRequest.OffsetFetchRequestGroup(
                        group_id="g",
                        topics=[
                            OffsetFetchRequest.OffsetFetchRequestTopics(
                                name="t", partition_indexes=[1]
                            )
                        ],
                    )
                ]
            ),
            (("t", 1),),
        ),
        (
            OffsetFetchRequest(
                group_id="g",
                topics=[
                    OffsetFetchRequest.OffsetFetchRequestTopic(name="t", partition_indexes=[3])
                ],
            ),
            (("t", 3),),
        ),
        (
            AddPartitionsToTxnRequest(
                v3_and_below_topics=[
                    AddPartitionsToTxnRequest.AddPartitionsToTxnTopic(name="t", partitions=[0, 1])
                ]
            ),
            (("t", 0), ("t", 1)),
        ),
        (
            TxnOffsetCommitRequest(
                topics=[
                    TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic(
                        name="t",
                        partitions=[
                            TxnOffsetCommitRequest.TxnOffsetCommitRequestPartition(
                                partition_index=2
                            )
                        ],
                    )
                ]
            ),
            (("t", 2),),
        ),
    ],
)
def test_a_control_finds_the_partitions_wherever_a_request_keeps_them(
    request_body: Any, expected: tuple[tuple[str, int], ...]
) -> None:
    assert touched(request_body, entry_name) == expected


async def test_an_injected_offset_fetch_error_reaches_the_caller(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka() as fake:
        fake.create_topic("t", partitions=1)
        async with open_client(fake.bootstrap_servers) as client:
            await trio_brod.admin.commit_offsets(client, "g", {("t", 0): 5})
            control = fake.fail(OffsetFetchRequest, GroupAuthorizationFailedError, times=None)
            with pytest.raises(GroupAuthorizationFailedError):
                await trio_brod.admin.fetch_committed_offsets(client, "g")
            assert control.seen
            control.cancel()
            committed = await trio_brod.admin.fetch_committed_offsets(client, "g")
            assert {key: entry.offset for key, entry in committed.items()} == {("t", 0): 5}


async def test_a_topic_filtered_control_sees_a_transactions_partitions(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_kafka() as fake:
        fake.create_topic("t", partitions=2)
        control = fake.control(AddPartitionsToTxnRequest, Pass(), topic="t", partition=1)
        async with (
            open_client(fake.bootstrap_servers) as client,
            client.transactional_producer("tx") as producer,
            producer.transaction() as txn,
        ):
            await txn.produce("t", b"v", partition=1)
        assert [request.targets for request in control.seen] == [(("t", 1),)]
