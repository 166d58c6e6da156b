"""Differential tests: the same seeded operation sequences against the fake Kafka and the real
broker from the launcher; what trio-brod's client observes must be the same.

Compared: produced offsets, fetched records (offset, key, value, headers, timestamp), high
watermarks, ListOffsets answers (earliest, latest, by timestamp), DeleteRecords' low
watermarks, and the error classes (offset out of range); and the error codes of admin
requests a controller refuses; and a transaction scenario (commit, abort, fencing): the
values each isolation level sees, high watermarks, last stable offsets, error classes.
Small on purpose: a few seeded examples of a few operations each, so that it stays fast in
CI.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trio_brod.admin
from trio_brod import Message, open_client
from trio_brod._cluster.metadata import CoordinatorType
from trio_brod.admin import NewTopic
from trio_brod.groups._coordinator import GroupCoordinator
from trio_brod.protocol import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    CreatePartitionsRequest,
    CreateTopicsRequest,
    DeleteTopicsRequest,
    DescribeConfigsRequest,
    EndTxnRequest,
    FetchRequest,
    IncrementalAlterConfigsRequest,
    InitProducerIdRequest,
    ListOffsetsRequest,
    MetadataRequest,
    ProduceRequest,
    TxnOffsetCommitRequest,
)
from trio_brod.protocol.errors import (
    ConcurrentTransactionsError,
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    KafkaError,
    NotCoordinatorError,
    for_code,
)
from trio_brod.protocol.records import (
    ControlRecordType,
    decode_batches,
    encode_batch,
    encode_control_batch,
)
from trio_brod.testing import fake_kafka
from trio_brod.testing import strategies as kst
from trio_brod.transaction import AbortableTransactionError, FatalTransactionError

pytestmark = pytest.mark.integration

Isolation = Literal["read_committed", "read_uncommitted"]

BASE_TS = 1_700_000_000_000

produce_op = st.tuples(
    st.just("produce"),
    st.lists(st.tuples(kst.keys(8), kst.values(16), kst.headers(2)), min_size=1, max_size=4),
)
fetch_op = st.tuples(st.just("fetch"), st.integers(0, 14))
offsets_op = st.tuples(st.just("offsets"), st.sampled_from(["earliest", "latest", 5, 25, 10**13]))
delete_op = st.tuples(st.just("delete"), st.integers(0, 4))
operations = st.lists(
    st.one_of(produce_op, produce_op, fetch_op, offsets_op, delete_op), min_size=3, max_size=8
)


async def observe(bootstrap: list[str], ops: list[tuple[Any, ...]]) -> list[object]:
    """Run the operations on a fresh topic; what the client saw, step by step."""
    seen: list[object] = []
    topic = f"diff-{uuid.uuid4().hex[:12]}"
    async with open_client(bootstrap) as client:
        await trio_brod.admin.create_topics(client, [NewTopic(topic, 1, 1)])
        await client.start_producer(topic)
        clock = 0
        for op in ops:
            try:
                if op[0] == "produce":
                    offsets = []
                    for key, value, headers in op[1]:
                        clock += 10
                        offsets.append(
                            await client.produce_sync(
                                topic,
                                value,
                                key,
                                partition=0,
                                headers=headers,
                                timestamp=BASE_TS + clock,
                            )
                        )
                    seen.append(("produced", offsets))
                elif op[0] == "fetch":
                    batch = await client.fetch(
                        topic, 0, op[1], max_wait_time=0.01, isolation_level="read_uncommitted"
                    )
                    seen.append(
                        (
                            "fetched",
                            batch.high_watermark,
                            [
                                (m.offset, m.key, m.value, tuple(m.headers), m.timestamp)
                                for m in batch
                            ],
                        )
                    )
                elif op[0] == "offsets":
                    when = op[1] if isinstance(op[1], str) else BASE_TS + op[1]
                    seen.append(("offset", await client.resolve_offset(topic, 0, when)))
                else:
                    latest = await client.resolve_offset(topic, 0, "latest")
                    cut = min(op[1], latest)
                    low = await trio_brod.admin.delete_records(client, {(topic, 0): cut})
                    seen.append(("deleted", low[(topic, 0)]))
            except KafkaError as exc:
                seen.append(("error", type(exc).__name__))
        # The end state, whatever the operations were: log start, end, and every record.
        earliest = await client.resolve_offset(topic, 0, "earliest")
        latest = await client.resolve_offset(topic, 0, "latest")
        batch = await client.fetch(topic, 0, earliest, max_wait_time=0.01)
        records = [(m.offset, m.key, m.value, tuple(m.headers), m.timestamp) for m in batch]
        seen.append(("end", earliest, latest, batch.high_watermark, records))
    return seen


@settings(
    max_examples=10,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(operations)
def test_the_fake_and_kafka_agree(bootstrap_servers: list[str], ops: list[tuple[Any, ...]]) -> None:
    async def main() -> tuple[list[object], list[object]]:
        with trio.fail_after(60):
            real = await observe(bootstrap_servers, ops)
            async with fake_kafka() as fake:
                fake_seen = await observe(fake.bootstrap_servers, ops)
        return real, fake_seen

    real, fake_seen = trio.run(main)
    assert fake_seen == real, (fake_seen, real)


#: IncrementalAlterConfigs's operations.
_SET, _DELETE, _APPEND = 0, 1, 2


def alter(topic: str, *changes: tuple[str, int, str | None]) -> Any:
    """One topic's part of an IncrementalAlterConfigs request."""
    api = IncrementalAlterConfigsRequest
    return api.AlterConfigsResource(
        resource_type=2,
        resource_name=topic,
        configs=[api.AlterableConfig(name=k, config_operation=op, value=v) for k, op, v in changes],
    )


