"""The ``trio-brod`` command line: brod-cli's commands, on trio-brod.

::

    trio-brod meta                                  # brokers, topics, partitions, leaders, ISR
    trio-brod meta -t orders --json
    trio-brod offset -t orders -T earliest          # every partition's first offset
    trio-brod fetch -t orders -p 0 -o earliest -c 10 --fmt kv
    trio-brod fetch -t orders -o 42 -c -1 --fmt '{offset} {ts} {key}={value}'
    trio-brod send -t orders -k user-1 -v '{"total": 42}'
    seq 1000 | trio-brod pipe -t orders             # one message per line
    trio-brod pipe -t orders -s data.txt --kv-sep :
    trio-brod groups                                 # every group; --describe for members
    trio-brod commits -g billing                     # committed offsets and lag
    trio-brod commits -g billing -t orders -o earliest   # reset the group's offsets
    trio-brod topics create orders -P 6 -R 3 -c retention.ms=86400000
    trio-brod topics delete orders

Also ``python -m trio_brod.cli``. Every command takes the connection options: ``-b`` (default
``$KAFKA_BOOTSTRAP`` or ``localhost:9092``), ``--client-id``, ``--ssl``/``--cafile``
(``--certfile``/``--keyfile`` for client certificates) and ``--sasl-mechanism``/
``--sasl-user``/``--sasl-password`` (or ``$KAFKA_SASL_PASSWORD``, which keeps the password out
of the process list).

Keys and values are shown as UTF-8 text (bytes that are not UTF-8 as ``\\xNN``). The exit
status is 0 on success, 1 with a one-line message on stderr when Kafka or the connection
fails, 2 for a bad command line, 130 after Ctrl-C. ``--debug`` shows the traceback too.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import ssl
import string
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, Literal, TextIO

import trio

from trio_brod import __version__
from trio_brod._config import ClientConfig, SaslConfig
from trio_brod._exceptions import ConfigError
from trio_brod._metadata import ClusterMetadata, TopicMetadata
from trio_brod._receipt import DeliveryReceipt
from trio_brod.admin import (
    GroupDescription,
    NewTopic,
    commit_offsets,
    create_topics,
    delete_topics,
    describe_groups,
    fetch_committed_offsets,
    list_groups,
)
from trio_brod.client import Client, open_client, parse_bootstrap
from trio_brod.producer import ProducerConfig
from trio_brod.protocol.errors import BrodError
from trio_brod.protocol.records import Record, TimestampType

__all__ = ["main", "record_formatter"]

_PROG = "trio-brod"
_DEFAULT_BOOTSTRAP = "localhost:9092"
#: Exit statuses: Kafka or the connection failed; Ctrl-C. (A bad command line is argparse's 2.)
_EXIT_FAILED = 1
_EXIT_INTERRUPTED = 130
#: What a shell reports for a process killed by SIGPIPE (its reader went away).
_EXIT_BROKEN_PIPE = 141

_COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
_ACKS: dict[str, Literal[-1, 0, 1]] = {"all": -1, "-1": -1, "1": 1, "0": 0}
#: The fields a ``--fmt`` format string may use.
_FORMAT_FIELDS = (
    "offset",
    "key",
    "value",
    "ts",
    "time",
    "ts_type",
    "headers",
    "partition",
    "topic",
)
_READ_SIZE = 1 << 20


# ------------------------------------------------------------------------------ formatting


def _text(data: bytes | None) -> str:
    """Bytes as text: UTF-8, with anything that is not as ``\\xNN``; None as ``""``."""
    return "" if data is None else data.decode("utf-8", "backslashreplace")


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _record_time(timestamp: int) -> str:
    """A record's timestamp as ISO 8601 UTC, exact to the millisecond (integer arithmetic,
    not a float); "" for none (-1) or one past what ``datetime`` can show (year 9999): any
    int64 is a valid timestamp on the wire, and showing one must not stop a consumer."""
    if timestamp < 0:
        return ""
    try:
        moment = _EPOCH + datetime.timedelta(milliseconds=timestamp)
    except OverflowError:
        return ""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _record_fields(record: Record, topic: str, partition: int) -> dict[str, Any]:
    moment = _record_time(record.timestamp)
    return {
        "offset": record.offset,
        "key": _text(record.key),
        "value": _text(record.value),
        "ts": record.timestamp,
        "time": moment,
        "ts_type": record.timestamp_type.name.lower(),
        "headers": ",".join(f"{name}={_text(value)}" for name, value in record.headers),
        "partition": partition,
        "topic": topic,
    }


def record_formatter(fmt: str, kv_sep: str = ":") -> Callable[[Record, str, int], str]:
    """A function that turns a fetched record into one line of output, for ``--fmt``.

    ``fmt`` is ``"v"`` (the value), ``"kv"`` (key, separator, value), ``"okv"`` (offset,
    key and value), ``"json"`` (one JSON object per record), or a ``str.format`` string
    using the fields ``{offset} {key} {value} {ts} {time} {ts_type} {headers} {partition}
    {topic}`` (``ts`` in milliseconds, ``time`` in ISO 8601 UTC).

    Raises:
        ValueError: ``fmt`` is none of those (a format string with an unknown field, a bad
            format spec, or no field at all, which is most likely a typo).
    """
    if fmt == "v":
        return lambda record, topic, partition: _text(record.value)
    if fmt == "kv":
        return lambda record, topic, partition: f"{_text(record.key)}{kv_sep}{_text(record.value)}"
    if fmt == "okv":
        return lambda record, topic, partition: (
            f"{record.offset}{kv_sep}{_text(record.key)}{kv_sep}{_text(record.value)}"
        )
    if fmt == "json":
        return _json_line
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(fmt) if name is not None]
    except ValueError as exc:
        raise ValueError(f"bad --fmt {fmt!r}: {exc}") from None
    if not fields:
        raise ValueError(
            f"unknown --fmt {fmt!r}: use v, kv, okv, json, or a format string with fields "
            f"such as {{offset}} {{key}} {{value}}"
        )
    for name in fields:
        if name not in _FORMAT_FIELDS:
            raise ValueError(
                f"bad --fmt {fmt!r}: unknown field {{{name}}}; the fields are "
                + " ".join(f"{{{f}}}" for f in _FORMAT_FIELDS)
            )
    sample = Record(0, 0, TimestampType.CREATE_TIME, b"k", b"v", ())
    try:
        fmt.format(**_record_fields(sample, "t", 0))
    except (ValueError, IndexError, KeyError, AttributeError, TypeError) as exc:
        raise ValueError(f"bad --fmt {fmt!r}: {exc}") from None
    return lambda record, topic, partition: fmt.format(**_record_fields(record, topic, partition))


def _json_line(record: Record, topic: str, partition: int) -> str:
    return json.dumps(
        {
            "topic": topic,
            "partition": partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "key": None if record.key is None else _text(record.key),
            "value": None if record.value is None else _text(record.value),
            "headers": [[name, None if v is None else _text(v)] for name, v in record.headers],
        },
        ensure_ascii=False,
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> Iterator[str]:
    """Lines of a plain table: columns padded to their widest cell, two spaces apart."""
    cells = [list(header)] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        yield "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()


# ------------------------------------------------------------------------------ arguments


class _Usage(Exception):
    """A bad command line found after parsing (reported as argparse does, exit status 2)."""


def _partition(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a partition number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a partition is >= 0, not {value}")
    return value


def _partition_or_all(text: str) -> int | None:
    return None if text == "all" else _partition(text)


def _time_spec(text: str) -> Literal["earliest", "latest"] | int:
    if text in ("earliest", "latest"):
        return text  # type: ignore[return-value]
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected earliest, latest or milliseconds since the epoch, not {text!r}"
        ) from None
    if value == -1:
        return "latest"
    if value == -2:
        return "earliest"
    if value < 0:
        raise argparse.ArgumentTypeError(f"a timestamp is >= 0 (or -1, -2), not {value}")
    return value


def _fetch_offset(text: str) -> str | int:
    if text in ("earliest", "latest", "last"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected earliest, latest, last or an offset, not {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"an offset is >= 0, not {value}")
    return value


def _count(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}") from None
    if value == -1:
        return None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a count is >= 1 (or -1 for no limit), not {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 3600 * 24:
        raise argparse.ArgumentTypeError(f"seconds out of range: {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _count_or_default(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else 0
    if value < 1 and value != -1:
        raise argparse.ArgumentTypeError(
            f"expected a number >= 1, or -1 for the broker's default, not {text!r}"
        )
    return value


def _key_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    return name, value


def _acks(text: str) -> Literal[-1, 0, 1]:
    try:
        return _ACKS[text]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected all, -1, 1 or 0, not {text!r}") from None


def _separator(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("the separator is empty")
    return text


def _names(values: Sequence[str] | None) -> list[str]:
    """Repeated and comma-separated names (``-t a -t b,c``), in order, without repeats."""
    names: list[str] = []
    for value in values or ():
        names += [n for n in (part.strip() for part in value.split(",")) if n]
    return list(dict.fromkeys(names))


def _commit_spec(text: str) -> str | dict[int, int]:
    if text in ("earliest", "latest"):
        return text
    offsets: dict[int, int] = {}
    for item in text.split(","):
        partition, sep, offset = item.strip().partition(":")
        if not (sep and partition.isdigit() and offset.isdigit()):
            raise argparse.ArgumentTypeError(
                f"expected earliest, latest or PARTITION:OFFSET,..., not {text!r}"
            )
        offsets[int(partition)] = int(offset)
    return offsets


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument(
        "-b",
        "--brokers",
        default=os.environ.get("KAFKA_BOOTSTRAP") or _DEFAULT_BOOTSTRAP,
        metavar="HOST:PORT,...",
        help="bootstrap brokers (default: $KAFKA_BOOTSTRAP or %(default)s)",
    )
    group.add_argument("--client-id", default="trio-brod-cli", help="default: %(default)s")
    group.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for any broker's answer (default: %(default)s)",
    )
    group.add_argument("--ssl", action="store_true", help="use TLS, trusting the system's CAs")
    group.add_argument("--cafile", help="use TLS, trusting the CA certificates in this file")
    group.add_argument("--certfile", help="TLS client certificate (PEM), for brokers that ask")
    group.add_argument("--keyfile", help="the private key of --certfile, if not in it")
    group.add_argument(
        "--sasl-mechanism",
        choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        help="authenticate with SASL (default PLAIN when --sasl-user is given)",
    )
    group.add_argument("--sasl-user")
    group.add_argument(
        "--sasl-password",
        default=os.environ.get("KAFKA_SASL_PASSWORD"),
        help="default: $KAFKA_SASL_PASSWORD",
    )
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return common


def _build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``trio-brod`` (exposed for tests and documentation)."""
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="A Kafka command line on trio-brod (brod-cli's commands).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        # Errors found after parsing are reported with the subcommand's own usage line.
        sub.set_defaults(parser=sub)
        return sub

    meta = command("meta", "Show brokers, topics, partitions, leaders and in-sync replicas.")
    meta.add_argument("-t", "--topic", action="append", help="only these topics (repeat, or a,b)")
    meta.add_argument("-L", "--list", action="store_true", help="topic names only")
    meta.add_argument(
        "-U", "--under-replicated", action="store_true", help="only under-replicated partitions"
    )
    meta.add_argument("-i", "--internal", action="store_true", help="include internal topics")
    meta.add_argument("--json", action="store_true", help="print JSON")

    offset = command("offset", "Show partitions' offsets (earliest, latest, or at a time).")
    offset.add_argument("-t", "--topic", required=True)
    offset.add_argument(
        "-p", "--partition", type=_partition_or_all, help="a partition, or all (default)"
    )
    offset.add_argument(
        "-T",
        "--time",
        type=_time_spec,
        default="latest",
        help="earliest, latest (default), or milliseconds since the epoch",
    )
    offset.add_argument("--json", action="store_true", help="print JSON")

    fetch = command("fetch", "Fetch messages from a partition.")
    fetch.add_argument("-t", "--topic", required=True)
    fetch.add_argument("-p", "--partition", type=_partition, default=0, help="default: 0")
    fetch.add_argument(
        "-o",
        "--offset",
        type=_fetch_offset,
        default="last",
        help="earliest, latest, last (the last message; default), or an offset",
    )
    fetch.add_argument(
        "-c", "--count", type=_count, default=1, help="how many; -1 for no limit (default 1)"
    )
    fetch.add_argument(
        "-w",
        "--wait",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="stop when no message came for this long (default: %(default)s)",
    )
    fetch.add_argument(
        "--fmt",
        default="v",
        help="v (value, default), kv, okv, json, or a format string such as "
        "'{offset} {time} {key}={value}' (fields: " + " ".join(_FORMAT_FIELDS) + ")",
    )
    fetch.add_argument("--kv-sep", type=_separator, default=":", help="for kv and okv (default :)")
    fetch.add_argument(
        "--max-bytes", type=_positive, default=1024 * 1024, help="per fetch (default 1 MiB)"
    )

    send = command("send", "Produce one message; print its offset.")
    send.add_argument("-t", "--topic", required=True)
    send.add_argument(
        "-p", "--partition", type=_partition, help="default: chosen from the key, as Java does"
    )
    send.add_argument("-k", "--key", help="the key (default: none)")
    value = send.add_mutually_exclusive_group(required=True)
    value.add_argument("-v", "--value", help="the value")
    value.add_argument("-f", "--value-file", help="send this file's bytes as the value")
    send.add_argument(
        "-H", "--header", type=_key_value, action="append", default=[], help="NAME=VALUE"
    )
    _producer_options(send)
    send.add_argument("--json", action="store_true", help="print topic, partition, offset")

    pipe = command("pipe", "Produce each line of a file or stdin as a message; print the count.")
    pipe.add_argument("-t", "--topic", required=True)
    pipe.add_argument(
        "-p", "--partition", type=_partition, help="default: chosen from the key, as Java does"
    )
    pipe.add_argument("-s", "--source", default="-", help="a file, or - for stdin (default)")
    pipe.add_argument(
        "--kv-sep", type=_separator, help="split each line at the first SEP into key and value"
    )
    _producer_options(pipe)
    pipe.add_argument(
        "--linger",
        type=_seconds,
        default=0.005,
        metavar="SECONDS",
        help="wait this long to fill batches (default: %(default)s)",
    )

    groups = command("groups", "List consumer groups, or describe them (members, assignments).")
    groups.add_argument("-g", "--group", action="append", help="describe these groups (a,b)")
    groups.add_argument("-d", "--describe", action="store_true", help="describe every group")
    groups.add_argument("--json", action="store_true", help="print JSON")

    commits = command("commits", "Show a group's committed offsets and lag, or commit offsets.")
    commits.add_argument("-g", "--group", required=True)
    commits.add_argument("-t", "--topic", action="append", help="only these topics (a,b)")
    commits.add_argument(
        "-o",
        "--offsets",
        type=_commit_spec,
        help="commit instead: earliest, latest, or PARTITION:OFFSET,... for the -t topic "
        "(the group must have no active members)",
    )
    commits.add_argument("--metadata", default="", help="stored with committed offsets")
    commits.add_argument("--json", action="store_true", help="print JSON")

    topics = command("topics", "Create or delete topics.")
    actions = topics.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", parents=[common], help="create topics")
    create.set_defaults(parser=create)
    create.add_argument("names", nargs="+", metavar="TOPIC")
    create.add_argument(
        "-P",
        "--partitions",
        type=_count_or_default,
        default=-1,
        help="partitions (default: the broker's num.partitions)",
    )
    create.add_argument(
        "-R",
        "--replication-factor",
        type=_count_or_default,
        default=-1,
        help="replicas (default: the broker's default.replication.factor)",
    )
    create.add_argument(
        "-c", "--config", type=_key_value, action="append", default=[], help="NAME=VALUE"
    )
    create.add_argument("--validate-only", action="store_true", help="check, create nothing")
    delete = actions.add_parser("delete", parents=[common], help="delete topics")
    delete.set_defaults(parser=delete)
    delete.add_argument("names", nargs="+", metavar="TOPIC")
    return parser


