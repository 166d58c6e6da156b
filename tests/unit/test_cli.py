"""The trio-brod command line without a broker: arguments, formats, exit statuses."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import entry_points

import pytest

from trio_brod._version import __version__
from trio_brod.cli import main, record_formatter
from trio_brod.cli._args import build_parser
from trio_brod.cli._produce import split_lines
from trio_brod.protocol.records import Record, TimestampType

CLI = [sys.executable, "-m", "trio_brod.cli"]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """main(argv) in this process: (exit status, stdout, stderr)."""
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def silent_listener() -> Iterator[socket.socket]:
    """A listening socket whose connections are accepted (the kernel does) but never
    answered."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener


@pytest.fixture
def silent_port(silent_listener: socket.socket) -> int:
    """The port of :func:`silent_listener`."""
    port: int = silent_listener.getsockname()[1]
    return port


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# ------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ([], "required: COMMAND"),
        (["nonsense"], "invalid choice: 'nonsense'"),
        (["fetch"], "required: -t/--topic"),
        (["fetch", "-t", "x", "-p", "-1"], "a partition is >= 0"),
        (["fetch", "-t", "x", "-p", "one"], "not a partition number: 'one'"),
        (["fetch", "-t", "x", "-o", "first"], "expected earliest, latest, last or an offset"),
        (["fetch", "-t", "x", "-c", "0"], "a count is >= 1 (or -1 for no limit)"),
        (["fetch", "-t", "x", "-w", "soon"], "not a number of seconds"),
        (["fetch", "-t", "x", "--fmt", "vk"], "unknown --fmt 'vk'"),
        (["fetch", "-t", "x", "--fmt", "{offset} {bogus}"], "unknown field {bogus}"),
        (["fetch", "-t", "x", "--fmt", "{offset:q}"], "bad --fmt '{offset:q}'"),
        (["fetch", "-t", "x", "--fmt", "{value"], "bad --fmt '{value'"),
        (["fetch", "-t", "x", "--kv-sep", ""], "the separator is empty"),
        (["offset", "-t", "x", "-T", "yesterday"], "expected earliest, latest or milliseconds"),
        (["offset", "-t", "x", "-T", "-5"], "a timestamp is >= 0 (or -1, -2)"),
        (["offset", "-t", "x", "-p", "some"], "not a partition number: 'some'"),
        (["send", "-t", "x"], "one of the arguments -v/--value -f/--value-file is required"),
        (["send", "-t", "x", "-v", "a", "-f", "b"], "not allowed with argument"),
        (["send", "-t", "x", "-v", "a", "--acks", "2"], "expected all, -1, 1 or 0"),
        (["send", "-t", "x", "-v", "a", "--compression", "brotli"], "invalid choice: 'brotli'"),
        (["send", "-t", "x", "-v", "a", "-H", "novalue"], "expected NAME=VALUE"),
        (["send", "-t", "x", "-f", "/no/such/file"], "-f /no/such/file: no such file"),
        (["pipe", "-t", "x", "-s", "/no/such/file"], "-s /no/such/file: no such file"),
        (["pipe", "-t", "x", "--kv-sep", ""], "the separator is empty"),
        (["commits"], "required: -g/--group"),
        (["commits", "-g", "g", "-o", "latest"], "-o/--offsets needs exactly one -t topic"),
        (["commits", "-g", "g", "-t", "a,b", "-o", "0:1"], "needs exactly one -t topic"),
        (["commits", "-g", "g", "-t", "a", "-o", "0=1"], "expected earliest, latest or PARTITION"),
        (["commits", "-g", "g", "-t", "a", "-o", "0:-1"], "expected earliest, latest or PARTITION"),
        (["topics"], "required: ACTION"),
        (["topics", "create"], "required: TOPIC"),
        (["topics", "create", "t", "-P", "0"], "expected a number >= 1, or -1"),
        (["topics", "create", "t", "-c", "retention.ms"], "expected NAME=VALUE"),
        (["meta", "-b", "nohost"], "bootstrap server 'nohost': expected 'host:port'"),
        (["send", "-t", "x", "-v", "a", "-p", "roundrobin"], "a partition number, random or hash"),
        (["pipe", "-t", "x", "-p", "-1"], "a partition number, random or hash"),
        (["pipe", "-t", "x", "--tail"], "--tail needs a file (-s FILE)"),
        (["pipe", "-t", "x", "--blk-size", "0"], "expected bytes such as 4096, 64K or 1M"),
        (["pipe", "-t", "x", "--max-batch", "1G"], "expected bytes such as 4096, 64K or 1M"),
        (["pipe", "-t", "x", "--max-linger-count", "-3"], "expected a number >= 0"),
        (["meta", "-b", "h:99999"], "port out of range"),
        (["meta", "--sasl-user", "bob"], "SASL needs --sasl-user and --sasl-password"),
        (["meta", "--sasl-mechanism", "PLAIN"], "SASL needs --sasl-user"),
        (["meta", "--sasl-mechanism", "GSSAPI"], "invalid choice: 'GSSAPI'"),
        (["meta", "--keyfile", "k.pem"], "--keyfile needs --certfile"),
        (["meta", "--cafile", "/no/such/ca.pem"], "cannot load the TLS files"),
        (["meta", "--timeout", "-1"], "seconds out of range"),
    ],
)
def test_bad_command_lines_exit_2_with_a_clear_message(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_main(argv, capsys)
    assert status == 2
    assert out == ""
    assert complaint in err
    assert "Traceback" not in err
    # The message says which command was wrong, as argparse does for the main parser.
    assert err.splitlines()[-1].startswith("trio-brod")


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    args = build_parser().parse_args(["fetch", "-t", "orders"])
    assert args.brokers == "localhost:9092"
    assert (args.partition, args.offset, args.count, args.wait, args.fmt) == (
        0,
        "last",
        1,
        5.0,
        "v",
    )
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "k1:9093,k2:9093")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "secret")
    args = build_parser().parse_args(["meta", "--sasl-user", "alice"])
    assert args.brokers == "k1:9093,k2:9093"
    assert args.sasl_password == "secret"
    args = build_parser().parse_args(["commits", "-g", "g", "-t", "a", "-o", "0:5,2:7"])
    assert args.offsets == {0: 5, 2: 7}
    args = build_parser().parse_args(["offset", "-t", "a", "-T", "-2", "-p", "all"])
    assert (args.time, args.partition) == ("earliest", None)
    args = build_parser().parse_args(["send", "-t", "a", "-v", "x", "--acks", "all"])
    assert args.acks == -1


