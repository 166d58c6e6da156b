"""The group interop harness itself: a Java member and a librdkafka member share one group.

trio-brod's group tests put its members beside these peers; this checks the peers on their
own first, so that a failure there points at trio-brod, not at the harness.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from tests.group_peers import JavaMember, LibrdkafkaMember, running
from trio_brod import open_client
from trio_brod.testing import KafkaCluster
from trio_brod.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.integration

PARTITIONS = 6


async def wait_until(condition: Callable[[], bool], seconds: float) -> None:
    """Poll what the peers' threads record (they cannot set a trio.Event)."""
    with trio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 (polling other threads' state)
            await trio.sleep(0.1)


@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
async def test_a_java_and_a_librdkafka_member_share_a_group(
    kafka: KafkaCluster, make_topic: MakeTopic, tmp_path: Path, assignor: str
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    group = f"peers-{assignor}-{topic}"
    everything = {(topic, p) for p in range(PARTITIONS)}
    java = JavaMember(kafka, topic, group, tmp_path / "java.log", assignor=assignor)
    rdkafka = LibrdkafkaMember(kafka.bootstrap_servers, topic, group, assignor=assignor)
    async with open_client(kafka.bootstrap_servers) as client:
        await client.start_producer(topic)
        with running(java), running(rdkafka):

            def split_evenly() -> bool:
                mine, theirs = java.owned(), rdkafka.owned()
                return not mine & theirs and mine | theirs == everything and len(mine) == 3

            await wait_until(split_evenly, 60)
            for i in range(60):
                await client.produce_sync(topic, b"%d" % i, partition=i % PARTITIONS)
            await wait_until(lambda: len(java.records()) + len(rdkafka.records()) >= 60, 30)
    seen = sorted(java.records() + rdkafka.records())
    assert seen == sorted((topic, i % PARTITIONS, i // PARTITIONS) for i in range(60))