async def described(connection: Any, topic: str) -> list[tuple[str, str | None, int]]:
    """Some of a topic's configs: (name, value, source), as DescribeConfigs v4 gives them."""
    api = DescribeConfigsRequest
    names = ["retention.ms", "cleanup.policy", "max.message.bytes"]
    response = await connection.request(
        api(resources=[api.DescribeConfigsResource(2, topic, names)]), 4
    )
    (result,) = response.results
    assert not result.error_code, result
    by_name = {c.name: (c.name, c.value, c.config_source) for c in result.configs}
    return [by_name[name] for name in names]


async def admin_errors(bootstrap: list[str], prefix: str) -> list[object]:
    """The error codes of admin requests Kafka refuses or accepts, one by one."""
    host, port = bootstrap[0].rsplit(":", 1)
    topic = f"{prefix}-admin"
    creatable = CreateTopicsRequest.CreatableTopic
    async with open_client(bootstrap, allow_topic_auto_creation=False) as client:
        connection = await client.get_connection(host, int(port))
        created = await connection.request(
            CreateTopicsRequest(
                topics=[
                    creatable(name=topic, num_partitions=2, replication_factor=1),
                    creatable(name=f"{prefix}-zero", num_partitions=0, replication_factor=1),
                    creatable(name=f"{prefix}-rf", num_partitions=1, replication_factor=5),
                    creatable(name="bad name!", num_partitions=1, replication_factor=1),
                    creatable(name="..", num_partitions=1, replication_factor=1),
                ],
                timeout_ms=30_000,
            )
        )
        again = await connection.request(
            CreateTopicsRequest(
                topics=[creatable(name=topic, num_partitions=1, replication_factor=1)],
                timeout_ms=30_000,
            )
        )
        fewer = await connection.request(
            CreatePartitionsRequest(
                topics=[CreatePartitionsRequest.CreatePartitionsTopic(name=topic, count=1)],
                timeout_ms=30_000,
            )
        )
        # An empty assignment list is not "none": it assigns none of the new partitions.
        empty = await connection.request(
            CreatePartitionsRequest(
                topics=[CreatePartitionsRequest.CreatePartitionsTopic(name=topic, count=3)],
                timeout_ms=30_000,
            )
        )
        more = await connection.request(
            CreatePartitionsRequest(
                topics=[
                    CreatePartitionsRequest.CreatePartitionsTopic(
                        name=topic, count=3, assignments=None
                    )
                ],
                timeout_ms=30_000,
            )
        )
        unknown = await connection.request(
            MetadataRequest(
                topics=[MetadataRequest.MetadataRequestTopic(name=f"{prefix}-none")],
                allow_auto_topic_creation=False,
            )
        )
        altered = [
            await connection.request(
                IncrementalAlterConfigsRequest(resources=[alter(name, *changes)], validate_only=v)
            )
            for name, changes, v in [
                (
                    topic,
                    [("retention.ms", _SET, "123456"), ("cleanup.policy", _APPEND, "compact")],
                    False,
                ),
                (topic, [("segment.ms", _SET, "3600000")], True),
                (topic, [("retention.ms", _APPEND, "1")], False),  # not a list config
                (topic, [("retention.ms", _SET, "1"), ("retention.ms", _DELETE, None)], False),
                (f"{prefix}-none", [("retention.ms", _SET, "1")], False),
            ]
        ]
        # A broker applies a change a moment after the controller accepted it: wait for it.
        with trio.fail_after(10):
            while (configs := await described(connection, topic))[0][1] != "123456":  # noqa: ASYNC110 - the broker's config has no event to wait on
                await trio.sleep(0.05)
        deleted = await connection.request(
            DeleteTopicsRequest(topic_names=[topic, f"{prefix}-none"], timeout_ms=30_000), 5
        )
    return [
        sorted((t.name.replace(prefix, "P"), t.error_code) for t in created.topics),
        [t.error_code for t in again.topics],
        [r.error_code for r in fewer.results],
        [r.error_code for r in empty.results],
        [r.error_code for r in more.results],
        [t.error_code for t in unknown.topics],
        [[r.error_code for r in a.responses] for a in altered],
        configs,
        # Kafka answers DeleteTopics in no particular order.
        sorted((r.name.replace(prefix, "P"), r.error_code) for r in deleted.responses),
    ]


