"""Record batches against Kafka's own Java code, without a broker.

A small Java program, compiled here against the kafka-clients jar, (1) writes batches of every
magic and codec with Kafka's MemoryRecords, which trio-brod must decode, and (2) reads the
batches trio-brod writes, checking every batch and record CRC (``ensureValid``) on the way.
Both sides print what they read in the same text format, so the test compares lines.

Needs ``java``, ``javac`` and an unpacked set of Kafka jars (kafka-clients with lz4-java,
snappy-java and zstd-jni beside it), found in ``$KAFKA_HOME/libs``, or in
``<cache>/<version>/libs`` where ``<cache>`` is ``$TRIO_BROD_KAFKA_CACHE`` or
``~/.cache/trio-brod/kafka`` (where trio_brod.testing keeps the jars it fetches). Skipped
otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from trio_brod.protocol.records import (
    Compression,
    ControlRecordType,
    decode_batches,
    encode_batch,
    encode_control_batch,
    with_producer_state,
)

JAVA_SOURCE = r"""
import java.nio.ByteBuffer;
import static java.nio.charset.StandardCharsets.UTF_8;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import org.apache.kafka.common.compress.Compression;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import RECORD_PACKAGE.CompressionType;
import RECORD_PACKAGE.MemoryRecords;
import RECORD_PACKAGE.RecordBatch;
import RECORD_PACKAGE.SimpleRecord;

public class RecordsInterop {
    static String hex(ByteBuffer b) {
        if (b == null) return "-";
        StringBuilder sb = new StringBuilder("x");
        ByteBuffer d = b.duplicate();
        while (d.hasRemaining()) sb.append(String.format("%02x", d.get()));
        return sb.toString();
    }

    static String hex(byte[] b) { return b == null ? "-" : hex(ByteBuffer.wrap(b)); }

    public static void main(String[] args) throws Exception {
        if (args[0].equals("read")) {
            for (int f = 1; f < args.length; f++) {
                System.out.println("file " + Paths.get(args[f]).getFileName());
                byte[] data = Files.readAllBytes(Paths.get(args[f]));
                MemoryRecords all = MemoryRecords.readableRecords(ByteBuffer.wrap(data));
                for (RecordBatch batch : all.batches()) {
                    batch.ensureValid();
                    System.out.println("batch " + batch.baseOffset() + " " + batch.lastOffset()
                        + " " + batch.magic() + " " + batch.compressionType().name
                        + " " + batch.isTransactional() + " " + batch.isControlBatch()
                        + " " + batch.producerId() + " " + batch.producerEpoch()
                        + " " + batch.baseSequence() + " " + batch.maxTimestamp());
                    for (RECORD_PACKAGE.Record r : batch) {
                        r.ensureValid();
                        StringBuilder h = new StringBuilder();
                        for (Header hd : r.headers())
                            h.append(" ").append(hex(hd.key().getBytes(UTF_8)))
                             .append("=").append(hex(hd.value()));
                        System.out.println("record " + r.offset() + " " + r.timestamp() + " "
                            + hex(r.key()) + " " + hex(r.value()) + h);
                    }
                }
            }
        } else {
            // write <dir> <count>: j_<magic>_<codec>.bin for every magic and codec Kafka writes
            int n = Integer.parseInt(args[2]);
            for (byte magic = 0; magic <= 2; magic++) {
                for (CompressionType type : CompressionType.values()) {
                    if (magic < 2 && type == CompressionType.ZSTD) continue;
                    List<SimpleRecord> list = new ArrayList<>();
                    for (int i = 0; i < n; i++) {
                        String text = "value-" + i + "-" + "abcdefghij".repeat(i % 13);
                        byte[] key = (i % 3 == 0) ? null : ("key-" + i).getBytes(UTF_8);
                        byte[] value = (i % 7 == 6) ? null : text.getBytes(UTF_8);
                        Header[] headers = new Header[0];
                        if (magic >= 2 && i % 4 == 1) {
                            headers = new Header[]{
                                new RecordHeader("h" + i, ("hv" + i).getBytes(UTF_8)),
                                new RecordHeader("n\u00e9", (byte[]) null)};
                        }
                        list.add(new SimpleRecord(1700000000000L + i * 3, key, value, headers));
                    }
                    MemoryRecords records = MemoryRecords.withRecords(magic, 1000L,
                        Compression.of(type).build(), TimestampType.CREATE_TIME,
                        list.toArray(new SimpleRecord[0]));
                    ByteBuffer buf = records.buffer();
                    byte[] out = new byte[buf.remaining()];
                    buf.get(out);
                    Files.write(Paths.get(args[1], "j_" + magic + "_" + type.name + ".bin"), out);
                }
            }
        }
    }
}
"""


def _kafka_libs() -> Path | None:
    candidates = []
    if os.environ.get("KAFKA_HOME"):
        candidates.append(Path(os.environ["KAFKA_HOME"]) / "libs")
    cache = os.environ.get("TRIO_BROD_KAFKA_CACHE")
    cache_root = Path(cache) if cache else Path.home() / ".cache" / "trio-brod" / "kafka"
    if cache_root.is_dir():
        candidates.extend(sorted(cache_root.glob("*/libs"), reverse=True))
    for libs in candidates:
        names = [jar.name for jar in libs.glob("*.jar")]
        if all(
            any(name.startswith(prefix) for name in names)
            for prefix in ("kafka-clients-", "lz4-java-", "snappy-java-", "zstd-jni-")
        ):
            return libs
    return None


@pytest.fixture(scope="module")
def java_tool(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Compile RecordsInterop; return its directory and the classpath to run it with."""
    if not (shutil.which("java") and shutil.which("javac")):
        pytest.skip("needs java and javac")
    libs = _kafka_libs()
    if libs is None:
        pytest.skip("no Kafka jars found (set KAFKA_HOME or TRIO_BROD_KAFKA_CACHE)")
    (clients,) = libs.glob("kafka-clients-*.jar")
    with zipfile.ZipFile(clients) as jar:
        names = set(jar.namelist())
    if "org/apache/kafka/common/record/internal/MemoryRecords.class" in names:
        package = "org.apache.kafka.common.record.internal"  # Kafka 4.1 and later
    else:
        package = "org.apache.kafka.common.record"
    if "org/apache/kafka/common/compress/Compression.class" not in names:
        pytest.skip(f"{clients.name} is older than Kafka 3.8")
    directory = tmp_path_factory.mktemp("java")
    (directory / "RecordsInterop.java").write_text(
        JAVA_SOURCE.replace("RECORD_PACKAGE", package), encoding="utf-8"
    )
    classpath = os.pathsep.join([str(jar) for jar in sorted(libs.glob("*.jar"))] + ["."])
    compiled = subprocess.run(
        ["javac", "-cp", classpath, "RecordsInterop.java"],
        cwd=directory,
        capture_output=True,
        text=True,
    )
    assert compiled.returncode == 0, compiled.stderr
    return directory, classpath