def _producer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--acks", type=_acks, default=-1, help="all or -1 (default), 1 (the leader), 0 (none)"
    )
    parser.add_argument("--compression", choices=_COMPRESSIONS, default="none")


def _client_config(args: argparse.Namespace) -> ClientConfig:
    """The client configuration the connection options ask for.

    Raises:
        _Usage: The options do not fit together, or a TLS file cannot be loaded.
    """
    context = None
    if args.ssl or args.cafile or args.certfile:
        try:
            context = ssl.create_default_context(cafile=args.cafile)
            if args.certfile:
                context.load_cert_chain(args.certfile, args.keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise _Usage(f"cannot load the TLS files: {exc}") from None
    elif args.keyfile:
        raise _Usage("--keyfile needs --certfile")
    sasl = None
    if args.sasl_mechanism or args.sasl_user:
        if not args.sasl_user or args.sasl_password is None:
            raise _Usage("SASL needs --sasl-user and --sasl-password (or $KAFKA_SASL_PASSWORD)")
        sasl = SaslConfig(args.sasl_mechanism or "PLAIN", args.sasl_user, args.sasl_password)
    return ClientConfig(
        client_id=args.client_id,
        request_timeout=max(args.timeout, 1.0),
        ssl_context=context,
        sasl=sasl,
        # A tool that looks at a misspelt topic must not create it.
        allow_topic_auto_creation=False,
    )


# ------------------------------------------------------------------------------ commands


async def _meta(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    wanted = _names(args.topic)
    metadata = await client.get_metadata(wanted or None)
    topics = [
        t
        for name, t in sorted(metadata.topics.items())
        if wanted or args.internal or not t.is_internal
    ]
    if args.under_replicated:
        topics = [_only_under_replicated(t) for t in topics]
        topics = [t for t in topics if t.partitions or t.error_code]
    if args.json:
        print(json.dumps(_metadata_json(metadata, topics), indent=2), file=out)
        return
    if args.list:
        for topic in topics:
            print(topic.name, file=out)
        return
    print(f"cluster {metadata.cluster_id}, controller {metadata.controller_id}", file=out)
    print(f"brokers {len(metadata.brokers)}:", file=out)
    for node_id, broker in sorted(metadata.brokers.items()):
        rack = f" rack {broker.rack}" if broker.rack else ""
        print(f"  {node_id}: {broker.address}{rack}", file=out)
    print(f"topics {len(topics)}:", file=out)
    for topic in topics:
        if topic.error is not None:
            print(f"  {topic.name}: {topic.error.name}", file=out)
            continue
        print(f"  {topic.name} {topic.partition_count}:", file=out)
        for number, p in sorted(topic.partitions.items()):
            # As brod-cli: replicas, out-of-sync ones marked with *.
            replicas = ",".join(f"{r}{'' if r in p.isr else '*'}" for r in p.replicas)
            error = f" {p.error.name}" if p.error is not None else ""
            print(f"    {number}: {p.leader} ({replicas}){error}", file=out)


def _only_under_replicated(topic: TopicMetadata) -> TopicMetadata:
    partitions = {n: p for n, p in topic.partitions.items() if len(p.isr) < len(p.replicas)}
    return dataclasses.replace(topic, partitions=partitions)


def _metadata_json(metadata: ClusterMetadata, topics: list[TopicMetadata]) -> dict[str, Any]:
    return {
        "cluster_id": metadata.cluster_id,
        "controller_id": metadata.controller_id,
        "brokers": [
            {"node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack}
            for _, b in sorted(metadata.brokers.items())
        ],
        "topics": [
            {
                "name": t.name,
                "error": t.error.name if t.error is not None else None,
                "internal": t.is_internal,
                "partitions": [
                    {
                        "partition": n,
                        "leader": p.leader,
                        "replicas": list(p.replicas),
                        "isr": list(p.isr),
                        "error": p.error.name if p.error is not None else None,
                    }
                    for n, p in sorted(t.partitions.items())
                ],
            }
            for t in topics
        ],
    }


async def _partitions(client: Client, topic: str) -> range:
    return range(await client.get_partitions_count_safe(topic))


async def _offset(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    if args.partition is not None:
        partitions: Sequence[int] = [args.partition]
    else:
        partitions = await _partitions(client, args.topic)
    offsets = {p: await client.resolve_offset(args.topic, p, args.time) for p in partitions}
    if args.json:
        document = {"topic": args.topic, "offsets": {str(p): o for p, o in offsets.items()}}
        print(json.dumps(document), file=out)
    elif args.partition is not None:
        print(offsets[args.partition], file=out)
    else:
        for partition, offset in offsets.items():
            print(f"{partition}:{offset}", file=out)


async def _fetch(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    topic, partition = args.topic, args.partition
    render = record_formatter(args.fmt, args.kv_sep)
    offset = args.offset
    if offset == "last":
        latest = await client.resolve_offset(topic, partition, "latest")
        earliest = await client.resolve_offset(topic, partition, "earliest")
        offset = max(latest - 1, earliest)
    elif isinstance(offset, str):
        when: Literal["earliest", "latest"] = "earliest" if offset == "earliest" else "latest"
        offset = await client.resolve_offset(topic, partition, when)
    remaining: int | None = args.count
    while remaining is None or remaining > 0:
        message_set = await client.fetch(
            topic, partition, offset, max_wait_time=args.wait, max_bytes=args.max_bytes
        )
        records = message_set.messages
        if not records and message_set.next_offset <= offset:
            return  # nothing came within --wait
        for record in records:
            print(render(record, topic, partition), file=out)
            if remaining is not None:
                remaining -= 1
                if remaining == 0:
                    break
        out.flush()
        offset = max(message_set.next_offset, offset)


async def _send(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    if args.value_file is not None:
        value = await trio.Path(args.value_file).read_bytes()
    else:
        value = args.value.encode()
    await client.start_producer(args.topic, _producer_config(args))
    receipt = await client.produce(
        args.topic,
        value,
        None if args.key is None else args.key.encode(),
        partition=args.partition,
        headers=[(name, v.encode()) for name, v in args.header],
    )
    offset = await receipt
    if args.json:
        document = {"topic": args.topic, "partition": receipt.partition, "offset": offset}
        print(json.dumps(document), file=out)
    else:
        print(offset, file=out)


def _producer_config(args: argparse.Namespace, **options: Any) -> ProducerConfig:
    return ProducerConfig(required_acks=args.acks, compression=args.compression, **options)


class _LineError(BrodError):
    """A line of ``pipe`` input cannot be made into a message."""


async def _pipe(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    topic, separator = args.topic, None if args.kv_sep is None else args.kv_sep.encode()
    await client.start_producer(topic, _producer_config(args, max_linger=args.linger))
    delivered = 0
    failures: list[BaseException] = []

    def done(receipt: DeliveryReceipt) -> None:
        nonlocal delivered
        error = receipt.exception()
        if error is None:
            delivered += 1
        elif not failures:
            failures.append(error)

    number = 0
    try:
        async for line in _lines(args.source):
            number += 1
            key = None
            if separator is not None:
                key, found, line = line.partition(separator)
                if not found:
                    raise _LineError(
                        f"line {number} has no {args.kv_sep!r} to split the key from the value"
                    )
            receipt = await client.produce(topic, line, key, partition=args.partition)
            receipt.add_done_callback(done)
            if failures:
                break
    except _LineError:
        await client.stop_producer(topic)  # what came before the bad line is delivered
        print(delivered, file=out)
        raise
    await client.stop_producer(topic)  # waits until what is buffered is delivered
    print(delivered, file=out)
    if failures:
        raise failures[0]


async def _lines(source: str) -> AsyncIterator[bytes]:
    """The lines of a file or stdin, as bytes without their line ending (``\\n`` or
    ``\\r\\n``, as Kafka's console producer reads them), read in chunks of up to a MiB: one
    thread hop per chunk, not per line."""
    # Plain os.read of the file descriptor: it returns whatever is there (a slow writer's
    # lines go out as they come), and holds no lock of a Python file object, so a read
    # abandoned on Ctrl-C (a terminal's may never return) cannot block the interpreter's exit.
    fd = sys.stdin.fileno() if source == "-" else os.open(source, os.O_RDONLY)

    async def read() -> bytes:
        return await trio.to_thread.run_sync(os.read, fd, _READ_SIZE, abandon_on_cancel=True)

    try:
        async for line in _split_lines(read):
            yield line
    finally:
        if source != "-":
            os.close(fd)


async def _split_lines(read: Callable[[], Awaitable[bytes]]) -> AsyncIterator[bytes]:
    pending = b""
    while chunk := await read():
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line
    if pending:
        yield pending[:-1] if pending.endswith(b"\r") else pending


async def _groups(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    wanted = _names(args.group)
    if not wanted and not args.describe:
        listing = await list_groups(client)
        if args.json:
            print(json.dumps([dataclasses.asdict(g) for g in listing], indent=2), file=out)
            return
        rows = [
            (g.group_id, g.protocol_type or "-", g.state or "-", g.type or "-", g.coordinator_id)
            for g in listing
        ]
        for line in _table(("GROUP", "PROTOCOL", "STATE", "TYPE", "COORDINATOR"), rows):
            print(line, file=out)
        return
    if not wanted:
        wanted = [g.group_id for g in await list_groups(client)]
    described = await describe_groups(client, wanted) if wanted else {}
    if args.json:
        print(json.dumps([_group_json(described[g]) for g in wanted], indent=2), file=out)
        return
    for group_id in wanted:
        group = described[group_id]
        protocol = "/".join(p for p in (group.protocol_type, group.protocol) if p) or "-"
        coordinator = group.coordinator.node_id
        print(f"{group.group_id}: {group.state}, {protocol}, coordinator {coordinator}", file=out)
        for member in group.members:
            instance = f" instance {member.group_instance_id}" if member.group_instance_id else ""
            who = f"{member.client_id} at {member.client_host}{instance}"
            print(f"  {member.member_id} ({who})", file=out)
            for topic, partitions in sorted((member.assignment or {}).items()):
                print(f"    {topic}: {','.join(map(str, partitions)) or '-'}", file=out)


def _group_json(group: GroupDescription) -> dict[str, Any]:
    return {
        "group_id": group.group_id,
        "state": group.state,
        "protocol_type": group.protocol_type,
        "protocol": group.protocol,
        "coordinator": group.coordinator.node_id,
        "members": [
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "subscription": None if m.subscription is None else list(m.subscription),
                "assignment": None
                if m.assignment is None
                else {t: list(ps) for t, ps in m.assignment.items()},
            }
            for m in group.members
        ],
    }


async def _commits(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    topics = _names(args.topic)
    if args.offsets is not None:
        await _commit(client, args.group, topics[0], args.offsets, args.metadata, out)
        return
    committed = await fetch_committed_offsets(client, args.group, topics or None)
    keys = set(committed)
    for topic in topics:  # partitions without a commit are shown too
        keys.update((topic, p) for p in await _partitions(client, topic))
    rows = []
    for topic, partition in sorted(keys):
        end = await client.resolve_offset(topic, partition, "latest")
        entry = committed.get((topic, partition))
        lag = None if entry is None else max(end - entry.offset, 0)
        rows.append((topic, partition, entry, end, lag))
    if args.json:
        document = [
            {
                "topic": topic,
                "partition": partition,
                "committed": None if entry is None else entry.offset,
                "metadata": None if entry is None else entry.metadata,
                "end": end,
                "lag": lag,
            }
            for topic, partition, entry, end, lag in rows
        ]
        print(json.dumps({"group": args.group, "offsets": document}, indent=2), file=out)
        return
    table = [
        (
            topic,
            partition,
            "-" if entry is None else entry.offset,
            end,
            "-" if lag is None else lag,
            "" if entry is None else entry.metadata,
        )
        for topic, partition, entry, end, lag in rows
    ]
    for line in _table(("TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "METADATA"), table):
        print(line, file=out)


async def _commit(
    client: Client,
    group_id: str,
    topic: str,
    spec: str | dict[int, int],
    metadata: str,
    out: TextIO,
) -> None:
    if isinstance(spec, str):
        when: Literal["earliest", "latest"] = "earliest" if spec == "earliest" else "latest"
        offsets = {
            p: await client.resolve_offset(topic, p, when) for p in await _partitions(client, topic)
        }
    else:
        offsets = spec
    await commit_offsets(client, group_id, {(topic, p): o for p, o in offsets.items()}, metadata)
    for partition, offset in sorted(offsets.items()):
        print(f"{topic}:{partition}:{offset}", file=out)


async def _topics(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    names = list(dict.fromkeys(args.names))
    if args.action == "create":
        configs = dict(args.config)
        new = [NewTopic(n, args.partitions, args.replication_factor, configs) for n in names]
        await create_topics(client, new, timeout=args.timeout, validate_only=args.validate_only)
        verb = "valid" if args.validate_only else "created"
    else:
        await delete_topics(client, names, timeout=args.timeout)
        verb = "deleted"
    for name in names:
        print(f"{verb} {name}", file=out)


_COMMANDS = {
    "meta": _meta,
    "offset": _offset,
    "fetch": _fetch,
    "send": _send,
    "pipe": _pipe,
    "groups": _groups,
    "commits": _commits,
    "topics": _topics,
}


# ------------------------------------------------------------------------------ running


async def _run(args: argparse.Namespace, config: ClientConfig, out: TextIO) -> None:
    async with open_client(args.brokers, config) as client:
        await _COMMANDS[args.command](client, args, out)


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _error_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.filename}: {error.strerror}"
    return str(error) or type(error).__name__


def _check(args: argparse.Namespace) -> ClientConfig:
    """Check what argparse could not; return the client's configuration.

    Raises:
        _Usage: Something on the command line is wrong.
    """
    try:
        parse_bootstrap(args.brokers)
    except ConfigError as exc:
        raise _Usage(str(exc)) from None
    config = _client_config(args)
    if args.command == "fetch":
        try:
            record_formatter(args.fmt, args.kv_sep)
        except ValueError as exc:
            raise _Usage(str(exc)) from None
    elif args.command == "commits" and args.offsets is not None and len(_names(args.topic)) != 1:
        raise _Usage("-o/--offsets needs exactly one -t topic")
    elif args.command == "pipe" and args.source != "-" and not os.path.isfile(args.source):
        raise _Usage(f"-s {args.source}: no such file")
    elif args.command == "send" and args.value_file and not os.path.isfile(args.value_file):
        raise _Usage(f"-f {args.value_file}: no such file")
    elif args.command == "topics" and args.action == "create":
        try:
            for name in args.names:
                NewTopic(name, args.partitions, args.replication_factor, dict(args.config))
        except (TypeError, ValueError) as exc:
            raise _Usage(str(exc)) from None
    return config


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run ``trio-brod``; return the exit status.

    Args:
        argv: The arguments (default: the process's).
        out: Where output goes (default: stdout).

    Returns 0 when done, 1 when Kafka or the connection failed (after printing one line per
    error on stderr), 130 after Ctrl-C. A bad command line ends with argparse's
    ``SystemExit(2)`` and its usage message, as usual.
    """
    out = sys.stdout if out is None else out
    args = _build_parser().parse_args(argv)
    try:
        config = _check(args)
    except _Usage as exc:
        args.parser.error(str(exc))
    try:
        trio.run(_run, args, config, out)
    except BaseException as error:
        return _exit_status(error, args)
    return 0


def _exit_status(error: BaseException, args: argparse.Namespace) -> int:
    leaves = _leaves(error)
    if any(isinstance(e, KeyboardInterrupt) for e in leaves):
        return _EXIT_INTERRUPTED
    if any(isinstance(e, BrokenPipeError) for e in leaves):
        # The reader went away (`trio-brod fetch ... | head`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return _EXIT_BROKEN_PIPE
    if not all(isinstance(e, (BrodError, ValueError, OSError)) for e in leaves):
        raise error  # a bug: the traceback is what is needed
    if args.debug:
        traceback.print_exception(error)
    for leaf in leaves:
        print(f"{_PROG}: error: {_error_line(leaf)}", file=sys.stderr)
    return _EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
