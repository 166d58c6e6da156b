"""A tour of trio-brod against a real Kafka: ``python -m trio_brod.demo`` (or ``nox -s demo``).

It starts a local broker with :mod:`trio_brod.testing` (Java 17+ needed; the Kafka jars are
fetched with Maven on first use), creates a topic, prints what the cluster's metadata says
about it, then produces messages and consumes them all back, with the rates, and then once
more as a consumer group of two members, printing the assignment, and finally copies them
to another topic exactly once, in transactions (consume-transform-produce)::

    python -m trio_brod.demo --messages 200000 --partitions 4 --size 100 --compression zstd

Every message carries its sequence number as its key, so the consumer can check that each
partition holds its messages in the order they were produced, with none lost or repeated.

Progress is drawn on one line when stdout is a terminal, and printed as a few plain lines
otherwise (CI logs). The broker is stopped and its data deleted on the way out, also after
Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

import trio

import trio_brod
from trio_brod import ClusterMetadata, DeliveryReceipt, MessageSet, ProducerConfig
from trio_brod.producer.identity import ProducerIdentity
from trio_brod.protocol import BrodError, FetchRequest, MetadataRequest, ProduceRequest
from trio_brod.testing import (
    AsyncKafkaCluster,
    KafkaNotAvailable,
    KafkaStartError,
    kafka_cluster,
    resolve_kafka_jars,
)
from trio_brod.testing._jars import find_java

__all__ = ["main"]

TOPIC = "trio-brod-demo"
_CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
#: Digits of the key: the message's sequence number, zero-padded.
_KEY_DIGITS = 10
#: A group handler of message sets, as the demo's members use.
GroupHandler = Callable[[trio_brod.AssignedPartition, MessageSet], Awaitable[Any]]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trio_brod.demo",
        description=(
            "Start a local Kafka, show its metadata, produce messages and consume them back "
            "with trio-brod, then once more as a consumer group of two members, and report "
            "the rates."
        ),
    )
    parser.add_argument(
        "--messages", type=_positive, default=200_000, help="how many (default 200000)"
    )
    parser.add_argument(
        "--partitions", type=_positive, default=4, help="of the demo topic (default 4)"
    )
    parser.add_argument(
        "--size", type=_positive, default=100, help="bytes per message value (default 100)"
    )
    parser.add_argument(
        "--compression",
        choices=_CODECS,
        default="none",
        help="producer compression codec (default none)",
    )
    return parser


# ---------------------------------------------------------------------------- progress


class Progress:
    """A progress bar on one terminal line, or a few plain lines when not on a terminal.

    Counting (:meth:`advance`) is cheap and never writes; a task running :meth:`run` redraws
    ten times a second, so the bar costs the same whatever the message rate. ``accepted``,
    when set, is shown beside the count: how far the producer has got ahead of the
    acknowledgements (at most the partitions' buffers).
    """

    def __init__(self, total: int, out: TextIO, *, width: int = 32) -> None:
        self.total = total
        self.done = 0
        self.accepted: int | None = None
        self._out = out
        self._width = width
        self._tty = out.isatty()
        self._started = time.monotonic()
        self._last_quarter = 0

    def advance(self, count: int = 1) -> None:
        """Count ``count`` more items done."""
        self.done += count

    async def run(self) -> None:
        """Redraw until cancelled."""
        while True:
            self.draw()
            await trio.sleep(0.1)

    def _text(self, fraction: float) -> str:
        digits = len(f"{self.total:,}")
        text = f"{fraction:6.1%}  {self.done:>{digits},}/{self.total:,}"
        if self.accepted is not None:
            text += f"  (accepted {self.accepted:>{digits},})"
        return f"{text}  {time.monotonic() - self._started:5.1f} s"

    def draw(self) -> None:
        """Show the current state (a terminal line, or a plain line per quarter done)."""
        fraction = min(self.done / self.total, 1.0)
        if self._tty:
            filled = int(fraction * self._width)
            bar = "#" * filled + "-" * (self._width - filled)
            self._out.write(f"\r  [{bar}] {self._text(fraction)}")
            self._out.flush()
            return
        quarter = int(fraction * 4)
        if quarter > self._last_quarter:
            self._last_quarter = quarter
            print(f"  {self._text(fraction)}", file=self._out, flush=True)

    def finish(self) -> None:
        """Draw the final state and end the line."""
        self.draw()
        if self._tty:
            self._out.write("\n")
            self._out.flush()


def _rate(count: int, nbytes: int, seconds: float) -> str:
    seconds = max(seconds, 1e-9)
    return (
        f"{count:,} messages in {seconds:.2f} s: "
        f"{count / seconds:,.0f} msg/s, {nbytes / seconds / 1e6:,.1f} MB/s"
    )


# ---------------------------------------------------------------------------- metadata


def _print_metadata(metadata: ClusterMetadata, versions: dict[str, int]) -> None:
    print("Cluster metadata, as trio-brod sees it:")
    print(f"  cluster id  {metadata.cluster_id}")
    print(f"  controller  node {metadata.controller_id}")
    print("  api versions in use  " + ", ".join(f"{k} v{v}" for k, v in versions.items()))
    print()
    print("  brokers")
    print(f"    {'node':>4}  {'address':<21}  rack")
    for broker in sorted(metadata.brokers.values(), key=lambda b: b.node_id):
        print(f"    {broker.node_id:>4}  {broker.address:<21}  {broker.rack or '-'}")
    print()
    print("  topics")
    name_width = max([len("topic"), *(len(name) for name in metadata.topics)])
    print(f"    {'topic':<{name_width}}  partition  leader  replicas  in-sync")
    for name in sorted(metadata.topics):
        topic = metadata.topics[name]
        for index in sorted(topic.partitions):
            partition = topic.partitions[index]
            replicas = ",".join(map(str, partition.replicas))
            isr = ",".join(map(str, partition.isr))
            label = name if index == min(topic.partitions) else ""
            print(
                f"    {label:<{name_width}}  {index:>9}  {partition.leader:>6}  "
                f"{replicas:>8}  {isr:>7}"
            )
    print()


# ---------------------------------------------------------------------------- produce


@dataclasses.dataclass
class _Sent:
    """What was produced to one partition: how many messages, and the sum of their keys
    (sequence numbers), to check the consumed messages against."""

    count: int = 0
    key_sum: int = 0


async def _produce(
    client: trio_brod.Client, messages: int, size: int, config: ProducerConfig
) -> dict[int, _Sent]:
    """Produce ``messages`` keyed messages; return what each partition got."""
    await client.start_producer(TOPIC, config)
    idempotent = "idempotent" if config.idempotent else "not idempotent"
    print(
        f"Producing {messages:,} messages ({size} B values, {_KEY_DIGITS} B keys, "
        f"acks={config.required_acks}, {idempotent}, compression {config.compression})"
    )
    progress = Progress(messages, sys.stdout)
    progress.accepted = 0
    per_partition: dict[int, _Sent] = {}
    last_receipts: dict[int, DeliveryReceipt] = {}
    failures: list[BaseException] = []

    def on_delivered(receipt: DeliveryReceipt) -> None:
        # Runs in the partition's producer task: keep it short.
        error = receipt.exception()
        if error is None:
            progress.advance()
        else:
            failures.append(error)

    padding = b"." * max(size - _KEY_DIGITS, 0)
    started = time.monotonic()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(progress.run)
        for sequence in range(messages):
            key = b"%0*d" % (_KEY_DIGITS, sequence)
            # The value holds the key too, so the consumer can check it; the rest is filler.
            value = (key + padding)[:size]
            receipt = await client.produce(TOPIC, value, key=key)
            progress.accepted = sequence + 1
            receipt.add_done_callback(on_delivered)
            sent = per_partition.get(receipt.partition)
            if sent is None:
                sent = per_partition[receipt.partition] = _Sent()
            sent.count += 1
            sent.key_sum += sequence
            last_receipts[receipt.partition] = receipt
        # Receipts of a partition complete in order: once its last is done, all are.
        for receipt in last_receipts.values():
            await receipt.wait()
        nursery.cancel_scope.cancel()
    elapsed = time.monotonic() - started
    progress.finish()
    if failures:
        raise failures[0]
    print(f"  produced {_rate(messages, messages * (size + _KEY_DIGITS), elapsed)}")
    spread = "  ".join(f"[{p}] {sent.count:,}" for p, sent in sorted(per_partition.items()))
    print(f"  per partition (murmur2 of the key, as the Java client): {spread}")
    print()
    return per_partition


# ---------------------------------------------------------------------------- consume


class CheckFailed(Exception):
    """The messages consumed back are not those produced."""


async def _consume_partition(
    client: trio_brod.Client, partition: int, sent: _Sent, progress: Progress, sizes: list[int]
) -> None:
    """Read one partition from the start to its end, and check it holds what was sent.

    Keys are sequence numbers: they must increase (produce order, no duplicates), and their
    count and sum must be those produced (no loss, nothing foreign).
    """
    end = await client.resolve_offset(TOPIC, partition, "latest")
    if end != sent.count:
        raise CheckFailed(
            f"partition {partition} holds {end} messages, {sent.count} were produced to it"
        )
    count = nbytes = key_sum = 0
    previous = -1
    if end == 0:
        return
    async with client.subscribe(TOPIC, partition, begin_offset="earliest") as subscription:
        async for message_set in subscription:
            for message in message_set:
                key = message.key
                value = message.value
                if key is None or value is None:
                    raise CheckFailed(f"partition {partition}, offset {message.offset}: no key")
                sequence = int(key)
                if sequence <= previous or not key.startswith(value[:_KEY_DIGITS]):
                    raise CheckFailed(
                        f"partition {partition}, offset {message.offset}: key {key!r} after "
                        f"sequence {previous} (or a value that does not match its key)"
                    )
                previous = sequence
                key_sum += sequence
                nbytes += len(key) + len(value)
            count += len(message_set)
            progress.advance(len(message_set))
            subscription.ack(message_set.high_offset)
            if message_set.high_offset + 1 >= end:
                break
    if (count, key_sum) != (sent.count, sent.key_sum):
        raise CheckFailed(
            f"partition {partition}: consumed {count} messages with key sum {key_sum}, "
            f"produced {sent.count} with key sum {sent.key_sum}"
        )
    sizes.append(nbytes)


async def _consume(client: trio_brod.Client, per_partition: dict[int, _Sent]) -> None:
    total = sum(sent.count for sent in per_partition.values())
    partitions = await client.get_partitions_count(TOPIC)
    print(
        f"Consuming them back: one subscription per partition ({partitions}), "
        "from the earliest offset, acking each message set"
    )
    progress = Progress(total, sys.stdout)
    sizes: list[int] = []
    started = time.monotonic()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(progress.run)
        async with trio.open_nursery() as consumers:
            for partition in range(partitions):
                consumers.start_soon(
                    _consume_partition,
                    client,
                    partition,
                    per_partition.get(partition, _Sent()),
                    progress,
                    sizes,
                )
        nursery.cancel_scope.cancel()
    elapsed = time.monotonic() - started
    progress.finish()
    print(f"  consumed {_rate(progress.done, sum(sizes), elapsed)}")
    print(
        f"  checked: all {total:,} messages, each partition in produce order, "
        "none lost, none repeated"
    )
    print()


# ---------------------------------------------------------------------------- group

GROUP = "trio-brod-demo-group"


async def _consume_as_group(
    bootstrap: Sequence[str], per_partition: dict[int, _Sent], partitions: int
) -> None:
    """Read the topic again as a consumer group of two members, each its own client.

    The members wait until the group has settled (both joined, every partition owned once)
    before handling messages, so that the assignment printed is the one that consumed; a
    handler interrupted by a rebalance hands its message set back unacknowledged
    (``False``), and the partition's next owner reads it again from the group's commit.
    """
    total = sum(sent.count for sent in per_partition.values())
    print(
        f"Consuming them once more as consumer group {GROUP!r}: two members, each its own "
        "client, cooperative-sticky assignment"
    )
    settled = trio.Event()
    done = trio.Event()
    seen: dict[int, set[int]] = {p: set() for p in range(partitions)}
    handled = {"member-1": 0, "member-2": 0}
    config = trio_brod.GroupConfig(session_timeout=10.0, heartbeat_rate=0.5)

    def handler(name: str) -> GroupHandler:
        async def handle(assigned: trio_brod.AssignedPartition, message_set: MessageSet) -> Any:
            if not settled.is_set():
                with assigned.interruptible():
                    await settled.wait()
                if assigned.revoked:
                    return False  # not handled: its next owner gets it from the commit
            seen[assigned.partition].update(m.offset for m in message_set)
            handled[name] += len(message_set)
            if sum(len(offsets) for offsets in seen.values()) >= total:
                done.set()
            return None

        return handle

    started = time.monotonic()
    async with (
        trio_brod.open_client(bootstrap, client_id="demo-member-1") as client1,
        trio_brod.open_client(bootstrap, client_id="demo-member-2") as client2,
        trio_brod.open_group_subscriber(
            client1, GROUP, [TOPIC], handler("member-1"), config=config, message_type="message_set"
        ) as member1,
        trio_brod.open_group_subscriber(
            client2, GROUP, [TOPIC], handler("member-2"), config=config, message_type="message_set"
        ) as member2,
    ):
        members = {"member-1": member1, "member-2": member2}
        with trio.fail_after(60):
            while not _settled(list(members.values()), partitions):  # noqa: ASYNC110
                await trio.sleep(0.05)
        print(f"  the group settled in {time.monotonic() - started:.1f} s:")
        for name, member in members.items():
            health = member.health()
            owned = ", ".join(str(a.partition) for a in member.assignments())
            print(
                f"    {name}  generation {health.generation_id}  "
                f"member id {health.member_id}  partitions {owned}"
            )
        settled.set()
        with trio.fail_after(120):
            await done.wait()
        elapsed = time.monotonic() - started
        for member in members.values():
            await member.commit()
    counts = ", ".join(f"{name} {count:,}" for name, count in handled.items())
    print(f"  consumed {total:,} messages in {elapsed:.2f} s ({counts}), offsets committed")
    for partition, offsets in seen.items():
        expected = per_partition.get(partition, _Sent()).count
        if offsets != set(range(expected)):
            raise CheckFailed(
                f"group: partition {partition}: {len(offsets)} offsets handled, not {expected}"
            )
    print("  checked: every message handled by the group, each partition by one member")
    print()


# ---------------------------------------------------------------------------- transactions

OUTPUT = "trio-brod-demo-out"


async def _transform(
    bootstrap: Sequence[str], per_partition: dict[int, _Sent], partitions: int
) -> None:
    """Consume-transform-produce exactly once (brod's ``txn_do``): copy every message to
    another topic, in transactions that also commit the input's offsets; then show that an
    aborted transaction's records stay invisible to ``read_committed`` readers."""
    total = sum(sent.count for sent in per_partition.values())
    print(
        f"Consume-transform-produce, exactly once: {TOPIC!r} -> {OUTPUT!r} by "
        "open_transaction_processor (each batch of message sets, its output and its offsets "
        "in one transaction)"
    )

    async def process(txn: trio_brod.Transaction, message_set: MessageSet) -> None:
        for message in message_set:
            await txn.produce(OUTPUT, message.value, message.key, partition=message_set.partition)

    started = time.monotonic()
    async with trio_brod.open_client(bootstrap, client_id="demo-processor") as client:
        async with trio_brod.open_transaction_processor(
            client,
            "trio-brod-demo-eos",
            [TOPIC],
            process,
            transactional_id="trio-brod-demo-eos-1",
            group_config=trio_brod.GroupConfig(session_timeout=10.0, heartbeat_rate=0.5),
        ) as processor:
            with trio.fail_after(120):
                while processor.messages < total:  # noqa: ASYNC110 (the processor's tasks)
                    await trio.sleep(0.02)
            elapsed = time.monotonic() - started
            print(
                f"  {total:,} messages in {processor.transactions:,} transactions in "
                f"{elapsed:.2f} s (join included)"
            )
        # An aborted transaction: what it wrote is in the log, and skipped by readers.
        async with client.transactional_producer("trio-brod-demo-aborting") as tp:
            try:
                async with tp.transaction() as txn:
                    await txn.produce(OUTPUT, b"never seen", partition=0)
                    raise _Rollback
            except _Rollback:
                pass
        copied = await _read_committed(client, OUTPUT, partitions)
    if copied != {p: sent.count for p, sent in per_partition.items() if sent.count}:
        raise CheckFailed(f"transactions: {copied} copied, not {per_partition}")
    print("  then one transaction aborted after producing a message: not visible")
    print("  checked (read_committed): every message copied exactly once, the aborted one not")
    print()


class _Rollback(Exception):
    """Raised in the demo's transaction to abort it."""


async def _read_committed(client: trio_brod.Client, topic: str, partitions: int) -> dict[int, int]:
    """How many committed messages each partition of a topic holds."""
    counts: dict[int, int] = {}
    for partition in range(partitions):
        end = await client.resolve_offset(
            topic, partition, "latest", isolation_level="read_committed"
        )
        offset = 0
        while offset < end:
            batch = await client.fetch(topic, partition, offset, isolation_level="read_committed")
            counts[partition] = counts.get(partition, 0) + sum(1 for m in batch if m.offset < end)
            offset = batch.next_offset
    return counts


def _settled(members: list[trio_brod.GroupSubscriber], partitions: int) -> bool:
    """Both members stable in one generation, every partition owned by exactly one."""
    healths = [m.health() for m in members]
    if any(h.state != "stable" for h in healths):
        return False
    if len({h.generation_id for h in healths}) != 1:
        return False
    owned = [a.partition for m in members for a in m.assignments()]
    return sorted(owned) == list(range(partitions)) and all(m.assignments() for m in members)


# ---------------------------------------------------------------------------- main


async def _demo(args: argparse.Namespace) -> None:
    # Java first: without it, fetching jars would only postpone the bad news.
    await trio.to_thread.run_sync(find_java)
    try:
        jars = await trio.to_thread.run_sync(lambda: resolve_kafka_jars(fetch=False))
    except KafkaNotAvailable:
        print(
            "The Kafka jars are not cached yet: fetching them with Maven (about 54 MB, "
            "first run only)...",
            flush=True,
        )
        started = time.monotonic()
        jars = await trio.to_thread.run_sync(resolve_kafka_jars)
        print(f"  fetched in {time.monotonic() - started:.1f} s into {jars.libs}")
    print(
        f"Starting a local Kafka {jars.version} broker (trio_brod.testing, Java "
        f"{jars.java.major})...",
        end=" ",
        flush=True,
    )
    started = time.monotonic()
    async with kafka_cluster(brokers=1) as cluster:
        print(f"ready in {time.monotonic() - started:.1f} s at {cluster.bootstrap_servers[0]}")
        await _run(cluster, args)
        print("Stopping the broker...", flush=True)


async def _run(cluster: AsyncKafkaCluster, args: argparse.Namespace) -> None:
    started = time.monotonic()
    print(f"Creating topic {TOPIC!r} with {args.partitions} partitions...", end=" ", flush=True)
    await cluster.create_topic(TOPIC, partitions=args.partitions)
    print(f"done in {time.monotonic() - started:.1f} s")
    print()
    async with trio_brod.open_client(
        cluster.bootstrap_servers, client_id="trio-brod-demo"
    ) as client:
        metadata = await client.get_metadata()
        broker = metadata.brokers[min(metadata.brokers)]
        connection = await client.get_connection(broker.host, broker.port)
        versions = {
            api.NAME.removesuffix("Request"): connection.best_version(api)
            for api in (MetadataRequest, ProduceRequest, FetchRequest)
        }
        # Plain and idempotent producers stop at Produce v11 (v12 is transactions v2's).
        versions["Produce"] = min(versions["Produce"], ProducerIdentity.PLAIN_PRODUCE[1])
        _print_metadata(metadata, versions)
        config = ProducerConfig(compression=args.compression)
        per_partition = await _produce(client, args.messages, args.size, config)
        await _consume(client, per_partition)
    await _consume_as_group(cluster.bootstrap_servers, per_partition, args.partitions)
    await cluster.create_topic(OUTPUT, partitions=args.partitions)
    await _transform(cluster.bootstrap_servers, per_partition, args.partitions)


class _Terminated(Exception):
    """SIGTERM arrived: stop as after Ctrl-C, stopping the broker on the way out."""


async def _raise_on_sigterm(
    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        task_status.started()
        async for _ in signals:
            raise _Terminated


async def _demo_until_terminated(args: argparse.Namespace) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(_raise_on_sigterm)
        await _demo(args)
        nursery.cancel_scope.cancel()


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions in a (possibly nested) exception group, or ``[exc]``."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    args = _parser().parse_args(argv)
    print(
        f"trio-brod {trio_brod.__version__} demo: {args.messages:,} messages of {args.size} B, "
        f"{args.partitions} partitions, compression {args.compression}\n"
    )
    started = time.monotonic()
    try:
        trio.run(_demo_until_terminated, args)
    except BaseException as exc:  # sorted out below; anything else is re-raised
        # Errors may come wrapped in exception groups by the nurseries they crossed.
        leaves = _leaves(exc)
        if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
            print("\ninterrupted; the broker was stopped", file=sys.stderr)
            return 130
        if any(isinstance(leaf, _Terminated) for leaf in leaves):
            print("\nterminated; the broker was stopped", file=sys.stderr)
            return 143
        if len(leaves) == 1 and isinstance(leaves[0], (KafkaNotAvailable, KafkaStartError)):
            print(f"\nerror: cannot run Kafka: {leaves[0]}", file=sys.stderr)
            return 1
        if len(leaves) == 1 and isinstance(leaves[0], (CheckFailed, BrodError)):
            print(f"\nerror: {type(leaves[0]).__name__}: {leaves[0]}", file=sys.stderr)
            return 1
        raise
    print(f"Done in {time.monotonic() - started:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
