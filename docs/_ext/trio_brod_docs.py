"""Tables in the trio-brod docs that are generated from the code, so they cannot go stale.

``.. config-table:: trio_brod.ProducerConfig``
    One row per dataclass field: name, default (read from the class), brod's name for the
    option (from :data:`BROD_NAMES` below) and the field's description (from the ``Args:``
    section of the class docstring). A field missing from either source is a build warning,
    which ``-W`` turns into a failure: adding a config field without documenting it, or
    without saying what brod calls it, breaks the docs build.

``.. kafka-error-table::``
    Every Kafka error code: code, name, exception class, retriable, refresh metadata.

``.. protocol-api-table::``
    Every API the protocol package implements: key, classes, versions, first flexible version.

``.. protocol-message-classes::``
    An ``autoclass`` of every generated message class, under its public name
    (``trio_brod.protocol.FetchRequest``, not the module it is generated into).

Event handlers:

* Names defined in private modules are resolved to the public name they are documented
  under: a type hint naming ``trio_brod.protocol._gen.fetch.FetchRequest.FetchPartition``
  links to ``trio_brod.protocol.FetchRequest.FetchPartition``, and an exception named
  bare in a docstring's ``Raises:`` section (``UnknownTopicOrPartitionError``) links to
  its entry in :mod:`trio_brod.protocol.errors`.
* napoleon reads the first line of an attribute's or property's docstring as
  ``type: description`` when it has a colon; where the "type" is plainly a phrase, the line
  is put back as written.
* A dataclass field with a ``default_factory`` shows as ``...`` in signatures, instead of
  ``<factory>``, which Sphinx cannot parse.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

logger = logging.getLogger(__name__)

#: brod's name (and unit) for each config field, or how brod does without it. ``None`` means
#: brod has no such option. Text is reST.
BROD_NAMES: dict[str, dict[str, str | None]] = {
    "trio_brod.ClientConfig": {
        "client_id": "``ClientId`` (argument of ``brod:start_client/3``)",
        "connect_timeout": "``connect_timeout`` (ms, 5000)",
        "request_timeout": "``request_timeout`` (ms, 240000)",
        "reconnect_cool_down": "``reconnect_cool_down_seconds`` (1)",
        "get_metadata_timeout": "``get_metadata_timeout_seconds`` (5)",
        "metadata_max_age": None,
        "allow_topic_auto_creation": "``allow_topic_auto_creation`` (true)",
        "max_frame_size": None,
        "ssl_context": "``ssl`` (``true`` or ssl options)",
        "sasl": "``sasl`` (``{Mechanism, User, Password}``)",
        "auto_start_producers": "``auto_start_producers`` (false)",
        "default_producer_config": "``default_producer_config`` ([])",
        "client_rack": None,
        "connect": "``extra_sock_opts`` (socket options only)",
    },
    "trio_brod.ProducerConfig": {
        "required_acks": "``required_acks`` (-1)",
        "ack_timeout": "``ack_timeout`` (ms, 10000)",
        "partition_buffer_limit": "``partition_buffer_limit`` (256)",
        "partition_buffer_bytes": None,
        "partition_onwire_limit": "``partition_onwire_limit`` (1)",
        "max_batch_size": "``max_batch_size`` (1 MB)",
        "max_retries": "``max_retries`` (3)",
        "retry_backoff": "``retry_backoff_ms`` (500, fixed)",
        "retry_backoff_max": None,
        "compression": "``compression`` (``no_compression``)",
        "compression_level": None,
        "max_linger": "``max_linger_ms`` (0)",
        "max_linger_count": "``max_linger_count`` (0)",
        "enable_idempotence": None,
        "max_request_size": None,
        "partitioner": "the ``Partitioner`` argument of ``brod:produce/5`` (per call)",
        "flush_timeout": None,
        "trace_context": None,
    },
    "trio_brod.ConsumerConfig": {
        "begin_offset": "``begin_offset`` (latest)",
        "offset_reset_policy": "``offset_reset_policy`` (reset_by_subscriber)",
        "min_bytes": "``min_bytes`` (0)",
        "max_bytes": "``max_bytes`` (1 MB)",
        "max_wait_time": "``max_wait_time`` (ms, 10000)",
        "sleep_timeout": "``sleep_timeout`` (ms, 1000)",
        "prefetch_count": "``prefetch_count`` (10)",
        "prefetch_bytes": "``prefetch_bytes`` (100 KB)",
        "isolation_level": "``isolation_level`` (read_committed)",
        "size_stat_window": "``size_stat_window`` (5)",
        "share_leader_conn": "``share_leader_conn`` (false)",
        "fetch_connection": ('``share_leader_conn``: false is ``"partition"``, true ``"shared"``'),
        "trace_context": None,
    },
    "trio_brod.GroupConfig": {
        "partition_assignment_strategy": (
            "``partition_assignment_strategy`` (``roundrobin_v2``; or ``callback_implemented``)"
        ),
        "session_timeout": "``session_timeout_seconds`` (30)",
        "rebalance_timeout": "``rebalance_timeout_seconds`` (30)",
        "heartbeat_rate": "``heartbeat_rate_seconds`` (5)",
        "max_rejoin_attempts": "``max_rejoin_attempts`` (5)",
        "rejoin_delay": "``rejoin_delay_seconds`` (1)",
        "offset_commit_policy": (
            "``offset_commit_policy`` (``commit_to_kafka_v2``; or ``consumer_managed``)"
        ),
        "offset_commit_interval": "``offset_commit_interval_seconds`` (5)",
        "offset_retention": "``offset_retention_seconds`` (-1: the broker's)",
        "group_instance_id": None,
        "group_protocol": None,
        "remote_assignor": None,
    },
    "trio_brod.TransactionConfig": {
        "transaction_timeout": None,
        "end_timeout": "``timeout`` (ms, 1000: per request)",
        "producer_config": None,
    },
}


def _import(path: str) -> Any:
    module_name, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def _args_section(doc: str) -> dict[str, str]:
    """The ``Args:`` entries of a Google-style docstring: {name: description (one line)}."""
    lines = inspect.cleandoc(doc).splitlines()
    entries: dict[str, str] = {}
    inside = False
    current: str | None = None
    for line in lines:
        if line.strip() == "Args:":
            inside = True
            continue
        if not inside:
            continue
        if line and not line.startswith(" "):
            break  # the section ended
        match = re.match(r"^ {4}(\w+): ?(.*)$", line)
        if match:
            current = match.group(1)
            entries[current] = match.group(2).strip()
        elif current is not None and line.strip():
            entries[current] += " " + line.strip()
    return entries


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "(required)"
    mebibyte = 1024 * 1024
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value > 0
        and value % mebibyte == 0
    ):
        return f"``{value}`` ({value // mebibyte} MiB)"
    if hasattr(value, "name") and hasattr(value, "value"):  # an enum member
        return f"``{type(value).__name__}.{value.name}``"
    return f"``{value!r}``"


def _cell(text: str) -> list[str]:
    return text.splitlines() or [""]


def _list_table(header: list[str], rows: list[list[str]], widths: str) -> list[str]:
    out = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in [header, *rows]:
        for index, cell in enumerate(row):
            lines = _cell(cell)
            prefix = "   * - " if index == 0 else "     - "
            out.append(prefix + lines[0])
            out.extend("       " + line for line in lines[1:])
    out.append("")
    return out


class _TableDirective(SphinxDirective):
    def render(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.container()
        nested_parse_with_titles(
            self.state, StringList(lines, source=self.get_source_info()[0]), container
        )
        return list(container.children)


class ConfigTable(_TableDirective):
    """``.. config-table:: trio_brod.ProducerConfig``"""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        path = self.arguments[0]
        cls = _import(path)
        described = _args_section(cls.__doc__ or "")
        brod = BROD_NAMES.get(path)
        if brod is None:
            logger.warning("config-table: no brod names for %s in BROD_NAMES", path)
            brod = {}
        rows = []
        for field in dataclasses.fields(cls):
            name = field.name
            text = described.get(name)
            if text is None:
                logger.warning(
                    "config-table: %s.%s has no entry in the class docstring's Args section",
                    path,
                    name,
                    location=self.get_location(),
                )
                text = ""
            if name not in brod:
                logger.warning(
                    "config-table: %s.%s has no brod name in docs/_ext/trio_brod_docs.py",
                    path,
                    name,
                    location=self.get_location(),
                )
            brod_name = brod.get(name) or "--"
            rows.append([f"``{name}``", _default(field), brod_name, text])
        for name in set(brod) - {field.name for field in dataclasses.fields(cls)}:
            logger.warning(
                "config-table: BROD_NAMES lists %s.%s, which is not a field",
                path,
                name,
                location=self.get_location(),
            )
        return self.render(
            _list_table(["Field", "Default", "brod", "Meaning"], rows, "18 14 20 48")
        )


class KafkaErrorTable(_TableDirective):
    """``.. kafka-error-table::``"""

    def run(self) -> list[nodes.Node]:
        from trio_brod.protocol.errors import ERRORS_BY_CODE

        rows = []
        for code in sorted(ERRORS_BY_CODE):
            cls = ERRORS_BY_CODE[code]
            rows.append(
                [
                    str(code),
                    f"``{cls.name}``",
                    f":exc:`~trio_brod.protocol.errors.{cls.__name__}`",
                    "yes" if cls.retriable else "",
                    "yes" if cls.invalid_metadata else "",
                ]
            )
        header = ["Code", "Name", "Exception", "Retriable", "Refresh metadata"]
        return self.render(_list_table(header, rows, "6 38 38 9 9"))


class ProtocolApiTable(_TableDirective):
    """``.. protocol-api-table::``"""

    def run(self) -> list[nodes.Node]:
        from trio_brod.protocol._gen import REQUESTS

        rows = []
        for key in sorted(REQUESTS):
            request = REQUESTS[key]
            response = request.RESPONSE
            stable = request.MAX_STABLE_VERSION
            versions = f"{request.MIN_VERSION}-{request.MAX_VERSION}"
            if stable != request.MAX_VERSION:
                versions += f" (stable: up to {stable})"
            flexible = "" if request.FLEXIBLE_VERSION is None else str(request.FLEXIBLE_VERSION)
            rows.append(
                [
                    str(key),
                    f":class:`~trio_brod.protocol.{request.__name__}`",
                    f":class:`~trio_brod.protocol.{response.__name__}`",
                    versions,
                    flexible,
                ]
            )
        header = ["Key", "Request", "Response", "Versions", "Flexible from"]
        return self.render(_list_table(header, rows, "6 34 34 16 10"))


class ProtocolMessageClasses(_TableDirective):
    """``.. protocol-message-classes::``"""

    def run(self) -> list[nodes.Node]:
        from trio_brod.protocol import _gen

        lines = [".. currentmodule:: trio_brod.protocol", ""]
        for name in sorted(_gen.__all__):
            if not inspect.isclass(getattr(_gen, name)):
                continue
            lines += [f".. autoclass:: {name}", "   :members:", ""]
        return self.render(lines)


#: Where a name that is not found as written is looked for next, in order.
_PUBLIC_HOMES = (
    "trio_brod",
    "trio_brod.admin",
    "trio_brod.lowlevel",
    "trio_brod.protocol",
    "trio_brod.protocol.errors",
    "trio_brod.protocol.records",
    "trio_brod.producer.partitioners",
    "trio_brod.consumer",
    "trio_brod.testing",
)


def _public_candidates(target: str) -> list[str]:
    """Public names that ``target`` (as written in a signature or docstring) may stand for.

    ``trio_brod.protocol._gen.fetch.FetchRequest.X`` gives ``trio_brod.protocol.FetchRequest.X``
    (among others), ``UnknownTopicOrPartitionError`` gives
    ``trio_brod.protocol.errors.UnknownTopicOrPartitionError``; the caller keeps the first that
    is documented.
    """
    parts = target.split(".")
    tails = [parts[i:] for i in range(1, len(parts))] if parts[0] == "trio_brod" else [parts]
    candidates = []
    for tail in tails:
        if any(part.startswith("_") for part in tail):
            continue
        candidates += [f"{home}.{'.'.join(tail)}" for home in _PUBLIC_HOMES]
    return candidates


def _resolve_private(
    app: Sphinx, env: Any, node: nodes.Element, contnode: nodes.Element
) -> nodes.Element | None:
    if node.get("refdomain") != "py":
        return None
    domain = env.get_domain("py")
    for candidate in _public_candidates(node.get("reftarget", "")):
        if candidate not in domain.objects:
            continue
        resolved: nodes.Element | None = domain.resolve_xref(
            env, node.get("refdoc", ""), app.builder, node["reftype"], candidate, node, contnode
        )
        if resolved is not None:
            return resolved
    return None


#: A "type" napoleon found that is really the start of a sentence: several words, none of the
#: characters a type expression would have.
_PHRASE = re.compile(r"^[^\[\]|`:]+( [^\[\]|`:]+){2,}$")


def _fix_attribute_first_line(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Undo napoleon's reading of an attribute's first line ``Phrase: more`` as a type.

    For attributes and properties, napoleon takes ``text: more`` on the first line of the
    docstring as ``type: description``. The docstrings here (and the field comments Kafka's
    schemas give the generated classes) never use that form; they are sentences with a colon.
    """
    if what not in ("attribute", "property", "data") or len(lines) < 2:
        return
    if not lines[-1].startswith(":type: "):
        return
    phrase = lines[-1].removeprefix(":type: ")
    if not _PHRASE.match(phrase):
        return
    del lines[-2:]
    lines[0] = f"{phrase}: {lines[0]}"