async def test_the_fake_and_kafka_refuse_the_same_admin_requests(
    bootstrap_servers: list[str],
) -> None:
    with trio.fail_after(60):
        real = await admin_errors(bootstrap_servers, f"adm-{uuid.uuid4().hex[:8]}")
        async with fake_kafka() as fake:
            fake_seen = await admin_errors(fake.bootstrap_servers, f"adm-{uuid.uuid4().hex[:8]}")
    assert fake_seen == real, (fake_seen, real)


def one_batch(values: list[bytes], **producer: int) -> bytes:
    return encode_batch([(BASE_TS, None, v, ()) for v in values], **producer)


async def produce_errors(bootstrap: list[str], topic: str) -> list[object]:
    """(error code, base offset) of produces Kafka accepts, refuses or deduplicates."""
    async with open_client(bootstrap) as client:
        await trio_brod.admin.create_topics(client, [NewTopic(topic, 1, 1)])
        await client.resolve_offset(topic, 0, "latest")  # the new leader serves (see below)
        connection = await client.get_leader_connection(topic, 0)
        init = await connection.request(InitProducerIdRequest(transactional_id=None))
        while init.error_code == CoordinatorLoadInProgressError.code:  # Kafka warming up
            await trio.sleep(0.1)
            init = await connection.request(InitProducerIdRequest(transactional_id=None))
        assert init.error_code == 0
        pid = {"producer_id": init.producer_id, "producer_epoch": init.producer_epoch}
        good = one_batch([b"a", b"b"], base_sequence=0, **pid)
        corrupt = bytearray(one_batch([b"c"]))
        corrupt[-1] ^= 0xFF
        control = encode_control_batch(
            ControlRecordType.COMMIT, timestamp_ms=BASE_TS, coordinator_epoch=0, **pid
        )
        cases: list[tuple[int, int, bytes]] = [  # (acks, partition, records)
            (-1, 0, good),
            (-1, 0, good),  # a retry: the first write's offset, no new records
            (-1, 0, one_batch([b"x"], base_sequence=5, **pid)),  # a gap
            (-1, 0, one_batch([b"c"], base_sequence=2, **pid)),
            (-1, 0, one_batch([b"d"], base_sequence=9, producer_id=pid["producer_id"],
                              producer_epoch=pid["producer_epoch"] + 1)),  # new epoch, not 0
            (-1, 0, bytes(corrupt)),
            (-1, 0, one_batch([b"e"]) + one_batch([b"f"])),
            (-1, 0, control),
            (-1, 5, one_batch([b"g"])),  # no such partition
            (1, 0, one_batch([b"h"])),
            (2, 0, one_batch([b"i"])),  # acks must be -1, 0 or 1
        ]  # fmt: skip
        seen: list[object] = []
        for acks, partition, records in cases:
            response = await connection.request(
                ProduceRequest(
                    acks=acks,
                    timeout_ms=30_000,
                    topic_data=[
                        ProduceRequest.TopicProduceData(
                            name=topic,
                            partition_data=[
                                ProduceRequest.PartitionProduceData(
                                    index=partition, records=records
                                )
                            ],
                        )
                    ],
                )
            )
            (result,) = response.responses[0].partition_responses
            seen.append((result.error_code, result.base_offset if not result.error_code else -1))
        latest = await client.resolve_offset(topic, 0, "latest")
        seen.append(("latest", latest))
    return seen


