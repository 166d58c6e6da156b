"""Partitioners: how a producer picks a partition for a message that names none.

A partitioner is any callable ``(topic, partition_count, key, value) -> int`` returning a
partition number in ``range(partition_count)``, the Python form of brod's partitioner fun.
:class:`Partitioner` is its type.

Which one to pick
=================

``"default"`` (:class:`DefaultPartitioner`)
    What the Java client does, and the right choice unless you have a reason. A message with a
    key goes to ``murmur2(key) % partition_count`` (:func:`kafka_partition`), exactly the
    partition Kafka's Java producer (and librdkafka's ``murmur2_random``) would choose, so
    producers in different languages agree on where a key lives. Keyless messages are
    *sticky*: they fill one partition for a while (``switch_bytes`` of values), then move to
    another chosen at random. Sticking makes bigger batches than spreading every message
    (fewer requests, better compression), and the random moves still spread the load.

``"hash"`` or ``"murmur2"`` (:func:`hash_partitioner`)
    murmur2 of the key for every message; a missing key hashes like an empty one, so all
    keyless messages go to one partition (librdkafka calls this ``murmur2``). brod's own
    ``hash`` partitioner uses Erlang's ``erlang:phash2/2``, which has no meaning in Python;
    trio-brod hashes with Kafka's murmur2 instead, so that it agrees with the Java client.

``"random"`` (:func:`random_partitioner`)
    A uniformly random partition for every message, keyed or not. No ordering between any
    two messages, and smaller batches than sticky; useful for tests and for spreading load
    when order does not matter at all.

``"sticky"`` (:class:`StickyPartitioner`)
    Sticky for every message, ignoring keys: the biggest batches, no per-key placement.

A callable
    Your own rule, e.g. ``lambda topic, count, key, value: int(key) % count``.

Keyed ordering needs a stable partition count
=============================================

Kafka orders messages within a partition only. Hashing a key to a partition keeps every
message of that key in one partition, hence in order, *as long as the partition count stays
the same*: ``murmur2(key) % 8`` and ``murmur2(key) % 12`` differ for most keys, so adding
partitions to a topic moves most keys to another partition, and a consumer may then see a
key's new messages before its old ones still waiting in the old partition. Choose the
partition count up front for keyed topics (over-provisioning is cheap), or drain the
producers and consumers before adding partitions.
"""

from __future__ import annotations

import operator
import random
import struct
import sys
from collections.abc import Callable
from typing import Final, TypeAlias

from trio_brod._config import Partitioner, PartitionerName, check_partitioner
from trio_brod._exceptions import ConfigError
from trio_brod.protocol import records as _records

__all__ = [
    "DEFAULT_SWITCH_BYTES",
    "DefaultPartitioner",
    "Partitioner",
    "PartitionerName",
    "PartitionerSpec",
    "StickyPartitioner",
    "checked_partition",
    "hash_partitioner",
    "kafka_partition",
    "murmur2",
    "random_partitioner",
    "resolve_partitioner",
    "to_positive",
]


#: What :func:`resolve_partitioner` accepts: a name, a partitioner, or ``None`` (default).
PartitionerSpec: TypeAlias = PartitionerName | Partitioner | None

#: How many bytes of keyless values a sticky partition takes before moving on; the same as
#: the Java producer's default ``batch.size``, the size the stickiness is meant to fill.
DEFAULT_SWITCH_BYTES: Final = 16384


# --------------------------------------------------------------------------------------------
# murmur2, as Kafka's Java client computes it
# --------------------------------------------------------------------------------------------

_SEED: Final = 0x9747B28C
_M: Final = 0x5BD1E995
_MASK32: Final = 0xFFFFFFFF

# Keys of at least this many 32-bit words take the lane path in _murmur2_u32 (see there).
# Measured: below 8 words (32 bytes) its fixed cost of about 0.6 us outweighs what it saves.
_LANES_FROM_WORDS: Final = 8

# For keys shorter than that: one precompiled struct per word count, "<nI", to unpack all of
# a key's little-endian words in a single C call (at most _LANES_FROM_WORDS of them).
_word_unpackers: Final = [struct.Struct(f"<{n}I").unpack_from for n in range(_LANES_FROM_WORDS)]
# For the lane path: (mask of the low 32 bits of each 64-bit lane, mask of the low 8 bits of
# each lane), per number of lanes, cached for keys up to 1 KiB (at most 64 KiB of masks).
_lane_masks: dict[int, tuple[int, int]] = {}
_MAX_CACHED_LANES: Final = 128
_LITTLE_ENDIAN = sys.byteorder == "little"


