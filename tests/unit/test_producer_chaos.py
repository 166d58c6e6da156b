"""The producer worker under random failures, against the fake Kafka.

Hypothesis picks the producer's limits and a script of what goes wrong with the Produce
requests (retriable errors, refused batches, connections broken before or after the append,
batches too large), and the worker must keep the idempotent producer's promise: every
message that succeeds is in the log exactly once, in the order it was accepted, at the
offset its receipt says; the only failures are the non-retriable ones.

Sequence errors are not scripted: they are the fake Kafka's own answers, from its model of
a broker's producer state (a refused batch leaves a gap, for one). A scripted one could
claim a gap where a real broker would see a duplicate, and no client could be right then.
"""

from __future__ import annotations

import contextlib

import trio
import trio.testing
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.produced import (
    APPEND_THEN_HANG_UP,
    HANG_UP,
    INVALID_RECORD,
    MESSAGE_TOO_LARGE,
    NOT_ENOUGH_REPLICAS,
    NOT_LEADER,
    TOPIC,
    Produced,
    Scripted,
    serving,
)
from trio_brod import BrokerConnectionError, Client, DeliveryReceipt, ProducerConfig, open_client
from trio_brod.protocol.errors import (
    BrodError,
    InvalidRecordError,
    KafkaError,
    MessageTooLargeError,
    NotEnoughReplicasError,
    NotLeaderOrFollowerError,
)

ACTIONS = st.sampled_from(
    [
        None,  # answered normally
        NOT_ENOUGH_REPLICAS,
        NOT_LEADER,
        MESSAGE_TOO_LARGE,
        INVALID_RECORD,
        HANG_UP,
        APPEND_THEN_HANG_UP,
    ]
)


async def produce_bursts(
    client: Client, bursts: list[int], receipts: list[DeliveryReceipt], values: list[bytes]
) -> None:
    """Produce numbered messages to partition 0 in bursts (a checkpoint after each), keeping
    their values and receipts, then wait until every receipt is done, either way."""
    for burst in bursts:
        for _ in range(burst):
            value = b"m%d" % len(values)
            values.append(value)
            receipts.append(await client.produce(TOPIC, value, partition=0))
        await trio.lowlevel.checkpoint()
    with trio.fail_after(20):
        for receipt in receipts:
            with contextlib.suppress(BrodError):
                await receipt


async def run_scenario(
    onwire: int, batch_size: int, bursts: list[int], script: list[Scripted]
) -> tuple[list[DeliveryReceipt], list[bytes], Produced]:
    """Produce the bursts while the script plays out; return the receipts and values."""
    async with serving() as cluster:
        config = ProducerConfig(
            partition_onwire_limit=onwire,
            max_batch_size=batch_size,
            max_retries=-1,
            retry_backoff=0.001,
            retry_backoff_max=0.002,
        )
        receipts: list[DeliveryReceipt] = []
        values: list[bytes] = []
        async with open_client(cluster.bootstrap, reconnect_cool_down=0) as client:
            await client.start_producer(TOPIC, config)
            # One message first, so the broker knows the producer (a broker that does not
            # accepts any first sequence number, which no client can protect against).
            await client.produce_sync(TOPIC, b"first", partition=0)
            cluster.actions.extend(script)  # None: answer that request normally
            await produce_bursts(client, bursts, receipts, values)
    return receipts, values, cluster


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    onwire=st.integers(1, 5),
    batch_size=st.sampled_from([10, 100, 1000]),
    bursts=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    script=st.lists(ACTIONS, max_size=12),
)
# Found by this test: m0 written, its answer lost; its retries refused (too few replicas)
# while m1-m5 went through behind them, pushing m0 out of the broker's memory of the last
# five batches. The next retry was then a gap, not a duplicate, and a new epoch wrote m0
# twice (fixed by rule 7 of trio_brod.producer._buffer).
@example(
    onwire=5,
    batch_size=10,
    bursts=[6],
    script=[APPEND_THEN_HANG_UP, NOT_ENOUGH_REPLICAS, None, HANG_UP, NOT_ENOUGH_REPLICAS],
)
def test_random_failures_keep_order_and_write_once(
    onwire: int, batch_size: int, bursts: list[int], script: list[Scripted]
) -> None:
    receipts, values, cluster = trio.run(run_scenario, onwire, batch_size, bursts, script)
    log = cluster.values()
    assert log[0] == b"first"
    delivered = []
    for value, receipt in zip(values, receipts, strict=True):
        assert receipt.done()
        error = receipt.exception()
        if error is None:
            offset = receipt.result()
            assert log[offset] == value
            delivered.append(value)
        else:
            # Only a refused batch fails (a single message too large cannot be split):
            # everything else is retried until it goes.
            assert isinstance(error, KafkaError)
            assert isinstance(error, InvalidRecordError | MessageTooLargeError)
    # Each delivered message once, in the order accepted, and nothing else.
    assert log[1:] == delivered