async def test_the_fake_and_kafka_validate_produced_batches_alike(
    bootstrap_servers: list[str],
) -> None:
    with trio.fail_after(60):
        real = await produce_errors(bootstrap_servers, f"prod-{uuid.uuid4().hex[:8]}")
        async with fake_kafka() as fake:
            fake_seen = await produce_errors(fake.bootstrap_servers, "prod")
    assert fake_seen == real, (fake_seen, real)


#: (partition_max_bytes, max_bytes) pairs: zero, tiny, inside a batch, total below partition.
LIMITS = ((0, 1000), (1, 1000), (150, 1000), (400, 250), (10**6, 10**6))


async def fetch_slices(bootstrap: list[str], topic: str) -> list[object]:
    """What raw Fetch requests get for a range of offsets and byte limits."""
    async with open_client(bootstrap) as client:
        await trio_brod.admin.create_topics(client, [NewTopic(topic, 1, 1)])
        await client.start_producer(topic)
        for size in (1, 3, 2, 5, 1):
            receipt = await client.produce_batch(
                topic, [(None, b"v" * 40 * size) for _ in range(size)], partition=0
            )
            await receipt
        connection = await client.get_leader_connection(topic, 0)
        seen: list[object] = []
        for offset in (0, 1, 4, 11, 12, 13):
            for partition_max, total in LIMITS:
                response = await connection.request(
                    FetchRequest(
                        max_wait_ms=0,
                        min_bytes=0,
                        max_bytes=total,
                        isolation_level=1,
                        topics=[
                            FetchRequest.FetchTopic(
                                topic=topic,
                                partitions=[
                                    FetchRequest.FetchPartition(
                                        partition=0,
                                        fetch_offset=offset,
                                        partition_max_bytes=partition_max,
                                    )
                                ],
                            )
                        ],
                    ),
                    12,  # by name
                )
                data = response.responses[0].partitions[0]
                decoded = decode_batches(data.records or b"")
                seen.append(
                    (
                        offset,
                        partition_max,
                        total,
                        data.error_code,
                        data.high_watermark,
                        data.last_stable_offset,
                        data.log_start_offset,
                        len(data.records or b""),
                        [b.base_offset for b in decoded.batches],
                    )
                )
    return seen


async def fetch_session(bootstrap: list[str], topic: str) -> list[object]:
    """What a consumer's incremental fetch session (KIP-227) gets, step by step: a full
    fetch opens it, incremental ones name only what changed, a wrong epoch or an unknown
    session is refused, and a closed session is gone."""
    async with open_client(bootstrap) as client:
        await trio_brod.admin.create_topics(client, [NewTopic(topic, 2, 1)])
        await client.start_producer(topic)
        for partition, count in ((0, 3), (1, 2)):
            await client.produce_batch(topic, [(None, b"v")] * count, partition=partition)
        await client.stop_producer(topic)
        connection = await client.get_leader_connection(topic, 0)
        api = FetchRequest

        async def fetch(
            session: int, epoch: int, offsets: dict[int, int], forget: list[int] | None = None
        ) -> Any:
            topics = [
                api.FetchTopic(
                    topic=topic,
                    partitions=[
                        api.FetchPartition(partition=p, fetch_offset=o, partition_max_bytes=2**20)
                        for p, o in offsets.items()
                    ],
                )
            ]
            forgotten = [api.ForgottenTopic(topic=topic, partitions=forget)] if forget else []
            return await connection.request(
                api(
                    max_wait_ms=0,
                    min_bytes=0,
                    max_bytes=2**20,
                    session_id=session,
                    session_epoch=epoch,
                    topics=topics if offsets else [],
                    forgotten_topics_data=forgotten,
                ),
                12,  # by name
            )

        def seen(response: Any) -> object:
            return (
                error_name(response.error_code),
                response.session_id != 0,
                sorted(
                    (p.partition_index, error_name(p.error_code), p.high_watermark,
                     [b.base_offset for b in decode_batches(p.records or b"").batches])
                    for t in response.responses
                    for p in t.partitions
                ),
            )  # fmt: skip

        full = await fetch(0, 0, {0: 0, 1: 0})
        session = full.session_id
        steps = [seen(full)]
        steps.append(seen(await fetch(session, 1, {})))  # nothing changed: offsets 0 again
        steps.append(seen(await fetch(session, 2, {0: 3})))  # partition 0 read to its end
        steps.append(seen(await fetch(session, 9, {})))  # a wrong epoch
        steps.append(seen(await fetch(session + 1, 1, {})))  # no such session
        steps.append(seen(await fetch(session, 3, {}, forget=[1])))  # partition 1 forgotten
        steps.append(seen(await fetch(session, 4, {0: 0})))  # partition 0 from the start
        steps.append(seen(await fetch(session, -1, {0: 0})))  # closed: a sessionless fetch
        steps.append(seen(await fetch(session, 5, {})))  # the closed session is gone
        steps.append(seen(await fetch(0, -1, {0: 1, 1: 1})))  # sessionless
    return steps