def _lane_mask_pair(lanes: int) -> tuple[int, int]:
    masks = (
        int.from_bytes(b"\xff\xff\xff\xff\0\0\0\0" * lanes, "little"),
        int.from_bytes(b"\xff\0\0\0\0\0\0\0" * lanes, "little"),
    )
    if lanes <= _MAX_CACHED_LANES:
        _lane_masks[lanes] = masks
    return masks


def _murmur2_u32_python(data: bytes) -> int:
    """murmur2 of ``data`` as an unsigned 32-bit int (Java's int bits, read unsigned).

    The pure-Python version, used where the C one (below) is not.

    The arithmetic is Java's int arithmetic: Python ints do not wrap, so every product is
    masked back to 32 bits. A mask is only needed where the next step looks at high bits
    (a right shift); the low 32 bits of a product depend only on the low 32 bits of its
    factors, so some masks are merged into one later mask.
    """
    length = len(data)
    h = _SEED ^ length
    words = length >> 2
    body = words << 2
    if words < _LANES_FROM_WORDS:
        for k in _word_unpackers[words](data):
            k = k * _M & _MASK32
            # Java: k ^= k >>> 24; k *= m; h *= m; h ^= k. One mask serves both products.
            h = (h * _M ^ (k ^ k >> 24) * _M) & _MASK32
    else:
        # The word mixing (k *= m; k ^= k >>> 24; k *= m) of each word is independent of
        # the others, so it is done for all words at once on big ints, a few C-speed
        # operations instead of a Python loop over the words: the even and the odd words
        # are spread into 64-bit lanes (a 32x32-bit product fits a lane, so lanes never
        # carry into each other), mixed, and packed back. Only the chaining into h, which
        # is sequential, remains a Python loop. About 1.5x faster at 100 bytes, 2x at 1 KB.
        lane, low8 = _lane_masks.get((words + 1) >> 1) or _lane_mask_pair((words + 1) >> 1)
        packed = int.from_bytes(data[:body], "little")
        even = (packed & lane) * _M & lane
        odd = (packed >> 32 & lane) * _M & lane
        even = (even ^ (even >> 24 & low8)) * _M & lane
        odd = (odd ^ (odd >> 24 & low8)) * _M & lane
        mixed = (even | odd << 32).to_bytes(body, "little")
        # A memoryview reads the words in the machine's byte order: right on little-endian
        # machines (nearly all); elsewhere, unpack them explicitly.
        ks = memoryview(mixed).cast("I") if _LITTLE_ENDIAN else struct.unpack(f"<{words}I", mixed)
        for k in ks:
            h = (h * _M ^ k) & _MASK32
    if length & 3:
        # Java XORs the 1 to 3 tail bytes in at bit offsets 0, 8 and 16: that is the tail
        # read as a little-endian number.
        h = (h ^ int.from_bytes(data[body:], "little")) * _M & _MASK32
    h ^= h >> 13
    h = h * _M & _MASK32
    return h ^ h >> 15


# The same hash from the C extension that speeds up the record codec (about 0.05 us for a
# 16-byte key instead of 0.9), when records.py uses that extension.
_murmur2_u32: Callable[[bytes], int] = _murmur2_u32_python
if _records.IMPLEMENTATION == "c":
    from trio_brod.protocol._speedups import murmur2_u32 as _murmur2_u32


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of ``data``, as ``org.apache.kafka.common.utils.Utils.murmur2``.

    MurmurHash2 (32-bit) with seed ``0x9747b28c``, read as little-endian 4-byte words, and
    the result a signed 32-bit int as Java returns it: ``murmur2(b"21") == -973932308``.

    About 0.05 us for a 16-byte key with trio-brod's C extension, 0.9 us in pure Python
    (CPython 3.11); see :data:`trio_brod.protocol.records.IMPLEMENTATION`.
    """
    h = _murmur2_u32(data)
    return h - 0x100000000 if h & 0x80000000 else h


def to_positive(n: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit of a 32-bit int.

    Not ``abs``: ``to_positive(-1) == 0x7fffffff`` and ``to_positive(-2**31) == 0``.
    """
    return n & 0x7FFFFFFF


def kafka_partition(key: bytes, partition_count: int) -> int:
    """The partition Kafka's Java producer picks for ``key``:
    ``to_positive(murmur2(key)) % partition_count``.

    The same as ``BuiltInPartitioner.partitionForKey`` in kafka-clients.

    Raises:
        ConfigError: ``partition_count`` is below 1.
    """
    if partition_count < 1:
        raise _bad_count(partition_count)
    return (_murmur2_u32(key) & 0x7FFFFFFF) % partition_count


