"""Ask Kafka's own Java code what it computes, to check trio-brod against it.

``tests/java/KafkaPartitions.java`` reads ``<partition count> <hex key>`` lines and prints
``Utils.murmur2(key)`` and ``Utils.toPositive(Utils.murmur2(key)) % count`` for each (and
checks that ``BuiltInPartitioner.partitionForKey``, which the producer calls, agrees). This
module compiles it with ``javac`` against a Kafka classpath, once per source/classpath/JDK
(cached under the temp directory), and runs it::

    from javautil import java_partitions
    expected = java_partitions(kafka_jars.libs, keys, 8)

The classpath may be a directory of jars (``KafkaJars.libs``), one jar, a ready classpath
string (``KafkaJars.classpath``, ``"libs/*"``), or a list of any of those.

Unit tests must not need Java: they hold vectors made once with this module. To make them
again, with kafka-clients' jars in a directory (see ``tests/unit/test_partitioners.py``)::

    python tests/javautil.py vectors /tmp/kafka-clients > /tmp/vectors.py
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "JAVA_SOURCE",
    "Classpath",
    "JavaUnavailable",
    "classpath_string",
    "compile_java",
    "compile_kafka_partitions",
    "java_murmur2",
    "java_murmur2_and_partitions",
    "java_partitions",
    "murmur2_preimage",
    "vector_keys",
]

#: The Java program this module runs.
JAVA_SOURCE = Path(__file__).resolve().parent / "java" / "KafkaPartitions.java"
_MAIN_CLASS = "KafkaPartitions"

Classpath = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


class JavaUnavailable(RuntimeError):
    """There is no JDK (``java`` and ``javac``) here; the message says what to install."""


def classpath_string(classpath: Classpath) -> str:
    """The ``-cp`` argument for ``classpath``.

    A directory stands for all the jars in it (``dir/*``, which ``java`` and ``javac`` expand
    themselves); a file, or a string already holding a wildcard or a path separator, is used
    as it is.
    """
    if isinstance(classpath, str | os.PathLike):
        entries: Sequence[str | os.PathLike[str]] = [classpath]
    else:
        entries = classpath
    parts = []
    for entry in entries:
        text = os.fspath(entry)
        if "*" not in text and os.pathsep not in text and os.path.isdir(text):
            text = os.path.join(text, "*")
        parts.append(text)
    if not parts:
        raise ValueError("empty classpath: pass the Kafka jars (kafka-clients at least)")
    return os.pathsep.join(parts)


def _jdk_tool(name: str) -> str:
    java_home = os.environ.get("JAVA_HOME")
    path = os.path.join(java_home, "bin", name) if java_home else shutil.which(name)
    if not path or not os.access(path, os.X_OK):
        raise JavaUnavailable(
            f"{name} not found ({'$JAVA_HOME/bin' if java_home else 'PATH'}): install a JDK "
            "(Debian: apt-get install openjdk-17-jdk-headless) or set JAVA_HOME"
        )
    return path


@functools.cache
def compile_java(source_file: Path, main_class: str, classpath: str) -> Path:
    """Compile one Java source against ``classpath`` (once per source, classpath and JDK,
    cached across runs under the temp directory); return the classes directory."""
    javac = _jdk_tool("javac")
    source = source_file.read_bytes()
    digest = hashlib.sha256(b"\0".join([source, classpath.encode(), javac.encode()]))
    out = Path(tempfile.gettempdir()) / "trio-brod-java" / digest.hexdigest()[:24]
    if (out / f"{main_class}.class").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # Compile beside the cache and rename into place, so that a concurrent or interrupted
    # run never sees half a compilation.
    work = Path(tempfile.mkdtemp(prefix=".javac-", dir=out.parent))
    try:
        result = subprocess.run(
            [javac, "-nowarn", "-d", str(work), "-cp", classpath, str(source_file)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"javac failed (exit {result.returncode}) with -cp {classpath}; "
                f"is kafka-clients on it?\n{result.stdout}{result.stderr}"
            )
        try:
            work.rename(out)
        except OSError:
            if not (out / f"{main_class}.class").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def compile_kafka_partitions(classpath: Classpath) -> Path:
    """Compile ``KafkaPartitions.java`` against ``classpath``; return the classes directory.

    Compiled once per source, classpath and JDK, and cached across runs.

    Raises:
        JavaUnavailable: No ``javac``.
        RuntimeError: ``javac`` failed (the message holds its output).
    """
    return compile_java(JAVA_SOURCE, _MAIN_CLASS, classpath_string(classpath))


def java_murmur2_and_partitions(
    classpath: Classpath, requests: Iterable[tuple[bytes, int]]
) -> list[tuple[int, int]]:
    """Ask Kafka's Java code about each ``(key, partition_count)``.

    Returns one ``(Utils.murmur2(key), partition)`` per request, in order, where partition
    is ``Utils.toPositive(Utils.murmur2(key)) % partition_count``. One JVM serves them all,
    so 100,000 requests take about a second.
    """
    cp = classpath_string(classpath)
    classes = compile_java(JAVA_SOURCE, _MAIN_CLASS, cp)
    java = _jdk_tool("java")
    lines = []
    for key, count in requests:
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count < 2**31:
            raise ValueError(f"partition count {count!r}: expected an int in [1, 2**31)")
        lines.append(f"{count} {bytes(key).hex()}\n")
    result = subprocess.run(
        [java, "-cp", f"{classes}{os.pathsep}{cp}", _MAIN_CLASS],
        input="".join(lines),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        hint = ""
        if "NoClassDefFoundError" in result.stderr:
            hint = " (kafka-clients needs its dependencies too, slf4j-api at least)"
        raise RuntimeError(
            f"{_MAIN_CLASS} failed (exit {result.returncode}) with -cp {cp}{hint}:\n{result.stderr}"
        )
    answers = []
    for line in result.stdout.splitlines():
        hash_text, partition_text = line.split()
        answers.append((int(hash_text), int(partition_text)))
    if len(answers) != len(lines):
        raise RuntimeError(
            f"{_MAIN_CLASS} answered {len(answers)} of {len(lines)} requests:\n{result.stderr}"
        )
    return answers


def java_partitions(
    classpath: Classpath, keys: Sequence[bytes], counts: int | Sequence[int]
) -> list[int]:
    """The partition Kafka's Java producer picks for each key.

    ``counts`` is one partition count for all keys, or one per key.
    """
    if isinstance(counts, int):
        counts = [counts] * len(keys)
    elif len(counts) != len(keys):
        raise ValueError(f"{len(keys)} keys but {len(counts)} partition counts")
    answers = java_murmur2_and_partitions(classpath, zip(keys, counts, strict=True))
    return [partition for _, partition in answers]


def java_murmur2(classpath: Classpath, keys: Sequence[bytes]) -> list[int]:
    """``Utils.murmur2`` of each key, as the signed 32-bit ints Java returns."""
    return [h for h, _ in java_murmur2_and_partitions(classpath, ((key, 1) for key in keys))]


# --------------------------------------------------------------------------------------------
# The unit tests' vectors
# --------------------------------------------------------------------------------------------

_M = 0x5BD1E995
_M_INVERSE = pow(_M, -1, 2**32)
_MASK = 0xFFFFFFFF


def _undo_xorshift(value: int, shift: int) -> int:
    # Inverse of x ^= x >>> shift on 32 bits: each pass recovers `shift` more top bits.
    result = value
    for _ in range(32 // shift + 1):
        result = value ^ (result >> shift)
    return result


def murmur2_preimage(target: int) -> bytes:
    """A 4-byte key whose murmur2 is ``target`` (a signed 32-bit int).

    For a 4-byte key murmur2 is a bijection: h = ((seed ^ 4) * m) ^ mix(word), then the
    final avalanche, and every step (multiplying by the odd m mod 2**32, x ^= x >>> r, XOR
    with a constant) can be undone. So the steps are undone in reverse order.
    """
    h = target & _MASK
    h = _undo_xorshift(h, 15)
    h = h * _M_INVERSE & _MASK
    h = _undo_xorshift(h, 13)
    k = h ^ ((0x9747B28C ^ 4) * _M & _MASK)
    k = k * _M_INVERSE & _MASK
    k = _undo_xorshift(k, 24)
    k = k * _M_INVERSE & _MASK
    return k.to_bytes(4, "little")


def _pattern(length: int, step: int) -> bytes:
    return bytes((i * step + 7) & 0xFF for i in range(length))


def vector_keys() -> list[bytes]:
    """The keys of the unit tests' Java vectors: every tail length, the lane-path threshold
    of trio-brod's murmur2 (32 bytes), high bytes, non-ASCII text, Java serializers' ints,
    Kafka's own UtilsTest keys, and keys hashing to Integer.MIN_VALUE, MAX_VALUE, 0, -1."""
    keys = [
        # Empty, and the 1-3 byte tails alone, with sign-bit bytes (Java's bytes are signed).
        b"",
        b"\x00",
        b"a",
        b"\x7f",
        b"\x80",
        b"\xff",
        b"ab",
        b"\xff\xff",
        b"\x80\x01",
        b"abc",
        b"\x00\x00\x00",
        b"\xff\xff\xff",
        b"\x80\x00\x7f",
        # Whole words, and words plus each tail.
        b"abcd",
        b"\x00\x00\x00\x00",
        b"\xff\xff\xff\xff",
        b"\x80\x80\x80\x80",
        b"abcde",
        b"abcdef",
        b"abcdefg",
        b"abcdefgh",
        b"\xfe\xdc\xba\x98\x76\x54\x32\x10\x0f",
        # Kafka's UtilsTest.testMurmur2 keys.
        b"21",
        b"foobar",
        b"a-little-bit-long-string",
        b"a-little-bit-longer-string",
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
        # Typical application keys.
        b"hello",
        b"kafka",
        b"trio-brod",
        b"user-1",
        b"user-42",
        b"order-1234567",
        b"customer:9f8e7d6c",
        b"123e4567-e89b-12d3-a456-426614174000",
        b"00000000-0000-0000-0000-000000000000",
        # Java's IntegerSerializer / LongSerializer output (big-endian).
        (7).to_bytes(4, "big"),
        (1).to_bytes(4, "big"),
        (123456789).to_bytes(4, "big"),
        (-2).to_bytes(4, "big", signed=True),
        (42).to_bytes(8, "big"),
        (-(2**63)).to_bytes(8, "big", signed=True),
        # Non-ASCII text, UTF-8 and Latin-1.
        "ключ".encode(),
        "日本語のキー".encode(),
        "😀🎉".encode(),
        "straße".encode(),
        "café".encode("latin-1"),
        "Ünïcödé-schlüssel-🔑".encode(),
        # Around 32 bytes, where trio-brod's murmur2 switches to its lane path.
        _pattern(27, 13),
        _pattern(28, 13),
        _pattern(31, 29),
        _pattern(32, 29),
        _pattern(33, 31),
        _pattern(35, 31),
        _pattern(36, 37),
        # Long keys.
        b"x" * 64,
        b"\xff" * 100,
        _pattern(101, 53),
        bytes(range(256)),
        _pattern(1000, 97),
        _pattern(1027, 211),
        # Keys that hash to the edges: toPositive(MIN_VALUE) == 0, toPositive(-1) == MAX_VALUE.
        murmur2_preimage(-(2**31)),
        murmur2_preimage(-(2**31) + 1),
        murmur2_preimage(2**31 - 1),
        murmur2_preimage(0),
        murmur2_preimage(-1),
        murmur2_preimage(1),
    ]
    if len(set(keys)) != len(keys):
        raise AssertionError("duplicate vector keys")
    return keys


#: The partition counts of the unit tests' Java vectors.
VECTOR_COUNTS = (1, 2, 3, 7, 8, 10, 12, 31, 100, 1000, 2**31 - 1)


def _hex_literal(key: bytes, indent: str) -> str:
    text = key.hex()
    if len(text) <= 64:
        return f'bytes.fromhex("{text}")'
    chunks = [text[i : i + 80] for i in range(0, len(text), 80)]
    inner = "".join(f'\n{indent}    "{chunk}"' for chunk in chunks)
    return f"bytes.fromhex({inner}\n{indent})"


def print_vectors(classpath: Classpath) -> None:
    """Print the vector table for ``tests/unit/test_partitioners.py``, from Java's answers."""
    keys = vector_keys()
    requests = [(key, count) for key in keys for count in VECTOR_COUNTS]
    answers = iter(java_murmur2_and_partitions(classpath, requests))
    print(f"VECTOR_COUNTS = {VECTOR_COUNTS!r}".replace("2147483647", "2**31 - 1"))
    print("JAVA_VECTORS: list[tuple[bytes, int, tuple[int, ...]]] = [")
    for key in keys:
        row = [next(answers) for _ in VECTOR_COUNTS]
        hashes = {h for h, _ in row}
        assert len(hashes) == 1, hashes
        partitions = ", ".join(str(p) for _, p in row)
        print(f"    ({_hex_literal(key, '    ')}, {row[0][0]}, ({partitions})),")
    print("]")


def main(argv: Sequence[str]) -> int:
    """``python tests/javautil.py vectors CLASSPATH``: print the unit tests' vectors."""
    if len(argv) != 2 or argv[0] != "vectors":
        print(__doc__, file=sys.stderr)
        print("usage: python tests/javautil.py vectors CLASSPATH", file=sys.stderr)
        return 2
    print_vectors(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