async def test_the_fake_and_kafka_keep_fetch_sessions_alike(bootstrap_servers: list[str]) -> None:
    with trio.fail_after(60):
        real = await fetch_session(bootstrap_servers, f"session-{uuid.uuid4().hex[:8]}")
        async with fake_kafka() as fake:
            fake_seen = await fetch_session(fake.bootstrap_servers, "session")
    assert fake_seen == real, (fake_seen, real)


async def test_the_fake_and_kafka_cut_fetches_alike(bootstrap_servers: list[str]) -> None:
    with trio.fail_after(60):
        real = await fetch_slices(bootstrap_servers, f"cut-{uuid.uuid4().hex[:8]}")
        async with fake_kafka() as fake:
            fake_seen = await fetch_slices(fake.bootstrap_servers, "cut")
    assert fake_seen == real


async def offsets_answers(bootstrap: list[str], topic: str) -> list[object]:
    """Raw ListOffsets answers: earliest, latest, max timestamp, and by timestamp."""
    timestamps = [30, 10, 30, 20, 50, 40, 50, 5]
    async with open_client(bootstrap) as client:
        await trio_brod.admin.create_topics(client, [NewTopic(topic, 1, 1)])
        await client.start_producer(topic)
        for batch in ([0, 1, 2], [3], [4, 5, 6, 7]):
            receipt = await client.produce_batch(
                topic,
                [Message(b"v", timestamp=BASE_TS + timestamps[i]) for i in batch],
                partition=0,
            )
            await receipt
        await trio_brod.admin.delete_records(client, {(topic, 0): 1})
        connection = await client.get_leader_connection(topic, 0)
        seen: list[object] = []
        for isolation in (0, 1):
            for when in (-1, -2, -3, 0, 10, 11, 30, 31, 50, 51):
                timestamp = when if when < 0 else BASE_TS + when
                response = await connection.request(
                    ListOffsetsRequest(
                        replica_id=-1,
                        isolation_level=isolation,
                        topics=[
                            ListOffsetsRequest.ListOffsetsTopic(
                                name=topic,
                                partitions=[
                                    ListOffsetsRequest.ListOffsetsPartition(
                                        partition_index=0, timestamp=timestamp
                                    )
                                ],
                            )
                        ],
                    )
                )
                answer = response.topics[0].partitions[0]
                found = answer.timestamp - BASE_TS if answer.timestamp > 0 else answer.timestamp
                seen.append((isolation, when, answer.error_code, answer.offset, found))
    return seen


async def test_the_fake_and_kafka_list_offsets_alike(bootstrap_servers: list[str]) -> None:
    with trio.fail_after(60):
        real = await offsets_answers(bootstrap_servers, f"lo-{uuid.uuid4().hex[:8]}")
        async with fake_kafka() as fake:
            fake_seen = await offsets_answers(fake.bootstrap_servers, "lo")
    assert fake_seen == real


# -- transactions ----------------------------------------------------------------------------


