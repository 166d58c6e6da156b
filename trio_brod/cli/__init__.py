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
    trio-brod pipe -t logs -s app.log --tail -p random  # tail -f app.log into Kafka
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

``--verbose`` (any command) prints on stderr what the client does; with ``--debug`` as well,
in more detail. Every command opens one client and closes it before exiting, so ``meta`` is
one Metadata request, as brod-cli's ``brod:get_metadata/3``; a script without a command line
calls :func:`trio_brod.get_metadata` for the same.

Keys and values are shown as UTF-8 text (bytes that are not UTF-8 as ``\\xNN``). The exit
status is 0 on success, 1 with a one-line message on stderr when Kafka or the connection
fails, 2 for a bad command line, 130 after Ctrl-C. ``--debug`` shows the traceback too.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

import trio

from trio_brod._config import ClientConfig
from trio_brod._exceptions import ConfigError
from trio_brod.admin import NewTopic
from trio_brod.cli._args import PROG, Usage, build_parser, client_config, names
from trio_brod.cli._fetch import fetch
from trio_brod.cli._format import record_formatter
from trio_brod.cli._groups import commits, groups
from trio_brod.cli._meta import meta, offset
from trio_brod.cli._produce import pipe, send
from trio_brod.cli._topics import topics
from trio_brod.client import Client, open_client, parse_bootstrap
from trio_brod.protocol.errors import BrodError

__all__ = ["main", "record_formatter"]

#: Exit statuses: Kafka or the connection failed; Ctrl-C. (A bad command line is argparse's 2.)
_EXIT_FAILED = 1
_EXIT_INTERRUPTED = 130
#: What a shell reports for a process killed by SIGPIPE (its reader went away).
_EXIT_BROKEN_PIPE = 141

_logger = logging.getLogger("trio_brod.cli")

# The package: _args (the parser, the checks of option values, the client configuration),
# _format (record lines and tables), one module per group of commands (_meta: meta and
# offset; _fetch; _produce: send and pipe; _groups: groups and commits; _topics), and this
# module, which checks the command line, runs the command and turns errors into exit statuses.

#: Each command: what runs it, with the open client, the parsed arguments and the output.
_COMMANDS: dict[str, Callable[[Client, argparse.Namespace, TextIO], Awaitable[None]]] = {
    "meta": meta,
    "offset": offset,
    "fetch": fetch,
    "send": send,
    "pipe": pipe,
    "groups": groups,
    "commits": commits,
    "topics": topics,
}


async def _run(args: argparse.Namespace, config: ClientConfig, out: TextIO) -> None:
    _logger.info("bootstrap %s, client id %r", args.brokers, config.client_id)
    async with open_client(args.brokers, config) as client:
        await _COMMANDS[args.command](client, args, out)
    _logger.info("done; connections closed")


@contextmanager
def _verbose(args: argparse.Namespace) -> Iterator[None]:
    """With ``--verbose``, what the ``trio_brod`` loggers say goes to stderr while the
    command runs: INFO, or DEBUG with ``--debug`` too (brod-cli's two levels)."""
    if not args.verbose:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(name)s: %(message)s"))
    package = logging.getLogger("trio_brod")
    level = package.level
    package.addHandler(handler)
    package.setLevel(logging.DEBUG if args.debug else logging.INFO)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)


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
        Usage: Something on the command line is wrong.
    """
    try:
        parse_bootstrap(args.brokers)
    except ConfigError as exc:
        raise Usage(str(exc)) from None
    config = client_config(args)
    if args.command == "fetch":
        try:
            record_formatter(args.fmt, args.kv_sep)
        except ValueError as exc:
            raise Usage(str(exc)) from None
    elif args.command == "commits" and args.offsets is not None and len(names(args.topic)) != 1:
        raise Usage("-o/--offsets needs exactly one -t topic")
    elif args.command == "pipe" and args.source != "-" and not os.path.isfile(args.source):
        raise Usage(f"-s {args.source}: no such file")
    elif args.command == "pipe" and args.tail and args.source == "-":
        raise Usage("--tail needs a file (-s FILE); for stdin, use --no-eof-exit")
    elif args.command == "send" and args.value_file and not os.path.isfile(args.value_file):
        raise Usage(f"-f {args.value_file}: no such file")
    elif args.command == "topics" and args.action == "create":
        try:
            for name in args.names:
                NewTopic(name, args.partitions, args.replication_factor, dict(args.config))
        except (TypeError, ValueError) as exc:
            raise Usage(str(exc)) from None
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
    args = build_parser().parse_args(argv)
    try:
        config = _check(args)
    except Usage as exc:
        args.parser.error(str(exc))
    try:
        with _verbose(args):
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
        print(f"{PROG}: error: {_error_line(leaf)}", file=sys.stderr)
    return _EXIT_FAILED