def test_brod_cli_options() -> None:
    parse = build_parser().parse_args
    args = parse(["pipe", "-t", "a", "-p", "hash", "--blk-size", "64K", "--max-batch", "2M"])
    assert (args.partition, args.blk_size, args.max_batch) == ("hash", 64 << 10, 2 << 20)
    assert (args.tail, args.no_eof_exit, args.max_linger_count) == (False, False, 0)
    args = parse(["pipe", "-t", "a", "-p", "3", "--max-linger-cnt", "100", "--no-eof-exit"])
    assert (args.partition, args.max_linger_count, args.no_eof_exit) == (3, 100, True)
    assert parse(["send", "-t", "a", "-v", "x", "-p", "random"]).partition == "random"
    assert parse(["offset", "-t", "a", "--one-line"]).one_line
    assert parse(["fetch", "-t", "a"]).msg_deli == "\n"
    assert parse(["fetch", "-t", "a", "--msg-deli", r"\0"]).msg_deli == "\0"
    assert parse(["fetch", "-t", "a", r"--msg-deli=--\n"]).msg_deli == "--\n"
    assert parse(["fetch", "-t", "a", "--msg-deli", r"\\t"]).msg_deli == "\\t"


@pytest.mark.parametrize(
    "argv",
    [
        ["meta"],
        ["offset", "-t", "a"],
        ["fetch", "-t", "a"],
        ["send", "-t", "a", "-v", "x"],
        ["pipe", "-t", "a"],
        ["groups"],
        ["commits", "-g", "g"],
        ["topics", "create", "t"],
        ["topics", "delete", "t"],
    ],
)
def test_every_command_takes_verbose(argv: list[str]) -> None:
    assert build_parser().parse_args([*argv, "--verbose"]).verbose