async def ends(client: trio_brod.Client, topic: str) -> list[tuple[int, int]]:
    """(high watermark, last stable offset) of each partition, through ListOffsets."""
    return [
        (
            await client.resolve_offset(topic, p, "latest"),
            await client.resolve_offset(topic, p, "latest", isolation_level="read_committed"),
        )
        for p in (0, 1)
    ]


async def settled(client: trio_brod.Client, topic: str) -> list[tuple[int, int]]:
    """:func:`ends` once no transaction holds a partition back: Kafka answers EndTxn before
    its markers are written (the fake writes them first)."""
    with trio.fail_after(20):
        while True:
            found = await ends(client, topic)
            if all(hw == lso for hw, lso in found):
                return found
            await trio.sleep(0.05)


async def visible(client: trio_brod.Client, topic: str, isolation: Isolation) -> list[list[bytes]]:
    """Every value a reader at *isolation* sees in each partition."""
    seen: list[list[bytes]] = []
    for partition in (0, 1):
        end = await client.resolve_offset(topic, partition, "latest", isolation_level=isolation)
        values: list[bytes] = []
        offset = 0
        while offset < end:
            batch = await client.fetch(
                topic, partition, offset, isolation_level=isolation, max_wait_time=0.01
            )
            values.extend(m.value or b"" for m in batch if m.offset < end)
            offset = batch.next_offset
        seen.append(values)
    return seen


async def produce_both(txn: Any, topic: str, prefix: bytes) -> None:
    """One record to each partition, acknowledged (both partitions in the transaction)."""
    for partition in (0, 1):
        value = prefix + b"%d" % partition
        await (await txn.produce(topic, value, partition=partition))


async def transaction_scenario(bootstrap: list[str], topic: str) -> list[object]:
    """Commit, abort, an open transaction, fencing by a second instance: what a client sees
    (values per isolation level, high watermarks, last stable offsets, error classes)."""
    config = trio_brod.TransactionConfig(transaction_timeout=20.0)
    transactional_id = f"txn-diff-{uuid.uuid4().hex[:10]}"
    seen: list[object] = []
    async with open_client(bootstrap) as client:
        await trio_brod.admin.create_topics(client, [NewTopic(topic, 2, 1)])
        async with client.transactional_producer(transactional_id, config=config) as first:
            async with first.transaction() as txn:
                await produce_both(txn, topic, b"commit-")
            seen.append(("committed", await settled(client, topic)))
            try:
                async with first.transaction() as txn:
                    await produce_both(txn, topic, b"abort-")
                    raise LookupError("abort")
            except LookupError:
                pass
            seen.append(("aborted", await settled(client, topic)))
            try:
                async with first.transaction() as txn:
                    await produce_both(txn, topic, b"open-")
                    # Open: the last stable offset stays at its first records.
                    seen.append(("open", await ends(client, topic)))
                    seen.append(("open-read", await visible(client, topic, "read_committed")))
                    async with client.transactional_producer(
                        transactional_id, config=config
                    ) as second:
                        # Its InitProducerId aborted the open transaction, markers written.
                        seen.append(("fenced", await ends(client, topic)))
                        async with second.transaction() as txn2:
                            await produce_both(txn2, topic, b"second-")
                        seen.append(("second", await settled(client, topic)))
            except (AbortableTransactionError, FatalTransactionError) as exc:
                seen.append(("first-commit", type(exc).__name__, type(exc.cause).__name__))
        isolations: tuple[Isolation, ...] = ("read_committed", "read_uncommitted")
        for isolation in isolations:
            seen.append((isolation, await visible(client, topic, isolation)))
    return seen


async def test_the_fake_and_kafka_agree_on_transactions(bootstrap_servers: list[str]) -> None:
    topic = f"txn-{uuid.uuid4().hex[:8]}"
    with trio.fail_after(120):
        real = await transaction_scenario(bootstrap_servers, topic)
        async with fake_kafka() as fake:
            fake_seen = await transaction_scenario(fake.bootstrap_servers, topic)
    assert fake_seen == real, (fake_seen, real)


def error_name(code: int) -> str:
    return "NONE" if code == 0 else for_code(code).__name__