async def run_without_idempotence(
    batch_size: int, bursts: list[int], script: list[Scripted]
) -> tuple[list[DeliveryReceipt], list[bytes], Produced]:
    """As run_scenario, with acks=1 and one request in flight: at-least-once delivery."""
    async with serving() as cluster:
        config = ProducerConfig(
            required_acks=1,
            max_batch_size=batch_size,
            max_retries=-1,
            retry_backoff=0.001,
            retry_backoff_max=0.002,
        )
        receipts: list[DeliveryReceipt] = []
        values: list[bytes] = []
        async with open_client(cluster.bootstrap, reconnect_cool_down=0) as client:
            await client.start_producer(TOPIC, config)
            cluster.actions.extend(script)
            await produce_bursts(client, bursts, receipts, values)
    return receipts, values, cluster


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch_size=st.sampled_from([10, 100, 1000]),
    bursts=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    script=st.lists(ACTIONS, max_size=12),
)
def test_without_idempotence_delivery_is_at_least_once_in_order(
    batch_size: int, bursts: list[int], script: list[Scripted]
) -> None:
    receipts, values, cluster = trio.run(run_without_idempotence, batch_size, bursts, script)
    log = cluster.values()
    index: dict[bytes | None, int] = {value: i for i, value in enumerate(values)}
    for value, receipt in zip(values, receipts, strict=True):
        if receipt.exception() is None:
            assert log[receipt.result()] == value
    # A retry of a batch the broker did write writes it again, right after itself: the
    # first copies of what is in the log are in the order accepted.
    first_copies = list(dict.fromkeys(log))
    assert [index[value] for value in first_copies] == sorted(index[v] for v in first_copies)
    delivered = {value for value, r in zip(values, receipts, strict=True) if not r.exception()}
    assert delivered <= set(log)


# Without splits (a split batch's halves are new batches, with attempts of their own), so
# that every send of a message is an attempt of one batch.
FINITE_ACTIONS = st.sampled_from(
    [None, NOT_ENOUGH_REPLICAS, NOT_LEADER, INVALID_RECORD, HANG_UP, APPEND_THEN_HANG_UP]
)


async def run_with_retries(
    onwire: int, batch_size: int, max_retries: int, bursts: list[int], script: list[Scripted]
) -> tuple[list[DeliveryReceipt], list[bytes], Produced]:
    """As run_scenario, with a finite ``max_retries``: batches are given up on."""
    async with serving() as cluster:
        config = ProducerConfig(
            partition_onwire_limit=onwire,
            max_batch_size=batch_size,
            max_retries=max_retries,
            retry_backoff=0.001,
            retry_backoff_max=0.002,
        )
        receipts: list[DeliveryReceipt] = []
        values: list[bytes] = []
        async with open_client(cluster.bootstrap, reconnect_cool_down=0) as client:
            await client.start_producer(TOPIC, config)
            await client.produce_sync(TOPIC, b"first", partition=0)
            cluster.actions.extend(script)
            await produce_bursts(client, bursts, receipts, values)
    return receipts, values, cluster


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    onwire=st.integers(1, 5),
    batch_size=st.sampled_from([10, 100]),
    max_retries=st.integers(0, 3),
    bursts=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    script=st.lists(FINITE_ACTIONS, max_size=20),
)
def test_given_up_batches_leave_no_sequence_errors(
    onwire: int, batch_size: int, max_retries: int, bursts: list[int], script: list[Scripted]
) -> None:
    # Batches run out of retries while others are in flight and pending. Whatever fails
    # fails with what the broker or the connection did to it, never with a sequence error
    # the producer caused by giving up a batch; nothing is written twice or out of order;
    # no message is sent more than max_retries + 1 times.
    receipts, values, cluster = trio.run(
        run_with_retries, onwire, batch_size, max_retries, bursts, script
    )
    log = cluster.values()
    assert log[0] == b"first"
    assert len(set(log)) == len(log)  # nothing twice
    index = {value: i for i, value in enumerate(values)}
    assert [index[value] for value in log[1:]] == sorted(index[value] for value in log[1:])
    for value, receipt in zip(values, receipts, strict=True):
        assert receipt.done()
        error = receipt.exception()
        if error is None:
            assert log[receipt.result()] == value
        elif isinstance(error, KafkaError):
            # (In the log all the same if an earlier attempt's response was lost: a broker
            # checks the in-sync replicas before it looks for a duplicate.)
            assert isinstance(
                error, NotEnoughReplicasError | NotLeaderOrFollowerError | InvalidRecordError
            ), error
        else:
            # The connection broke: the batch may or may not be in the log.
            assert isinstance(error, BrokerConnectionError), error
        assert sum(value in sent.values for sent in cluster.sent) <= max_retries + 1
