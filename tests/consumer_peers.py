"""Producing with another client (confluent-kafka, i.e. librdkafka) for consumer tests.

What trio-brod consumes in these tests was written by a client that is not trio-brod, so
the tests check it against Kafka as others write it, not against our own encoder. The
producers are blocking; call these helpers through :func:`trio.to_thread.run_sync`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from trio_brod.protocol.records import Record

Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True)
class Sent:
    """A message as produced, and the offset the broker gave it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp: int

    def matches(self, record: Record) -> bool:
        return (
            record.offset == self.offset
            and record.key == self.key
            and record.value == self.value
            and record.headers == self.headers
            and record.timestamp == self.timestamp
        )


@dataclass(frozen=True)
class Message:
    """A message to produce."""

    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    timestamp: int = 0  # 0: the producer's clock


def recent_timestamp_ms() -> int:
    """A timestamp six hours ago: messages from a test must be recent.

    Older than the topic's ``retention.ms`` (a week by default), the broker deletes them at its
    next retention check, which comes every five minutes and may well come between
    producing and consuming them; more than an hour ahead, it refuses them.
    """
    return int(time.time() * 1000) - 6 * 3600 * 1000


def random_messages(count: int, seed: int, *, max_size: int = 300) -> list[Message]:
    """Messages with random keys (or none), values (some empty, some None) and headers."""
    rng = random.Random(seed)
    base = recent_timestamp_ms() + seed * 100_000
    messages = []
    for i in range(count):
        key = None if rng.random() < 0.2 else rng.randbytes(rng.randint(0, 20))
        roll = rng.random()
        if roll < 0.02:
            value = None
        elif roll < 0.04:
            value = b""
        else:
            # Partly repetitive, so that codecs have something to squeeze.
            size = rng.randint(1, max_size)
            value = (b"%08d" % i + rng.randbytes(8)) * (size // 16) + rng.randbytes(size % 16)
        headers: list[tuple[str, bytes | None]] = []
        for h in range(rng.choice((0, 0, 1, 3))):
            headers.append((f"h{h}-é", None if rng.random() < 0.1 else rng.randbytes(5)))
        messages.append(Message(value, key, tuple(headers), base + i))
    return messages


def produce(
    bootstrap: Sequence[str],
    topic: str,
    partition: int,
    messages: Iterable[Message],
    **config: Any,
) -> list[Sent]:
    """Produce to one partition with librdkafka, in order; return what was written.

    ``config`` are librdkafka settings with ``_`` for ``.`` (``compression_type="zstd"``).
    """
    settings = {
        "bootstrap.servers": ",".join(bootstrap),
        "linger.ms": 20,
        "acks": "all",
        "enable.idempotence": True,  # in order, exactly once, whatever the retries
    }
    settings.update({key.replace("_", "."): value for key, value in config.items()})
    producer = Producer(settings)
    sent: list[Sent] = []
    errors: list[Any] = []

    def report(message: Message) -> Any:
        def done(error: Any, result: Any) -> None:
            if error is not None:
                errors.append(error)
                return
            stamp = result.timestamp()[1]
            sent.append(
                Sent(
                    partition,
                    result.offset(),
                    message.key,
                    message.value,
                    message.headers,
                    stamp,
                )
            )

        return done

    for message in messages:
        while True:
            try:
                producer.produce(
                    topic,
                    value=message.value,
                    key=message.key,
                    partition=partition,
                    headers=list(message.headers) or None,
                    timestamp=message.timestamp,
                    on_delivery=report(message),
                )
                break
            except BufferError:
                producer.poll(0.05)
    left = producer.flush(60)
    if left or errors:
        raise RuntimeError(f"librdkafka could not deliver {left} messages: {errors[:3]}")
    sent.sort(key=lambda s: s.offset)
    return sent


def transactional_producer(bootstrap: Sequence[str], transactional_id: str, **config: Any) -> Any:
    """A librdkafka transactional producer, transactions initialised."""
    settings = {
        "bootstrap.servers": ",".join(bootstrap),
        "transactional.id": transactional_id,
        "linger.ms": 5,
    }
    settings.update({key.replace("_", "."): value for key, value in config.items()})
    producer = Producer(settings)
    producer.init_transactions(60)
    return producer


def delete_records(bootstrap: Sequence[str], topic: str, partition: int, before: int) -> int:
    """Delete a partition's records before an offset (Kafka's DeleteRecords); return the new
    log start offset."""
    admin = AdminClient({"bootstrap.servers": ",".join(bootstrap)})
    futures = admin.delete_records([TopicPartition(topic, partition, before)])
    for future in futures.values():
        result = future.result(60)
        if isinstance(result, KafkaException):
            raise result
        low: int = getattr(result, "low_watermark", before)
        return low
    raise RuntimeError("DeleteRecords gave no result")