async def coordinator_errors(bootstrap: list[str], topic: str, group: str) -> list[object]:
    """The transaction coordinator's answers, request by request, in pinned versions: bad
    timeouts, unknown ids, stale and newer epochs, unknown topics, EndTxn out of place, a
    transactional produce before its partition is added, TxnOffsetCommit's checks, KIP-360's
    bump and its retry, and an InitProducerId over an open transaction."""
    transactional_id = f"raw-{uuid.uuid4().hex[:10]}"
    seen: list[object] = []
    async with open_client(bootstrap) as client:
        await trio_brod.admin.create_topics(client, [NewTopic(topic, 1, 1)])
        # A new topic's leader may not serve at once (Kafka answers NOT_LEADER_OR_FOLLOWER
        # for a moment): resolving an offset retries until it does.
        await client.resolve_offset(topic, 0, "latest")
        coordinator = GroupCoordinator(
            client.pool, client.metadata, transactional_id, key_type=CoordinatorType.TRANSACTION
        )
        _, txn = await coordinator.connection()
        leader = await client.get_leader_connection(topic, 0)
        # A new cluster creates and loads its transaction state first: until then, lookups
        # and requests are refused with errors that go away.
        warming = (
            CoordinatorLoadInProgressError.code,
            CoordinatorNotAvailableError.code,
            NotCoordinatorError.code,
        )

        async def init(
            timeout_ms: int = 20_000, pid: int = -1, epoch: int = -1, *, wait: bool = True
        ) -> Any:
            """InitProducerId; with *wait*, retried while the last transaction's markers
            are being written (Kafka: CONCURRENT_TRANSACTIONS for a moment; the fake: never).
            """
            nonlocal txn
            while True:
                response = await txn.request(
                    InitProducerIdRequest(
                        transactional_id=transactional_id,
                        transaction_timeout_ms=timeout_ms,
                        producer_id=pid,
                        producer_epoch=epoch,
                    ),
                    version=4,
                )
                busy = wait and response.error_code == ConcurrentTransactionsError.code
                if response.error_code not in warming and not busy:
                    return response
                await trio.sleep(0.1)
                if not busy:
                    coordinator.mark_dead()
                _, txn = await coordinator.connection()

        async def add(pid: int, epoch: int, version: int = 3, *topics: str) -> list[str]:
            response = await txn.request(
                AddPartitionsToTxnRequest(
                    v3_and_below_transactional_id=transactional_id,
                    v3_and_below_producer_id=pid,
                    v3_and_below_producer_epoch=epoch,
                    v3_and_below_topics=[
                        AddPartitionsToTxnRequest.AddPartitionsToTxnTopic(name=t, partitions=[0])
                        for t in (topics or (topic,))
                    ],
                ),
                version=version,
            )
            return sorted(
                f"{t.name == topic}:{error_name(p.partition_error_code)}"
                for t in response.results_by_topic_v3_and_below
                for p in t.results_by_partition
            )

        async def end(pid: int, epoch: int, commit: bool) -> str:
            """EndTxn, retried while the markers of the last one are being written."""
            while True:
                response = await txn.request(
                    EndTxnRequest(
                        transactional_id=transactional_id,
                        producer_id=pid,
                        producer_epoch=epoch,
                        committed=commit,
                    ),
                    version=4,
                )
                if response.error_code != ConcurrentTransactionsError.code:
                    return error_name(response.error_code)
                await trio.sleep(0.05)

        async def produce(pid: int, epoch: int, sequence: int) -> str:
            records = encode_batch(
                [(BASE_TS, None, b"t", ())],
                producer_id=pid,
                producer_epoch=epoch,
                base_sequence=sequence,
                is_transactional=True,
            )
            response = await leader.request(
                ProduceRequest(
                    transactional_id=transactional_id,
                    acks=-1,
                    timeout_ms=30_000,
                    topic_data=[
                        ProduceRequest.TopicProduceData(
                            name=topic,
                            partition_data=[
                                ProduceRequest.PartitionProduceData(index=0, records=records)
                            ],
                        )
                    ],
                ),
                version=9,
            )
            return error_name(response.responses[0].partition_responses[0].error_code)

        async def txn_commit(pid: int, epoch: int, generation: int, member: str) -> str:
            group_coordinator = GroupCoordinator(client.pool, client.metadata, group)
            while True:
                _, group_connection = await group_coordinator.connection()
                response = await group_connection.request(
                    TxnOffsetCommitRequest(
                        transactional_id=transactional_id,
                        group_id=group,
                        producer_id=pid,
                        producer_epoch=epoch,
                        generation_id=generation,
                        member_id=member,
                        topics=[
                            TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic(
                                name=topic,
                                partitions=[
                                    TxnOffsetCommitRequest.TxnOffsetCommitRequestPartition(
                                        partition_index=0, committed_offset=1
                                    )
                                ],
                            )
                        ],
                    ),
                    version=3,
                )
                code = response.topics[0].partitions[0].error_code
                if code not in warming:
                    return error_name(code)
                await trio.sleep(0.1)
                group_coordinator.mark_dead()

        bad = await init(timeout_ms=0)
        seen.append(("bad timeout", error_name(bad.error_code)))
        first = await init()
        pid, e0 = first.producer_id, first.producer_epoch
        seen.append(("init", error_name(first.error_code)))
        seen.append(("add other pid", await add(pid + 1, e0)))
        seen.append(("add newer epoch v3", await add(pid, e0 + 1)))
        seen.append(("add newer epoch v1", await add(pid, e0 + 1, 1)))
        seen.append(("end when empty", await end(pid, e0, True)))
        seen.append(("produce before add", await produce(pid, e0, 0)))
        seen.append(("add unknown topic", await add(pid, e0, 3, topic, f"{topic}-none")))
        seen.append(("add", await add(pid, e0)))
        seen.append(("produce newer epoch", await produce(pid, e0 + 1, 0)))
        seen.append(("produce", await produce(pid, e0, 0)))
        seen.append(("txn commit before add offsets", await txn_commit(pid, e0, -1, "")))
        response = await txn.request(
            AddOffsetsToTxnRequest(
                transactional_id=transactional_id,
                producer_id=pid,
                producer_epoch=e0,
                group_id=group,
            ),
            version=3,
        )
        seen.append(("add offsets", error_name(response.error_code)))
        seen.append(("txn commit unknown generation", await txn_commit(pid, e0, 5, "someone")))
        seen.append(("txn commit simple", await txn_commit(pid, e0, -1, "")))
        seen.append(("end commit", await end(pid, e0, True)))
        seen.append(("end commit again", await end(pid, e0, True)))
        seen.append(("end abort after commit", await end(pid, e0, False)))
        bumped = await init(pid=pid, epoch=e0)
        retried = await init(pid=pid, epoch=e0)
        seen.append(("bump", bumped.producer_epoch - e0, retried.producer_epoch - e0))
        e1 = bumped.producer_epoch
        bumped = await init(pid=pid, epoch=e1)
        seen.append(("bump again", bumped.producer_epoch - e0))
        stale = await init(pid=pid, epoch=e0)
        seen.append(("stale bump", error_name(stale.error_code)))
        other = await init(pid=pid + 1, epoch=bumped.producer_epoch)
        seen.append(("other pid bump", error_name(other.error_code)))
        # An open transaction, then a new instance: CONCURRENT_TRANSACTIONS until it is
        # aborted, then an epoch two past the open one's.
        e2 = bumped.producer_epoch
        seen.append(("add", await add(pid, e2)))
        seen.append(("produce", await produce(pid, e2, 0)))
        fencing = await init(wait=False)
        seen.append(("fencing init", error_name(fencing.error_code)))
        fencing = await init()
        seen.append(("fenced", error_name(fencing.error_code), fencing.producer_epoch - e2))
        seen.append(("old end", await end(pid, e2, True)))
        seen.append(("old add v1", await add(pid, e2, 1)))
        seen.append(("old produce", await produce(pid, e2, 1)))
        committed = await client.resolve_offset(
            topic, 0, "latest", isolation_level="read_committed"
        )
        seen.append(("end", await client.resolve_offset(topic, 0, "latest"), committed))
    return seen


async def test_the_fake_and_kafka_transaction_coordinators_answer_alike(
    bootstrap_servers: list[str],
) -> None:
    topic, group = f"rawtxn-{uuid.uuid4().hex[:8]}", f"rawgroup-{uuid.uuid4().hex[:8]}"
    with trio.fail_after(120):
        real = await coordinator_errors(bootstrap_servers, topic, group)
        async with fake_kafka() as fake:
            fake_seen = await coordinator_errors(fake.bootstrap_servers, topic, group)
    assert fake_seen == real, (fake_seen, real)