# --------------------------------------------------------------------------------------------
# The partitioners
# --------------------------------------------------------------------------------------------


def _bad_count(partition_count: int) -> ConfigError:
    return ConfigError(f"partition_count={partition_count!r}: expected an int >= 1")


def hash_partitioner(
    topic: str, partition_count: int, key: bytes | None, value: bytes | None
) -> int:
    """murmur2 of the key for every message, as the Java client hashes keys.

    A missing key hashes like ``b""``, so every keyless message goes to the same partition.
    This is trio-brod's form of brod's ``hash`` partitioner; brod hashes with Erlang's
    ``phash2``, which means nothing outside Erlang, so trio-brod uses Kafka's murmur2 and
    agrees with the Java client (and librdkafka's ``murmur2``) on every keyed message.
    """
    if partition_count < 1:
        raise _bad_count(partition_count)
    return (_murmur2_u32(b"" if key is None else key) & 0x7FFFFFFF) % partition_count


_random = random.random


def random_partitioner(
    topic: str, partition_count: int, key: bytes | None, value: bytes | None
) -> int:
    """A uniformly random partition for every message; the key is ignored."""
    if partition_count < 1:
        raise _bad_count(partition_count)
    # int(random() * n) rather than randrange(n): a third of the time. Its bias, from
    # random() having 53 bits, is below 2**-22 for any partition count Kafka allows.
    return int(_random() * partition_count)


class _Sticky:
    """Where keyless messages of one topic currently go, and how full that partition is."""

    __slots__ = ("filled", "partition")

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.filled = 0


class _StickyChooser:
    """The sticky choice shared by :class:`StickyPartitioner` and :class:`DefaultPartitioner`.

    Per topic, messages go to one partition until their values add up to at least
    ``switch_bytes``; the next goes to another partition chosen at random.
    """

    __slots__ = ("_randrange", "_states", "switch_bytes")

    def __init__(
        self, switch_bytes: int = DEFAULT_SWITCH_BYTES, *, rng: random.Random | None = None
    ) -> None:
        if isinstance(switch_bytes, bool) or not isinstance(switch_bytes, int) or switch_bytes < 1:
            raise ConfigError(f"switch_bytes={switch_bytes!r}: expected an int >= 1")
        #: How many bytes of values a partition takes before the next message moves on.
        self.switch_bytes: Final = switch_bytes
        self._randrange = (rng if rng is not None else random.Random()).randrange
        self._states: dict[str, _Sticky] = {}

    def current_partition(self, topic: str) -> int | None:
        """The partition keyless messages of ``topic`` go to now; ``None`` before the first.

        The next message may still go elsewhere, if this partition has had its fill.
        """
        state = self._states.get(topic)
        return None if state is None else state.partition

    def _sticky(self, topic: str, partition_count: int, value: bytes | None) -> int:
        state = self._states.get(topic)
        if state is None or state.partition >= partition_count:
            # First message of the topic, or the caller now counts fewer partitions than the
            # one we were on (a stale count; Kafka itself never shrinks a topic).
            if partition_count < 1:
                raise _bad_count(partition_count)
            state = self._states[topic] = _Sticky(self._randrange(partition_count))
        elif state.filled >= self.switch_bytes:
            if partition_count > 1:
                # A random partition other than the current one: draw from one fewer, and
                # step over the current one.
                other = self._randrange(partition_count - 1)
                state.partition = other + 1 if other >= state.partition else other
            state.filled = 0
        # An empty or missing value counts 1, so that even those move on eventually.
        state.filled += len(value) if value else 1
        return state.partition

    def __repr__(self) -> str:
        return f"{type(self).__name__}(switch_bytes={self.switch_bytes})"


class StickyPartitioner(_StickyChooser):
    """Sticky partitioning for every message, keys ignored (``"sticky"``).

    Messages go to one partition until their values add up to at least ``switch_bytes``;
    the next message goes to another partition chosen at random, never the same one twice
    in a row when the topic has more than one. Each message counts ``len(value)``, but at
    least 1, so that a stream of empty values moves on too. Each topic has its own sticky
    partition.

    Use one instance per producer: it keeps state. Not thread-safe (a Trio program runs its
    tasks in one thread).

    Args:
        switch_bytes: How many bytes of values a partition takes before moving on. The
            default, 16384, is the Java producer's default ``batch.size``; set it near your
            ``max_batch_size`` if batches should fill completely.
        rng: The random number generator for choosing partitions; a seeded
            ``random.Random(...)`` makes the choices reproducible. Default: a new one.
    """

    __slots__ = ()

    def __call__(
        self, topic: str, partition_count: int, key: bytes | None, value: bytes | None
    ) -> int:
        """Return the sticky partition of ``topic``, moving on first if it is full."""
        return self._sticky(topic, partition_count, value)


