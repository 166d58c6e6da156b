"""The command line of ``trio-brod``: the argument parser, the checks of each option's value,
and the client configuration the connection options ask for."""

from __future__ import annotations

import argparse
import os
import ssl
from collections.abc import Sequence
from typing import Literal

from trio_brod._config import ClientConfig, SaslConfig
from trio_brod._version import __version__
from trio_brod.cli._format import FORMAT_FIELDS

__all__ = ["PROG", "Usage", "build_parser", "client_config", "names"]

PROG = "trio-brod"
_DEFAULT_BOOTSTRAP = "localhost:9092"
_COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
_ACKS: dict[str, Literal[-1, 0, 1]] = {"all": -1, "-1": -1, "1": 1, "0": 0}


class Usage(Exception):
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


def _partition_choice(text: str) -> int | Literal["random", "hash"]:
    if text in ("random", "hash"):
        return text  # type: ignore[return-value]
    try:
        return _partition(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a partition number, random or hash, not {text!r}"
        ) from None


def _size(text: str) -> int:
    """Bytes, as brod-cli reads them: ``4096``, ``64K``, ``1M``."""
    units = {"K": 1 << 10, "M": 1 << 20}
    number, unit = (text[:-1], units[text[-1].upper()]) if text[-1:].upper() in units else (text, 1)
    if not number.isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError(f"expected bytes such as 4096, 64K or 1M, not {text!r}")
    return int(number) * unit


def _non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number >= 0, not {text!r}")
    return int(text)


#: The escapes a delimiter may be written with on a command line (``--msg-deli '\n'``).
_ESCAPES = {"\\n": "\n", "\\t": "\t", "\\r": "\r", "\\0": "\0", "\\\\": "\\"}


def _delimiter(text: str) -> str:
    """A delimiter, with ``\\n``, ``\\t``, ``\\r``, ``\\0`` and ``\\\\`` read as
    the characters they name (a shell passes them literally)."""
    out, i = [], 0
    while i < len(text):
        pair = text[i : i + 2]
        if pair in _ESCAPES:
            out.append(_ESCAPES[pair])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


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


def names(values: Sequence[str] | None) -> list[str]:
    """Repeated and comma-separated names (``-t a -t b,c``), in order, without repeats."""
    found: list[str] = []
    for value in values or ():
        found += [n for n in (part.strip() for part in value.split(",")) if n]
    return list(dict.fromkeys(found))


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
    common.add_argument(
        "--verbose",
        action="store_true",
        help="print what the client does on stderr (with --debug, in more detail)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``trio-brod`` (exposed for tests and documentation)."""
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
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
    offset.add_argument(
        "--one-line",
        action="store_true",
        help="for all partitions, print them on one line: 0:111,1:222",
    )

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
        "'{offset} {time} {key}={value}' (fields: " + " ".join(FORMAT_FIELDS) + ")",
    )
    fetch.add_argument("--kv-sep", type=_separator, default=":", help="for kv and okv (default :)")
    fetch.add_argument(
        "--msg-deli",
        type=_delimiter,
        default="\n",
        metavar="DELI",
        help="what follows each message (default: a newline; \\n \\t \\0 understood)",
    )
    fetch.add_argument(
        "--max-bytes", type=_positive, default=1024 * 1024, help="per fetch (default 1 MiB)"
    )

    send = command("send", "Produce one message; print its offset.")
    send.add_argument("-t", "--topic", required=True)
    send.add_argument(
        "-p",
        "--partition",
        type=_partition_choice,
        help="a number, random, or hash (of the key); default: chosen from the key, as Java does",
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
        "-p",
        "--partition",
        type=_partition_choice,
        help="a number, random, or hash (of the key); default: chosen from the key, as Java does",
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
    pipe.add_argument(
        "--max-linger-count",
        "--max-linger-cnt",
        type=_non_negative,
        default=0,
        metavar="N",
        help="send a batch as soon as N messages wait in it, however short --linger is "
        "(default: 0, no such limit)",
    )
    pipe.add_argument(
        "--max-batch",
        type=_size,
        default=1 << 20,
        metavar="BYTES",
        help="at most this many bytes of messages in one batch, as 4096, 64K or 1M (default: 1M)",
    )
    pipe.add_argument(
        "--blk-size",
        type=_size,
        default=1 << 20,
        metavar="BYTES",
        help="read the source in blocks of this size (default: 1M)",
    )
    pipe.add_argument(
        "--tail",
        action="store_true",
        help="-s FILE only: start at its end and keep reading what is appended (tail -f)",
    )
    pipe.add_argument(
        "--no-eof-exit",
        action="store_true",
        help="at the end of the source, wait for more instead of exiting (stop with Ctrl-C)",
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


def client_config(args: argparse.Namespace) -> ClientConfig:
    """The client configuration the connection options ask for.

    Raises:
        Usage: The options do not fit together, or a TLS file cannot be loaded.
    """
    context = None
    if args.ssl or args.cafile or args.certfile:
        try:
            context = ssl.create_default_context(cafile=args.cafile)
            if args.certfile:
                context.load_cert_chain(args.certfile, args.keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise Usage(f"cannot load the TLS files: {exc}") from None
    elif args.keyfile:
        raise Usage("--keyfile needs --certfile")
    sasl = None
    if args.sasl_mechanism or args.sasl_user:
        if not args.sasl_user or args.sasl_password is None:
            raise Usage("SASL needs --sasl-user and --sasl-password (or $KAFKA_SASL_PASSWORD)")
        sasl = SaslConfig(args.sasl_mechanism or "PLAIN", args.sasl_user, args.sasl_password)
    return ClientConfig(
        client_id=args.client_id,
        request_timeout=max(args.timeout, 1.0),
        ssl_context=context,
        sasl=sasl,
        # A tool that looks at a misspelt topic must not create it.
        allow_topic_auto_creation=False,
    )