def test_verbose_says_what_the_client_does(closed_port: int) -> None:
    result = subprocess.run(
        [*CLI, "meta", "--verbose", "-b", f"127.0.0.1:{closed_port}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"trio-brod: trio_brod.cli: bootstrap 127.0.0.1:{closed_port}, " + (
        "client id 'trio-brod-cli'"
    )
    assert "trio-brod: trio_brod.cli: asking for the metadata of every topic" in lines
    assert lines[-1].startswith("trio-brod: error: ")
    assert "Traceback" not in result.stderr


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(["--version"], capsys)
    assert status == 0
    assert out == f"trio-brod {__version__}\n"
    status, out, _ = run_main(["fetch", "--help"], capsys)
    assert status == 0
    for option in ("--topic", "--offset", "--count", "--wait", "--fmt", "--brokers", "--ssl"):
        assert option in out


def test_console_script_is_main() -> None:
    (script,) = entry_points(group="console_scripts", name="trio-brod")
    assert script.load() is main


# ------------------------------------------------------------------------------ formats


RECORD = Record(
    offset=42,
    timestamp=1_700_000_000_123,
    timestamp_type=TimestampType.CREATE_TIME,
    key=b"user-1",
    value=b"caf\xc3\xa9 \xff",  # UTF-8, then a byte that is not
    headers=(("trace", b"abc"), ("empty", None)),
)


def test_record_formats() -> None:
    assert record_formatter("v")(RECORD, "orders", 3) == "café \\xff"
    assert record_formatter("kv")(RECORD, "orders", 3) == "user-1:café \\xff"
    assert record_formatter("okv", " | ")(RECORD, "orders", 3) == "42 | user-1 | café \\xff"
    custom = record_formatter("{topic}/{partition}@{offset} {ts} {time} {ts_type} [{headers}]")
    assert custom(RECORD, "orders", 3) == (
        "orders/3@42 1700000000123 2023-11-14T22:13:20.123Z create_time [trace=abc,empty=]"
    )
    assert record_formatter("{offset:>5}")(RECORD, "o", 0) == "   42"
    document = json.loads(record_formatter("json")(RECORD, "orders", 3))
    assert document == {
        "topic": "orders",
        "partition": 3,
        "offset": 42,
        "timestamp": 1_700_000_000_123,
        "key": "user-1",
        "value": "café \\xff",
        "headers": [["trace", "abc"], ["empty", None]],
    }
    tombstone = RECORD._replace(key=None, value=None, timestamp=-1)
    assert record_formatter("kv")(tombstone, "o", 0) == ":"
    assert record_formatter("{time}|{value}")(tombstone, "o", 0) == "|"
    assert json.loads(record_formatter("json")(tombstone, "o", 0))["value"] is None
    # Any int64 is a timestamp on the wire; past year 9999 there is no time to show.
    for timestamp, shown in [(2**63 - 1, ""), (253402300799999, "9999-12-31T23:59:59.999Z")]:
        far = RECORD._replace(timestamp=timestamp)
        assert record_formatter("{ts}|{time}")(far, "o", 0) == f"{timestamp}|{shown}"


@pytest.mark.parametrize("fmt", ["", "vk", "plain text", "{0}", "{}", "{key.upper}", "{nope}"])
def test_bad_formats_are_refused(fmt: str) -> None:
    with pytest.raises(ValueError, match="fmt"):
        record_formatter(fmt)


async def test_lines_are_split_across_chunks() -> None:
    # A line split over reads, a CRLF line, an empty line, no newline at the end.
    chunks_left = [b"one\ntw", b"o\r\n", b"\nthree", b" and more"]

    async def read() -> bytes:
        return chunks_left.pop(0) if chunks_left else b""

    lines = [line async for line in split_lines(read)]
    assert lines == [b"one", b"two", b"", b"three and more"]

    empty: list[bytes] = []

    async def nothing() -> bytes:
        return empty.pop() if empty else b""

    assert [line async for line in split_lines(nothing)] == []


# ------------------------------------------------------------------------------ failures


def test_unreachable_broker_is_one_line_and_status_1(closed_port: int) -> None:
    result = subprocess.run(
        [*CLI, "meta", "-b", f"127.0.0.1:{closed_port}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("trio-brod: error: ")
    assert f"127.0.0.1:{closed_port}" in line


def test_debug_shows_the_traceback(closed_port: int) -> None:
    result = subprocess.run(
        [*CLI, "meta", "--debug", "-b", f"127.0.0.1:{closed_port}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("trio-brod: error: ")


def test_ctrl_c_exits_130_without_a_traceback(silent_listener: socket.socket) -> None:
    # Stuck connecting: the "broker" never answers ApiVersions.
    port = silent_listener.getsockname()[1]
    process = subprocess.Popen(
        [*CLI, "meta", "-b", f"127.0.0.1:{port}", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    connection: socket.socket | None = None
    try:
        # Once it has connected, Python has started and trio runs the command, which
        # waits for an answer (however long start-up took on a busy machine).
        silent_listener.settimeout(60)
        connection, _ = silent_listener.accept()
        connection.settimeout(60)
        connection.recv(1)  # the ApiVersions request is on its way: it waits for the answer
        assert process.poll() is None
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        if connection is not None:
            connection.close()
    assert process.returncode == 130
    assert time.monotonic() - started < 5
    assert "Traceback" not in err
    assert "Fatal Python error" not in err
    assert out == ""


def test_module_runs_as_a_script() -> None:
    result = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("meta", "offset", "fetch", "send", "pipe", "groups", "commits", "topics"):
        assert command in result.stdout
