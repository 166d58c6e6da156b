"""An in-memory stand-in for the metadata cache's connection: answers with no socket.

For tests on Trio's mock clock, where a real socket wait would let the autojump clock skip
past a request's timeout.
"""

from __future__ import annotations

import uuid
from typing import Any

import trio

from trio_brod import ClientConfig
from trio_brod._cluster import MetadataCache
from trio_brod.protocol import MetadataResponse


class FakeConnection:
    """Answers Metadata and FindCoordinator from ``answers`` (callables), with no socket."""

    def __init__(self, answers: dict[type, Any]) -> None:
        self.answers = answers
        self.requests: list[Any] = []
        self.closed = False

    def best_version(self, api: Any, min_version: int | None = None) -> int:
        return int(api.MAX_STABLE_VERSION)

    async def request(self, request: Any, version: int, **_: Any) -> Any:
        await trio.lowlevel.checkpoint()
        self.requests.append((request, trio.current_time()))
        return self.answers[type(request)]()


class FakePool:
    """What MetadataCache needs of a ConnectionPool."""

    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection
        self.known: list[tuple[str, int]] = []

    async def any_connection(self) -> FakeConnection:
        await trio.lowlevel.checkpoint()
        return self.connection

    def learn_brokers(self, addresses: Any) -> None:
        self.known = list(addresses)


def metadata_answer(leader: int) -> MetadataResponse:
    partition = MetadataResponse.MetadataResponsePartition(
        error_code=0,
        partition_index=0,
        leader_id=leader,
        leader_epoch=1,
        replica_nodes=[1],
        isr_nodes=[1],
        offline_replicas=[],
    )
    topic = MetadataResponse.MetadataResponseTopic(
        error_code=0,
        name="orders",
        topic_id=uuid.UUID(int=7),
        is_internal=False,
        partitions=[partition],
    )
    brokers = [
        MetadataResponse.MetadataResponseBroker(
            node_id=node, host=f"b{node}", port=9091 + node, rack=None
        )
        for node in (1, 2, 3)
    ]
    return MetadataResponse(
        brokers=brokers, cluster_id="c", controller_id=1, topics=[topic], throttle_time_ms=0
    )


def cache_with(answers: dict[type, Any], **config: Any) -> tuple[MetadataCache, FakeConnection]:
    connection = FakeConnection(answers)
    pool: Any = FakePool(connection)
    return MetadataCache(pool, ClientConfig(**config)), connection
