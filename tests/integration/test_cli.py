"""The trio-brod command line against real Kafka, run as users run it (a subprocess).

What the commands write is read back with kcat or the library; what they print is checked
against what the broker holds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import trio

from tests.java_members import java_consumer
from trio_brod import open_client
from trio_brod.admin import commit_offsets, fetch_committed_offsets
from trio_brod.testing import KafkaCluster
from trio_brod.testing.pytest_plugin import SECURE_USERS, MakeTopic

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "trio_brod.cli"]


async def cli(bootstrap: list[str], *args: str, stdin: bytes | None = None, status: int = 0) -> str:
    """Run ``trio-brod ARGS -b BOOTSTRAP``; check its exit status; return its stdout."""
    result = await trio.run_process(
        [*CLI, *args, "-b", ",".join(bootstrap)],
        stdin=stdin,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == status, f"exit {result.returncode}\nstdout: {out}\nstderr: {err}"
    if status == 0:
        assert err == ""
    else:
        assert "Traceback" not in err
    return out if status == 0 else err


#: Between messages in kcat's output: ASCII's record separator, in no test message.
_SEPARATOR = "\x1e"


def kcat_read(
    bootstrap: list[str], topic: str, partition: int, fmt: str, count: int | None = None
) -> list[str]:
    """The messages of a partition (all, or the first ``count``) as kcat formats them
    (``-f``), one string each."""
    result = subprocess.run(
        [
            "kcat",
            "-b",
            ",".join(bootstrap),
            "-C",
            "-t",
            topic,
            "-p",
            str(partition),
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            fmt + _SEPARATOR,
            *([] if count is None else ["-c", str(count)]),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.split(_SEPARATOR)[:-1]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def test_meta(make_topic: MakeTopic, bootstrap_servers: list[str]) -> None:
    topic = make_topic(partitions=3)
    async with open_client(bootstrap_servers) as client:
        await commit_offsets(client, unique("cli-meta"), {(topic, 0): 0})  # offsets topic exists
        metadata = await client.get_metadata([topic])
    (broker,) = metadata.brokers.values()

    text = await cli(bootstrap_servers, "meta", "-t", topic)
    assert text.splitlines() == [
        f"cluster {metadata.cluster_id}, controller {metadata.controller_id}",
        "brokers 1:",
        f"  {broker.node_id}: {broker.address}",
        "topics 1:",
        f"  {topic} 3:",
        *(f"    {p}: {broker.node_id} ({broker.node_id})" for p in range(3)),
    ]

    document = json.loads(await cli(bootstrap_servers, "meta", "-t", topic, "--json"))
    assert document["cluster_id"] == metadata.cluster_id
    assert document["brokers"] == [
        {"node_id": broker.node_id, "host": broker.host, "port": broker.port, "rack": None}
    ]
    (described,) = document["topics"]
    assert described["name"] == topic
    assert [(p["partition"], p["leader"], p["isr"]) for p in described["partitions"]] == [
        (p, broker.node_id, [broker.node_id]) for p in range(3)
    ]

    listed = (await cli(bootstrap_servers, "meta", "-L")).splitlines()
    assert topic in listed
    assert "__consumer_offsets" not in listed
    assert "__consumer_offsets" in (await cli(bootstrap_servers, "meta", "-L", "-i")).splitlines()
    # Nothing is under-replicated on a healthy single broker.
    assert (await cli(bootstrap_servers, "meta", "-t", topic, "-U")).splitlines()[-1] == "topics 0:"
    # A missing topic is reported, not created.
    missing = unique("cli-missing")
    assert f"  {missing}: UNKNOWN_TOPIC_OR_PARTITION" in await cli(
        bootstrap_servers, "meta", "-t", missing
    )
    assert missing not in await cli(bootstrap_servers, "meta", "-L")


async def test_send_fetch_offset(
    make_topic: MakeTopic, bootstrap_servers: list[str], tmp_path: Path
) -> None:
    topic = make_topic(partitions=2)
    out = await cli(bootstrap_servers, "send", "-t", topic, "-p", "0", "-k", "k1", "-v", "héllo")
    assert out == "0\n"
    out = await cli(
        bootstrap_servers, "send", "-t", topic, "-p", "0", "-v", "two", "-H", "trace=t-1", "--json"
    )
    assert json.loads(out) == {"topic": topic, "partition": 0, "offset": 1}
    payload = tmp_path / "payload.bin"
    payload.write_bytes(bytes(range(256)))
    out = await cli(bootstrap_servers, "send", "-t", topic, "-p", "0", "-f", str(payload))
    assert out == "2\n"

    # What the broker holds, read without the command line.
    async with open_client(bootstrap_servers) as client:
        messages = list(await client.fetch(topic, 0, 0))
    assert [(m.key, m.value) for m in messages] == [
        (b"k1", "héllo".encode()),
        (None, b"two"),
        (None, bytes(range(256))),
    ]
    assert messages[1].headers == (("trace", b"t-1"),)
    assert kcat_read(bootstrap_servers, topic, 0, "%k=%s", count=2) == ["k1=héllo", "=two"]

    # fetch: the last message by default; a count from an offset; formats.
    assert await cli(bootstrap_servers, "fetch", "-t", topic, "-o", "1") == "two\n"
    out = await cli(
        bootstrap_servers, "fetch", "-t", topic, "-o", "earliest", "-c", "2", "--fmt", "okv"
    )
    assert out == "0:k1:héllo\n1::two\n"
    out = await cli(
        bootstrap_servers, "fetch", "-t", topic, "-o", "1", "--fmt", "{offset} [{headers}] {value}"
    )
    assert out == "1 [trace=t-1] two\n"
    last = json.loads(await cli(bootstrap_servers, "fetch", "-t", topic, "--fmt", "json"))
    assert (last["offset"], last["value"]) == (
        2,
        "".join(f"\\x{b:02x}" if b > 127 else chr(b) for b in range(256)),
    )
    # -c -1 reads to the end, then stops after --wait with nothing new.
    started = time.monotonic()
    out = await cli(
        bootstrap_servers,
        "fetch",
        "-t",
        topic,
        "-o",
        "earliest",
        "-c",
        "-1",
        "-w",
        "1",
        "--fmt",
        "{offset}",
    )
    assert out == "0\n1\n2\n"
    assert time.monotonic() - started < 10
    # An empty partition: nothing, after --wait.
    assert await cli(bootstrap_servers, "fetch", "-t", topic, "-p", "1", "-w", "0.5") == ""

    # offset: one partition as a number, all as PARTITION:OFFSET lines, or JSON.
    assert await cli(bootstrap_servers, "offset", "-t", topic, "-p", "0") == "3\n"
    assert await cli(bootstrap_servers, "offset", "-t", topic) == "0:3\n1:0\n"
    assert await cli(bootstrap_servers, "offset", "-t", topic, "-T", "earliest") == "0:0\n1:0\n"
    future = str(int(time.time() * 1000) + 3_600_000)
    assert await cli(bootstrap_servers, "offset", "-t", topic, "-p", "0", "-T", future) == "3\n"
    assert json.loads(await cli(bootstrap_servers, "offset", "-t", topic, "--json")) == {
        "topic": topic,
        "offsets": {"0": 3, "1": 0},
    }

    # Errors from Kafka: one line, status 1.
    err = await cli(bootstrap_servers, "fetch", "-t", topic, "-p", "7", status=1)
    assert err.startswith("trio-brod: error: UNKNOWN_TOPIC_OR_PARTITION")
    assert len(err.splitlines()) == 1
    err = await cli(bootstrap_servers, "fetch", "-t", topic, "-o", "99", status=1)
    assert "OFFSET_OUT_OF_RANGE" in err


async def test_pipe(make_topic: MakeTopic, bootstrap_servers: list[str]) -> None:
    topic = make_topic(partitions=3)
    lines = [f"key-{i % 7}:value {i}" for i in range(2000)]
    out = await cli(
        bootstrap_servers,
        "pipe",
        "-t",
        topic,
        "--kv-sep",
        ":",
        "--compression",
        "gzip",
        stdin=("\n".join(lines) + "\n").encode(),
    )
    assert out == "2000\n"
    read = []
    for partition in range(3):
        read += kcat_read(bootstrap_servers, topic, partition, "%k|%s")
    assert sorted(read) == sorted(line.replace(":", "|", 1) for line in lines)
    # Keys chose the partitions: each key lives in one partition only.
    partitions_of: dict[str, set[int]] = {}
    for partition in range(3):
        for entry in kcat_read(bootstrap_servers, topic, partition, "%k"):
            partitions_of.setdefault(entry, set()).add(partition)
    assert all(len(found) == 1 for found in partitions_of.values())

    # Into one partition, with acks=1; an empty line is an empty message, CRLF is a line end.
    out = await cli(
        bootstrap_servers, "pipe", "-t", topic, "-p", "2", "--acks", "1", stdin=b"a\r\n\nlast"
    )
    assert out == "3\n"
    assert kcat_read(bootstrap_servers, topic, 2, "%s")[-3:] == ["a", "", "last"]

    # A line without the separator stops the pipe; the lines before it are delivered.
    err = await cli(
        bootstrap_servers,
        "pipe",
        "-t",
        topic,
        "-p",
        "1",
        "--kv-sep",
        "=",
        stdin=b"k=v\nbad\nk=w\n",
        status=1,
    )
    assert "line 2 has no '=' to split the key from the value" in err
    assert kcat_read(bootstrap_servers, topic, 1, "%k=%s")[-1] == "k=v"


async def test_pipe_from_a_file_and_ctrl_c(
    make_topic: MakeTopic, bootstrap_servers: list[str], tmp_path: Path
) -> None:
    topic = make_topic()
    source = tmp_path / "lines.txt"
    source.write_text("".join(f"{i}\n" for i in range(100)))
    assert await cli(bootstrap_servers, "pipe", "-t", topic, "-s", str(source)) == "100\n"
    assert kcat_read(bootstrap_servers, topic, 0, "%s") == [str(i) for i in range(100)]

    # Waiting for stdin that never ends: Ctrl-C stops it at once, cleanly.
    process = await trio.lowlevel.open_process(
        [*CLI, "pipe", "-t", topic, "-b", ",".join(bootstrap_servers)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stderr is not None
    try:
        await process.stdin.send_all(b"before the interrupt\n")
        with trio.fail_after(30):
            while True:  # the line is produced while stdin stays open
                if kcat_read(bootstrap_servers, topic, 0, "%s")[-1] == "before the interrupt":
                    break
                await trio.sleep(0.2)
        process.send_signal(signal.SIGINT)
        with trio.fail_after(20):
            status = await process.wait()
            err = b""
            while chunk := await process.stderr.receive_some():
                err += chunk
    finally:
        process.kill()
    assert status == 130
    assert b"Traceback" not in err
    assert b"Fatal Python error" not in err


async def test_fetch_into_a_closed_pipe(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic()
    await cli(bootstrap_servers, "pipe", "-t", topic, stdin=b"x\n" * 5000)
    process = await trio.lowlevel.open_process(
        [
            *CLI,
            "fetch",
            "-t",
            topic,
            "-o",
            "earliest",
            "-c",
            "-1",
            "-b",
            ",".join(bootstrap_servers),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        with trio.fail_after(60):
            # The first line's two bytes, however the child's writes arrive (with
            # PYTHONUNBUFFERED set, print writes "x" and "\n" separately).
            first = b""
            while len(first) < 2:
                chunk = await process.stdout.receive_some(2 - len(first))
                assert chunk, f"the output ended after {first!r}"
                first += chunk
            await process.stdout.aclose()  # as `| head -1` does
            status = await process.wait()
            err = b""
            while chunk := await process.stderr.receive_some():
                err += chunk
    finally:
        process.kill()
    assert first == b"x\n"
    assert status == 141
    assert err == b""


async def test_commits_and_groups(
    make_topic: MakeTopic, kafka: KafkaCluster, tmp_path: Path
) -> None:
    bootstrap = kafka.bootstrap_servers
    topic = make_topic(partitions=3)
    group_id = unique("cli-group")
    await cli(bootstrap, "pipe", "-t", topic, "-p", "0", stdin=b"m\n" * 10)

    out = await cli(
        bootstrap, "commits", "-g", group_id, "-t", topic, "-o", "0:4,2:0", "--metadata", "cli"
    )
    assert out.splitlines() == [f"{topic}:0:4", f"{topic}:2:0"]
    async with open_client(bootstrap) as client:
        committed = await fetch_committed_offsets(client, group_id)
    assert {k: (c.offset, c.metadata) for k, c in committed.items()} == {
        (topic, 0): (4, "cli"),
        (topic, 2): (0, "cli"),
    }

    table = (await cli(bootstrap, "commits", "-g", group_id)).splitlines()
    assert table[0].split() == ["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "METADATA"]
    assert [row.split() for row in table[1:]] == [
        [topic, "0", "4", "10", "6", "cli"],
        [topic, "2", "0", "0", "0", "cli"],
    ]
    # With -t, partitions without a commit are listed too.
    document = json.loads(await cli(bootstrap, "commits", "-g", group_id, "-t", topic, "--json"))
    assert [(o["partition"], o["committed"], o["lag"]) for o in document["offsets"]] == [
        (0, 4, 6),
        (1, None, None),
        (2, 0, 0),
    ]
    # Reset to the end: no lag left.
    await cli(bootstrap, "commits", "-g", group_id, "-t", topic, "-o", "latest")
    document = json.loads(await cli(bootstrap, "commits", "-g", group_id, "--json"))
    assert {(o["partition"], o["committed"], o["lag"]) for o in document["offsets"]} == {
        (0, 10, 0),
        (1, 0, 0),
        (2, 0, 0),
    }

    listing = (await cli(bootstrap, "groups")).splitlines()
    assert listing[0].split() == ["GROUP", "PROTOCOL", "STATE", "TYPE", "COORDINATOR"]
    (row,) = [line.split() for line in listing if line.startswith(group_id + " ")]
    assert row[1:3] == ["-", "Empty"]
    assert (await cli(bootstrap, "groups", "-g", group_id)).startswith(f"{group_id}: Empty, -,")

    # A live Java consumer: its member and assignment.
    java_group = unique("cli-java")
    with java_consumer(kafka, topic, java_group, tmp_path / "consumer.log"):
        with trio.fail_after(60):
            while True:
                described = json.loads(await cli(bootstrap, "groups", "-g", java_group, "--json"))
                if described[0]["state"] == "Stable" and described[0]["members"]:
                    break
                await trio.sleep(0.3)
        text = (await cli(bootstrap, "groups", "-g", java_group)).splitlines()
    (member,) = described[0]["members"]
    assert member["assignment"] == {topic: [0, 1, 2]}
    assert text[0].startswith(f"{java_group}: Stable, consumer/")
    assert text[1].strip().endswith(f"({member['client_id']} at {member['client_host']})")
    assert text[2].strip() == f"{topic}: 0,1,2"


async def test_topics_create_and_delete(bootstrap_servers: list[str]) -> None:
    first, second = unique("cli-topic"), unique("cli-topic")
    out = await cli(
        bootstrap_servers, "topics", "create", first, second, "-P", "2", "-c", "retention.ms=60000"
    )
    assert out == f"created {first}\ncreated {second}\n"
    described = json.loads(
        await cli(bootstrap_servers, "meta", "-t", f"{first},{second}", "--json")
    )
    assert [(t["name"], len(t["partitions"])) for t in described["topics"]] == sorted(
        [(first, 2), (second, 2)]
    )
    err = await cli(bootstrap_servers, "topics", "create", first, status=1)
    assert err.splitlines() == [
        f"trio-brod: error: TOPIC_ALREADY_EXISTS (36) for {first}: Topic '{first}' already exists."
    ]
    assert await cli(bootstrap_servers, "topics", "delete", first, second) == (
        f"deleted {first}\ndeleted {second}\n"
    )
    listed = (await cli(bootstrap_servers, "meta", "-L")).splitlines()
    assert first not in listed
    assert second not in listed
    # Both missing: one line per error.
    err = await cli(bootstrap_servers, "topics", "delete", first, second, status=1)
    assert len(err.splitlines()) == 2
    assert all("UNKNOWN_TOPIC_OR_PARTITION" in line for line in err.splitlines())


async def test_sasl_and_tls_options(kafka_secure: KafkaCluster) -> None:
    """The connection options reach the client: SCRAM over TLS with a given CA, PLAIN with
    the password from the environment; a wrong password is one line and status 1."""
    sasl_ssl = kafka_secure.listener_bootstrap("SASL_SSL")
    secure = ["--cafile", str(kafka_secure.tls_ca_file), "--sasl-mechanism", "SCRAM-SHA-512"]
    secure += ["--sasl-user", "alice", "--sasl-password", SECURE_USERS["alice"]]
    brokers = await cli(sasl_ssl, "meta", "--json", *secure)
    assert json.loads(brokers)["brokers"]

    result = await trio.run_process(
        [
            *CLI,
            "meta",
            "-L",
            "--sasl-user",
            "bob",
            "-b",
            *kafka_secure.listener_bootstrap("SASL_PLAINTEXT"),
        ],
        env={**os.environ, "KAFKA_SASL_PASSWORD": SECURE_USERS["bob"]},
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    err = await cli(sasl_ssl, "meta", *secure[:-1], "wrong", status=1)
    (line,) = err.splitlines()
    assert line.startswith("trio-brod: error: ")
    # Without --cafile, the broker's own CA is not trusted.
    err = await cli(kafka_secure.listener_bootstrap("SSL"), "meta", "--ssl", status=1)
    assert "certificate" in err.lower()


def has_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open (Linux's /proc)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                return True
        except OSError:
            continue
    return False


async def test_pipe_tail_follows_a_file(
    make_topic: MakeTopic, bootstrap_servers: list[str], tmp_path: Path
) -> None:
    # brod-cli's --tail: start at the file's end, send what is appended, until Ctrl-C.
    topic = make_topic(partitions=3)
    source = tmp_path / "app.log"
    source.write_text("old line, never sent\n")
    process = await trio.lowlevel.open_process(
        [
            *CLI,
            "pipe",
            "-t",
            topic,
            "-s",
            str(source),
            "--tail",
            "-p",
            "random",
            "--blk-size",
            "4",
            "-b",
            ",".join(bootstrap_servers),
        ],
        stderr=subprocess.PIPE,
    )

    def sent() -> list[str]:
        return sorted(
            line for p in range(3) for line in kcat_read(bootstrap_servers, topic, p, "%s")
        )

    try:
        # Let it open the file and go to its end before more is written (on a loaded
        # machine starting the command takes seconds, not one).
        with trio.fail_after(30):
            while not has_open(process.pid, source):  # noqa: ASYNC110 (another process)
                await trio.sleep(0.1)
        await trio.sleep(0.5)
        with source.open("a") as log:
            log.write("".join(f"new {i}\n" for i in range(30)))
        with trio.fail_after(30):
            while True:  # sent while the file stays open for more
                if len(sent()) >= 30:
                    break
                await trio.sleep(0.2)
        process.send_signal(signal.SIGINT)
        with trio.fail_after(20):
            status = await process.wait()
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
    assert status == 130
    assert sent() == sorted(f"new {i}" for i in range(30))
    # -p random: spread over the partitions (30 messages all in one: 3 * (1/3)**30).
    assert sum(1 for p in range(3) if kcat_read(bootstrap_servers, topic, p, "%s")) > 1


async def test_one_line_offsets_msg_deli_hash_and_verbose(
    make_topic: MakeTopic, bootstrap_servers: list[str]
) -> None:
    topic = make_topic(partitions=2)
    for value in ("a", "b", "c"):
        # -p hash: the same key always lands in the same partition.
        await cli(bootstrap_servers, "send", "-t", topic, "-k", "same", "-v", value, "-p", "hash")
    offsets = await cli(bootstrap_servers, "offset", "-t", topic, "--one-line")
    (line,) = offsets.splitlines()
    latest = dict(item.split(":") for item in line.split(","))
    assert sorted(latest.values()) == ["0", "3"]
    (partition,) = [p for p, o in latest.items() if o == "3"]
    out = await cli(
        bootstrap_servers,
        "fetch",
        "-t",
        topic,
        "-p",
        partition,
        "-o",
        "earliest",
        "-c",
        "3",
        "--msg-deli",
        "|",
    )
    assert out == "a|b|c|"
    result = await trio.run_process(
        [*CLI, "offset", "-t", topic, "--verbose", "-b", ",".join(bootstrap_servers)],
        capture_stdout=True,
        capture_stderr=True,
    )
    err = result.stderr.decode()
    assert "trio-brod: trio_brod.cli: bootstrap" in err
    assert "done; connections closed" in err
    assert result.stdout.decode().splitlines() == [f"{p}:{o}" for p, o in sorted(latest.items())]