def _run_java(tool: tuple[Path, str], *args: str) -> list[str]:
    directory, classpath = tool
    result = subprocess.run(
        ["java", "-cp", classpath, "RecordsInterop", *args],
        cwd=directory,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout.splitlines()


def _hex(data: bytes | None) -> str:
    return "-" if data is None else "x" + data.hex()


def _describe(path: Path) -> list[str]:
    """What trio-brod reads in ``path``, in the Java program's format."""
    lines = [f"file {path.name}"]
    for batch in decode_batches(path.read_bytes()).batches:
        lines.append(
            f"batch {batch.base_offset} {batch.last_offset} {batch.magic} "
            f"{batch.compression.name.lower()} {str(batch.is_transactional).lower()} "
            f"{str(batch.is_control).lower()} {batch.producer_id} {batch.producer_epoch} "
            f"{batch.base_sequence} {batch.max_timestamp}"
        )
        for r in batch:
            headers = "".join(f" {_hex(k.encode())}={_hex(v)}" for k, v in r.headers)
            lines.append(f"record {r.offset} {r.timestamp} {_hex(r.key)} {_hex(r.value)}{headers}")
    return lines


def test_trio_brod_reads_what_kafka_writes(java_tool: tuple[Path, str], tmp_path: Path) -> None:
    _run_java(java_tool, "write", str(tmp_path), "60")
    files = sorted(tmp_path.glob("j_*.bin"))
    assert len(files) == 3 * 4 + 1  # magic 0 and 1 with 4 codecs, magic 2 with 5
    java_lines = _run_java(java_tool, "read", *map(str, files))
    ours = [line for path in files for line in _describe(path)]
    assert ours == java_lines
    assert sum(line.startswith("record ") for line in ours) == 13 * 60


Records = list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]]


def _records_to_write() -> Records:
    records: Records = []
    for i in range(3000):
        key = None if i % 3 == 0 else f"key-{i}".encode()
        value = None if i % 7 == 6 else f"value-{i}-{'abcdefghij' * (i % 13)}".encode()
        if value is not None and i % 5 == 0:
            value += bytes(range(256))  # less compressible
        headers = [(f"h{i}é", f"hv{i}".encode()), ("n", None)] if i % 4 == 1 else []
        records.append((1_700_000_000_000 + i * 3 - (i % 2) * 5, key, value, headers))
    return records


def test_kafka_reads_what_trio_brod_writes(java_tool: tuple[Path, str], tmp_path: Path) -> None:
    records = _records_to_write()
    levels: dict[Compression, list[int | None]] = {
        Compression.NONE: [None],
        Compression.GZIP: [None, 9],
        Compression.SNAPPY: [None],
        Compression.LZ4: [None, 9],
        Compression.ZSTD: [None, -1, 10],
    }
    files = []
    for compression, compression_levels in levels.items():
        for level in compression_levels:
            batch = encode_batch(
                records,
                compression=compression,
                compression_level=level,
                base_offset=500,
                producer_id=12,
                producer_epoch=3,
                base_sequence=100,
                is_transactional=True,
            )
            resequenced = with_producer_state(
                encode_batch(records[:10], compression=compression, compression_level=level),
                producer_id=77,
                producer_epoch=1,
                base_sequence=5,
            )
            # Several lz4 / snappy blocks of incompressible data.
            large = encode_batch(
                [(1, None, os.urandom(40_000), [])] * 5, compression=compression, base_offset=9
            )
            path = tmp_path / f"p_{compression.name.lower()}_{level}.bin"
            path.write_bytes(batch + resequenced + large)
            files.append(path)
    control = tmp_path / "p_control.bin"
    control.write_bytes(
        encode_control_batch(
            ControlRecordType.ABORT,
            producer_id=5,
            producer_epoch=2,
            coordinator_epoch=9,
            timestamp_ms=123,
            base_offset=42,
        )
    )
    files.append(control)

    java_lines = _run_java(java_tool, "read", *map(str, files))
    assert java_lines == [line for path in files for line in _describe(path)]
    # And what both read is what was written.
    expected_first = f"record 500 {records[0][0]} - x{records[0][2].hex()}"  # type: ignore[union-attr]
    assert java_lines[2] == expected_first
    assert java_lines.count("batch 500 3499 2 lz4 true false 12 3 100 1700000008994") == 2
    assert "batch 42 42 2 none true true 5 2 -1 123" in java_lines