class DefaultPartitioner(_StickyChooser):
    """The Java client's partitioning (``"default"``): murmur2 for keys, sticky otherwise.

    A message with a key goes to ``to_positive(murmur2(key)) % partition_count``, the
    partition Kafka's Java producer picks for it. A message without one (``key is None``)
    goes to the topic's sticky partition, as :class:`StickyPartitioner` describes; keyed
    messages neither use nor move the sticky partition. An empty key ``b""`` is a key.

    Use one instance per producer: the sticky part keeps state.

    Args:
        switch_bytes: How many bytes of keyless values a partition takes before moving on.
        rng: The random number generator for keyless messages. Default: a new one.
    """

    __slots__ = ()

    def __call__(
        self, topic: str, partition_count: int, key: bytes | None, value: bytes | None
    ) -> int:
        """Return the murmur2 partition of ``key``, or the sticky partition if it is None."""
        if key is None:
            return self._sticky(topic, partition_count, value)
        if partition_count < 1:
            raise _bad_count(partition_count)
        return (_murmur2_u32(key) & 0x7FFFFFFF) % partition_count


# --------------------------------------------------------------------------------------------
# Choosing and checking
# --------------------------------------------------------------------------------------------


def resolve_partitioner(spec: str | Partitioner | None) -> Partitioner:
    """Turn a producer's ``partitioner`` setting into a partitioner.

    Any string is accepted by the type, because this is where a setting is checked; the
    names that work are those of :data:`PartitionerName`.

    ``None`` and ``"default"`` give a new :class:`DefaultPartitioner`, ``"sticky"`` a new
    :class:`StickyPartitioner` (new ones, because they keep state), ``"hash"`` and
    ``"murmur2"`` :func:`hash_partitioner`, ``"random"`` :func:`random_partitioner`. A
    callable is returned as it is.

    Raises:
        ConfigError: ``spec`` is none of these; the message names it. A partitioner class
            (rather than an instance) is refused too, with a hint.
    """
    check_partitioner(spec)  # the ConfigError, for anything but the cases below
    if spec is None or spec == "default":
        return DefaultPartitioner()
    if spec in ("hash", "murmur2"):
        return hash_partitioner
    if spec == "random":
        return random_partitioner
    if spec == "sticky":
        return StickyPartitioner()
    assert callable(spec)
    return spec


def _describe(partitioner: object) -> str:
    name = getattr(partitioner, "__qualname__", None)
    if isinstance(name, str):
        module = getattr(partitioner, "__module__", None)
        return f"{module}.{name}" if isinstance(module, str) else name
    return repr(partitioner)


def checked_partition(
    partitioner: Partitioner,
    topic: str,
    partition_count: int,
    key: bytes | None,
    value: bytes | None,
) -> int:
    """Call ``partitioner`` and check that its answer is a partition of the topic.

    A result outside ``range(partition_count)``, or not an integer, is a bug in the
    partitioner; sending to a partition that does not exist would fail later and further
    from the cause, so it is refused here. Integer types other than ``int`` (a NumPy
    integer, say) are accepted and converted; ``bool`` is not.

    Raises:
        ConfigError: ``partition_count`` is below 1, or the result is not a partition; the
            message names the partitioner, the topic and the bad value.
    """
    if partition_count < 1:
        raise ConfigError(
            f"cannot pick a partition of {topic!r}: partition_count={partition_count!r}"
        )
    result = partitioner(topic, partition_count, key, value)
    if type(result) is not int:
        result = _as_int(partitioner, topic, partition_count, result)
    if not 0 <= result < partition_count:
        raise _bad_result(partitioner, topic, partition_count, result)
    return result


def _as_int(partitioner: object, topic: str, partition_count: int, result: object) -> int:
    if not isinstance(result, bool):
        try:
            return operator.index(result)  # type: ignore[arg-type]
        except TypeError:
            pass
    raise _bad_result(partitioner, topic, partition_count, result)


def _bad_result(
    partitioner: object, topic: str, partition_count: int, result: object
) -> ConfigError:
    return ConfigError(
        f"partitioner {_describe(partitioner)} returned {result!r} for topic {topic!r}, "
        f"which has {partition_count} partitions: expected an int in "
        f"range(0, {partition_count})"
    )