class ErrorClasses(_TableDirective):
    """``.. kafka-error-classes::``: an ``autoexception`` for every error code's class."""

    def run(self) -> list[nodes.Node]:
        from trio_brod.protocol.errors import ERRORS_BY_CODE

        lines = []
        for code in sorted(ERRORS_BY_CODE):
            name = ERRORS_BY_CODE[code].__name__
            lines += [f".. autoexception:: trio_brod.protocol.errors.{name}", ""]
        return self.render(lines)


def _dataclass_factory_defaults(
    app: Sphinx,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None] | None:
    """Show a dataclass field's ``default_factory`` default as ``...``.

    ``inspect.signature`` gives it as ``<factory>``, which is not Python: Sphinx then falls
    back to splitting the signature at every comma, breaking annotations such as
    ``dict[int, str]`` in two.
    """
    if signature is None or "<factory>" not in signature:
        return None
    return signature.replace("<factory>", "..."), return_annotation


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directives and event handlers."""
    app.add_directive("config-table", ConfigTable)
    app.add_directive("kafka-error-table", KafkaErrorTable)
    app.add_directive("protocol-api-table", ProtocolApiTable)
    app.add_directive("protocol-message-classes", ProtocolMessageClasses)
    app.add_directive("kafka-error-classes", ErrorClasses)
    app.connect("missing-reference", _resolve_private)
    app.connect("autodoc-process-signature", _dataclass_factory_defaults)
    # Before napoleon (priority 500) reads the docstring, and after it has made it reST.
    app.connect("autodoc-process-docstring", _fix_attribute_first_line, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
