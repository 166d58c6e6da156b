#!/usr/bin/env python3
"""Generate trio_brod/protocol/_gen from Apache Kafka's JSON message schemas.

Usage::

    python tools/gen_protocol.py [--schemas DIR] [--out DIR]

The schemas default to ``<repo>/../shared/kafka-message-schemas`` and the output to
``<repo>/trio_brod/protocol/_gen``. The output is committed; a unit test regenerates it into a
temporary directory and fails if the two differ, so regenerate after changing this file.

What comes out, per API (see :data:`APIS`), is one module holding the request and response
classes: ``@dataclass(slots=True)`` classes whose fields are the schema's fields in snake_case,
with every structure of the message (however deeply nested, plus the ``commonStructs``) as a
class attribute of the top-level class. Encoding and decoding are module-level functions, one
per (structure, distinct wire layout); a version table on each class picks the right one, so no
"is this field in this version" test runs at encode or decode time. What makes them fast:

* runs of fixed-size fields, together with the classic (non-compact) length prefix that
  follows them, are read and written with one precompiled ``struct.Struct`` each;
* decoders make objects with ``object.__new__`` and assign the attributes as they read them
  (a run unpacks straight into them), instead of calling the dataclass ``__init__``;
* elements of arrays of "leaf" structs (no structs inside, such as Metadata's partitions) are
  read and written inline in the array's loop, without a call per element;
* arrays of numbers are read and written with one ``struct`` call each.

Errors cost nothing on the happy path: see ``trio_brod/protocol/_primitives.py``.

Kafka's rules, as its Java generator applies them: tagged fields are written only when they
differ from their default; a non-default value in a non-ignorable field the version lacks is an
error; nullable structs carry an int8 marker (-1 null, 1 present), or a varint (0 null, 1
present) when tagged; strings are at most 32767 bytes; array counts are checked against the
bytes left before anything is allocated; unknown tags are skipped.

Only the standard library is used, so the generator runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import keyword
import re
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SCHEMAS = REPO.parent / "shared" / "kafka-message-schemas"
DEFAULT_OUT = REPO / "trio_brod" / "protocol" / "_gen"

#: The APIs to generate: each gets a module with ``<Name>Request`` and ``<Name>Response``.
#: Add a name here (and regenerate) to support another API.
APIS: tuple[str, ...] = (
    "Produce",
    "Fetch",
    "ListOffsets",
    "Metadata",
    "OffsetCommit",
    "OffsetFetch",
    "FindCoordinator",
    "JoinGroup",
    "Heartbeat",
    "LeaveGroup",
    "SyncGroup",
    "DescribeGroups",
    "ListGroups",
    "SaslHandshake",
    "ApiVersions",
    "CreateTopics",
    "DeleteTopics",
    "DeleteRecords",
    "InitProducerId",
    "OffsetForLeaderEpoch",
    "AddPartitionsToTxn",
    "AddOffsetsToTxn",
    "EndTxn",
    "TxnOffsetCommit",
    "DescribeConfigs",
    "AlterConfigs",
    "SaslAuthenticate",
    "CreatePartitions",
    "DeleteGroups",
    "IncrementalAlterConfigs",
    "DescribeCluster",
    "DescribeProducers",
    "DescribeTransactions",
    "ListTransactions",
    "ConsumerGroupHeartbeat",
    "ConsumerGroupDescribe",
)

#: Modules of schemas that are not request/response pairs (headers, embedded data types).
OTHER_MODULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("headers", ("RequestHeader", "ResponseHeader")),
    ("consumer_protocol", ("ConsumerProtocolSubscription", "ConsumerProtocolAssignment")),
)

#: Versions newer than the schemas in DEFAULT_SCHEMAS list, by schema name: (the highest
#: valid version, whether the newest is unstable). Each is a fact of the Kafka protocol, given
#: with its reason; every field open-ended in the schema ("N+") is in the added versions too.
#: KIP-890 part 2 (transactions v2, stable since Kafka 4.0): Produce v12 is v11 on the wire
#: and TxnOffsetCommit v5 is v4; in a transaction under transactions v2 they also add the
#: partition (the group) to it, which is why a client may send them in a transaction only
#: when transactions v2 is on. EndTxn v5 (the response carries the producer id and epoch the
#: coordinator bumped) is in the schemas, marked unstable as it was before Kafka 4.0.
VERSION_OVERRIDES: dict[str, tuple[int, bool]] = {
    "ProduceRequest": (12, False),
    "ProduceResponse": (12, False),
    "TxnOffsetCommitRequest": (5, False),
    "TxnOffsetCommitResponse": (5, False),
    "EndTxnRequest": (5, False),
}

COMMAND = "python tools/gen_protocol.py"
HIGHEST = 0x7FFF  # the open end of "N+" version ranges

# struct format codes and sizes of the fixed-size types
FORMATS = {
    "bool": "?",
    "int8": "b",
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "float64": "d",
    "uuid": "16s",
}
SIZES = {"?": 1, "b": 1, "h": 2, "H": 2, "i": 4, "I": 4, "q": 8, "d": 8, "16s": 16, "x": 1}
INT_TYPES = ("int8", "int16", "uint16", "int32", "uint32", "int64")
# Names a schema field may not take as its attribute (they get a trailing underscore): the
# methods of the generated classes, and names their class bodies use after the fields begin.
RESERVED = {"encode", "decode", "decode_from", "field", "list", "dataclass"}
# Names a schema struct may not take: nested classes live in the top-level class's namespace.
RESERVED_STRUCT_NAMES = {
    "Struct",
    "UUID_ZERO",
    "API_KEY",
    "NAME",
    "MIN_VERSION",
    "MAX_VERSION",
    "FLEXIBLE_VERSION",
    "REQUEST",
    "RESPONSE",
}


# --------------------------------------------------------------------------- JSON with comments


def strip_comments(text: str) -> str:
    """Remove ``//`` comments, leaving string literals (which may hold URLs) untouched."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == '"':
            # copy the whole string literal, honouring backslash escapes
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        else:
            out.append(char)
            i += 1
    return "".join(out)


def load_schema(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(strip_comments(path.read_text(encoding="utf-8")))
    return data


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Versions:
    """An inclusive version range; empty when low > high."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> Versions:
        text = text.strip()
        if text in ("", "none"):
            return NO_VERSIONS
        if text.endswith("+"):
            return cls(int(text[:-1]), HIGHEST)
        if "-" in text:
            low, high = text.split("-")
            return cls(int(low), int(high))
        return cls(int(text), int(text))

    def __contains__(self, version: int) -> bool:
        return self.low <= version <= self.high

    @property
    def empty(self) -> bool:
        return self.low > self.high

    def range_literal(self) -> str:
        if self.empty:
            return "range(0)"
        return f"range({self.low}, {self.high + 1})"


NO_VERSIONS = Versions(1, 0)


def snake_case(name: str) -> str:
    """``TransactionalId`` -> ``transactional_id``, ``IsrNodes`` -> ``isr_nodes``,
    ``timeoutMs`` -> ``timeout_ms``, ``HTTPServer`` -> ``http_server``."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return name.lower()


@dataclass
class FieldSpec:
    wire_name: str
    attr: str
    type_text: str
    kind: str  # a primitive name, "string", "bytes", "records", "struct" or "array"
    element: str | None  # for arrays: a primitive name, "string", "bytes" or "struct"
    struct_name: str | None  # for structs and arrays of structs
    versions: Versions
    nullable: Versions
    tagged: Versions
    tag: int | None
    ignorable: bool
    flexible: Versions | None  # a field-level override of the message's flexible versions
    default_text: str | None
    about: str


@dataclass
class StructSpec:
    name: str
    fields: list[FieldSpec]


@dataclass
class MessageSpec:
    name: str
    kind: str  # "request", "response", "header" or "data"
    api_key: int
    valid: Versions
    flexible: Versions
    top: StructSpec
    #: every nested or common struct, in order of first appearance
    structs: dict[str, StructSpec]
    source: str
    #: True if the schema marks the highest version as unstable (still under development)
    latest_unstable: bool = False


PRIMITIVES = set(FORMATS)
VARIABLE = {"string", "bytes", "records"}


def parse_message(path: Path) -> MessageSpec:
    data = load_schema(path)
    structs: dict[str, StructSpec] = {}
    referenced: list[tuple[str, str]] = []

    def parse_fields(raw_fields: list[dict[str, Any]], owner: str) -> list[FieldSpec]:
        fields = []
        for raw in raw_fields:
            fields.append(parse_field(raw, owner))
        attrs = [f.attr for f in fields]
        if len(set(attrs)) != len(attrs):
            raise SystemExit(f"{path.name}: {owner} has two fields with one snake_case name")
        return fields

    def parse_field(raw: dict[str, Any], owner: str) -> FieldSpec:
        type_text: str = raw["type"]
        base = type_text[2:] if type_text.startswith("[]") else type_text
        is_array = type_text.startswith("[]")
        struct_name = None
        if base in PRIMITIVES or base in VARIABLE:
            element_kind = base
        else:
            element_kind = "struct"
            struct_name = base
            if "fields" in raw:
                if base in structs:
                    raise SystemExit(f"{path.name}: struct {base} is defined twice")
                structs[base] = StructSpec(base, [])
                structs[base].fields = parse_fields(raw["fields"], base)
            else:
                referenced.append((base, raw["name"]))
        attr = snake_case(raw["name"])
        if keyword.iskeyword(attr) or attr in RESERVED:
            attr += "_"
        tagged = Versions.parse(raw.get("taggedVersions", "none"))
        if not tagged.empty and "tag" not in raw:
            raise SystemExit(f"{path.name}: {owner}.{raw['name']} has tagged versions, no tag")
        default = raw.get("default")
        if isinstance(default, bool):
            default = "true" if default else "false"
        elif default is not None:
            default = str(default)
        flexible = raw.get("flexibleVersions")
        return FieldSpec(
            wire_name=raw["name"],
            attr=attr,
            type_text=type_text,
            kind="array" if is_array else element_kind,
            element=element_kind if is_array else None,
            struct_name=struct_name,
            versions=Versions.parse(raw["versions"]),
            nullable=Versions.parse(raw.get("nullableVersions", "none")),
            tagged=tagged,
            tag=raw.get("tag"),
            ignorable=bool(raw.get("ignorable", False)),
            flexible=None if flexible is None else Versions.parse(flexible),
            default_text=default,
            about=raw.get("about", ""),
        )

    top_fields = parse_fields(data["fields"], data["name"])
    for common in data.get("commonStructs", []):
        if common["name"] in structs:
            raise SystemExit(f"{path.name}: struct {common['name']} is defined twice")
        structs[common["name"]] = StructSpec(common["name"], [])
        structs[common["name"]].fields = parse_fields(common["fields"], common["name"])
    for struct_name, field_name in referenced:
        if struct_name not in structs:
            raise SystemExit(f"{path.name}: {field_name} refers to unknown struct {struct_name}")
    valid = Versions.parse(data["validVersions"])
    latest_unstable = bool(data.get("latestVersionUnstable", False))
    override = VERSION_OVERRIDES.get(data["name"])
    if override is not None:
        high, latest_unstable = override
        if high < valid.high:
            raise SystemExit(f"{path.name}: VERSION_OVERRIDES lowers v{valid.high} to v{high}")
        valid = Versions(valid.low, high)
    message = MessageSpec(
        name=data["name"],
        kind=data["type"],
        api_key=int(data.get("apiKey", -1)),
        valid=valid,
        flexible=Versions.parse(data.get("flexibleVersions", "none")),
        top=StructSpec(data["name"], top_fields),
        structs=structs,
        source=path.name,
        latest_unstable=latest_unstable,
    )
    check_message(message)
    return message


def check_message(message: MessageSpec) -> None:
    """Refuse schema features the generated code does not handle, rather than write wrong code."""

    def fail(where: str, problem: str) -> None:
        raise SystemExit(f"{message.source}: {where}: {problem}")

    for struct in [message.top, *message.structs.values()]:
        if struct.name in RESERVED_STRUCT_NAMES:
            fail(struct.name, "a struct may not have this name")
        for f in struct.fields:
            where = f"{struct.name}.{f.wire_name}"
            if f.default_text == "null" and not (
                f.nullable.low <= f.versions.low and f.versions.high <= f.nullable.high
            ):
                fail(where, "a null default needs the field nullable in all its versions")
            if f.kind == "uuid" and not f.nullable.empty:
                fail(where, "nullable uuids are not supported")
            if f.tagged.empty:
                continue
            if f.kind == "records":
                fail(where, "records cannot be tagged")
            flexible = message.flexible if f.flexible is None else f.flexible
            for version in range(f.tagged.low, min(f.tagged.high, message.valid.high) + 1):
                if version not in f.versions or version not in flexible:
                    fail(where, f"tagged in version {version}, where it is absent or not flexible")


# --------------------------------------------------------------------------- defaults and types


def java_int(text: str) -> int:
    """Parse an integer default the way Kafka's generator does (decimal, or hex after 0x)."""
    text = text.strip()
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    value = int(digits[2:], 16) if digits.lower().startswith("0x") else int(digits, 10)
    return -value if negative else value


class Context:
    """Everything the code writers need to know about one message and its module."""

    def __init__(self, message: MessageSpec, module_struct_names: dict[str, int]) -> None:
        self.message = message
        self.module_struct_names = module_struct_names
        #: (struct name, version) -> stem of the functions that handle it, e.g.
        #: "MetadataResponseTopic_v9"; versions with one wire layout share functions.
        self.functions: dict[tuple[str, int], str] = {}

    def encoder(self, struct: StructSpec, version: int) -> str:
        return f"_enc_{self.functions[(struct.name, version)]}"

    def decoder(self, struct: StructSpec, version: int) -> str:
        return f"_dec_{self.functions[(struct.name, version)]}"

    # names ----------------------------------------------------------------
    def class_ref(self, struct: StructSpec) -> str:
        """How generated code names a class, e.g. ``MetadataResponse.MetadataResponseTopic``."""
        if struct is self.message.top:
            return self.message.name
        return f"{self.message.name}.{struct.name}"

    def short(self, struct: StructSpec) -> str:
        """A module-unique identifier for a struct, for function and alias names."""
        if struct is self.message.top:
            return self.message.name
        if self.module_struct_names.get(struct.name, 0) > 1:
            return f"{self.message.name}_{struct.name}"
        return struct.name

    def alias(self, struct: StructSpec) -> str:
        return f"_{self.short(struct)}"

    def struct_of(self, f: FieldSpec) -> StructSpec:
        assert f.struct_name is not None
        return self.message.structs[f.struct_name]

    # version questions ------------------------------------------------------
    def flexible(self, version: int) -> bool:
        return version in self.message.flexible

    def compact(self, f: FieldSpec, version: int) -> bool:
        """True if the field's strings, bytes and arrays use the compact encoding."""
        flexible = self.message.flexible if f.flexible is None else f.flexible
        return version in flexible

    # Python types and defaults ---------------------------------------------
    def optional(self, f: FieldSpec) -> bool:
        """True if the Python type allows None: nullable in some version, or null default."""
        if self.default_is_null(f):
            return True
        low = max(f.nullable.low, f.versions.low)
        high = min(f.nullable.high, f.versions.high)
        return low <= high

    def default_is_null(self, f: FieldSpec) -> bool:
        if f.kind == "records":
            return True
        return f.default_text == "null"

    def element_type(self, f: FieldSpec) -> str:
        assert f.element is not None
        if f.element == "struct":
            return self.class_ref(self.struct_of(f))
        return PY_TYPES[f.element]

    def py_type(self, f: FieldSpec) -> str:
        if f.kind == "array":
            base = f"list[{self.element_type(f)}]"
        elif f.kind == "struct":
            base = self.class_ref(self.struct_of(f))
        else:
            base = PY_TYPES[f.kind]
        return f"{base} | None" if self.optional(f) else base

    def default_literal(self, f: FieldSpec) -> str:
        """The default as a Python expression (a fresh object for mutable defaults)."""
        if self.default_is_null(f):
            return "None"
        text = f.default_text
        if f.kind in INT_TYPES:
            return str(java_int(text)) if text else "0"
        if f.kind == "bool":
            if text in (None, "", "false"):
                return "False"
            if text == "true":
                return "True"
            raise SystemExit(f"{self.message.source}: bad bool default {text!r}")
        if f.kind == "float64":
            return repr(float(text)) if text else "0.0"
        if f.kind == "string":
            return json.dumps(text or "")
        if f.kind == "bytes":
            return 'b""'
        if f.kind == "uuid":
            if text:
                raise SystemExit(f"{self.message.source}: uuid defaults are not supported")
            return "UUID_ZERO"
        if f.kind == "array":
            return "[]"
        if f.kind == "struct":
            return f"{self.alias(self.struct_of(f))}()"
        raise AssertionError(f.kind)

    def non_default_test(self, f: FieldSpec, value: str) -> str:
        """An expression that is true when *value* differs from the field's default."""
        if self.default_is_null(f):
            return f"{value} is not None"
        if f.kind in ("array", "bytes"):
            if self.optional(f):
                return f"({value} is None or len({value}) != 0)"
            return f"len({value}) != 0"
        if f.kind == "struct":
            return f"{value} != _DEFAULT_{self.short(self.struct_of(f))}"
        return f"{value} != {self.default_literal(f)}"


PY_TYPES = {
    "bool": "bool",
    "int8": "int",
    "int16": "int",
    "uint16": "int",
    "int32": "int",
    "uint32": "int",
    "int64": "int",
    "float64": "float",
    "uuid": "UUID",
    "string": "str",
    "bytes": "bytes",
    "records": "bytes",
}
ARRAY_HELPER = {
    "bool": "bools",
    "int8": "int8s",
    "int16": "int16s",
    "uint16": "uint16s",
    "int32": "int32s",
    "uint32": "uint32s",
    "int64": "int64s",
    "float64": "float64s",
}


# --------------------------------------------------------------------------- layouts


def layout_key(ctx: Context, struct: StructSpec, version: int, memo: dict[Any, Any]) -> Any:
    """A value that is equal for two versions exactly when the struct's wire layout (and every
    check the encoder makes) is the same, so that they can share encode/decode functions."""
    key = (struct.name, version)
    if key in memo:
        return memo[key]
    parts: list[Any] = [ctx.flexible(version)]
    for f in struct.fields:
        if version not in f.versions:
            parts.append((f.attr, "absent", f.ignorable))
            continue
        child = None
        if f.struct_name is not None:
            child = layout_key(ctx, ctx.struct_of(f), version, memo)
        parts.append(
            (
                f.attr,
                version in f.nullable,
                version in f.tagged,
                ctx.compact(f, version),
                child,
            )
        )
    memo[key] = result = tuple(parts)
    return result


def reachable_versions(ctx: Context) -> dict[str, list[int]]:
    """For every struct (and the top level), the message versions in which it is written."""
    found: dict[str, set[int]] = {ctx.message.top.name: set()}

    def walk(struct: StructSpec, version: int) -> None:
        found.setdefault(struct.name, set()).add(version)
        for f in struct.fields:
            if f.struct_name is not None and version in f.versions:
                walk(ctx.struct_of(f), version)

    for version in range(ctx.message.valid.low, ctx.message.valid.high + 1):
        walk(ctx.message.top, version)
    return {name: sorted(versions) for name, versions in found.items()}


def is_leaf(ctx: Context, struct: StructSpec, version: int) -> bool:
    """True if *struct* holds no structs (or arrays of them) in *version*."""
    return not any(f.struct_name and version in f.versions for f in struct.fields)


def min_size(ctx: Context, struct: StructSpec, version: int) -> int:
    """The fewest bytes one instance of *struct* can take on the wire in *version*."""
    total = 1 if ctx.flexible(version) else 0  # the tagged-field count
    for f in struct.fields:
        if version not in f.versions or version in f.tagged:
            continue
        total += field_min_size(ctx, f, version)
    return total


def field_min_size(ctx: Context, f: FieldSpec, version: int) -> int:
    if f.kind in FORMATS:
        return SIZES[FORMATS[f.kind]]
    if f.kind == "struct":
        if version in f.nullable:
            return 1
        return min_size(ctx, ctx.struct_of(f), version)
    if ctx.compact(f, version):
        return 1
    return 2 if f.kind == "string" else 4


def element_min_size(ctx: Context, f: FieldSpec, version: int) -> int:
    assert f.element is not None
    if f.element in FORMATS:
        return SIZES[FORMATS[f.element]]
    if f.element == "struct":
        return min_size(ctx, ctx.struct_of(f), version)
    if ctx.compact(f, version):
        return 1
    return 2 if f.element == "string" else 4


# --------------------------------------------------------------------------- code writing


class Code:
    """Lines of Python with an indentation level."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 0

    def __call__(self, text: str = "") -> None:
        self.lines.append(("    " * self.level + text) if text else "")

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        self(header)
        self.level += 1
        try:
            yield
        finally:
            self.level -= 1


class StructFormats:
    """The precompiled ``struct.Struct`` objects of one module, named after their formats."""

    def __init__(self) -> None:
        self.formats: dict[str, str] = {}  # format -> name suffix

    def name(self, codes: list[str]) -> str:
        fmt = ">" + "".join(codes)
        # struct's own letters, except "?" (bool) -> "o" and "16s" (uuid) -> "U"
        suffix = "".join({"?": "o", "16s": "U"}.get(c, c) for c in codes)
        self.formats[fmt] = suffix
        return suffix

    def emit(self, code: Code, used_pack: set[str], used_unpack: set[str]) -> None:
        for fmt, suffix in sorted(self.formats.items(), key=lambda item: item[1]):
            code(f"_S_{suffix} = _struct.Struct({fmt!r})")
            if suffix in used_pack:
                code(f"_pack_{suffix} = _S_{suffix}.pack")
            if suffix in used_unpack:
                code(f"_unpack_{suffix} = _S_{suffix}.unpack_from")


class FunctionWriter:
    """Shared state while writing one encode or decode function."""

    def __init__(self, ctx: Context, code: Code, formats: StructFormats, used: set[str]) -> None:
        self.ctx = ctx
        self.code = code
        self.formats = formats
        self.used = used  # names of struct packers/unpackers referenced
        self.counter = 0
        self.run: list[tuple[str, str | None]] = []

    def temp(self, prefix: str) -> str:
        self.counter += 1
        return f"_{prefix}{self.counter}"


class EncoderWriter(FunctionWriter):
    """Writes ``_enc_<Struct>_v<N>(o, w)``: append the struct's bytes to the writer *w*."""

    def flush(self, writer: str = "w") -> None:
        if not self.run:
            return
        codes = [c for c, _ in self.run]
        values = [v for _, v in self.run if v is not None]
        if not values:  # only the empty tagged-field count(s)
            self.code(f"{writer}({bytes(len(codes))!r})")
        else:
            suffix = self.formats.name(codes)
            self.used.add(suffix)
            self.code(f"{writer}(_pack_{suffix}({', '.join(values)}))")
        self.run = []

    def value_of(self, f: FieldSpec, value: str, nullable: bool) -> str:
        """*value*, wrapped in not_null() when the type allows None but this version does not."""
        if not nullable and self.ctx.optional(f):
            return f"not_null({value})"
        return value

    def write_struct(
        self, struct: StructSpec, version: int, obj: str = "o", writer: str = "w"
    ) -> None:
        """Write one *struct*, the object named *obj*, to *writer*."""
        ctx, code = self.ctx, self.code
        # First refuse what this version cannot carry, before writing anything.
        for f in struct.fields:
            if version not in f.versions and not f.ignorable:
                with code.block(f"if {ctx.non_default_test(f, f'{obj}.{f.attr}')}:"):
                    code(f"raise InvalidValue({f.attr!r})")
        tagged: list[FieldSpec] = []
        for f in struct.fields:
            if version not in f.versions:
                continue
            if version in f.tagged:
                tagged.append(f)
                continue
            value = f"{obj}.{f.attr}"
            self.write_field(f, version, value, version in f.nullable, False, writer)
        if not ctx.flexible(version):
            self.flush(writer)
            return
        if not tagged:
            self.run.append(("x", None))  # a zero tagged-field count
            self.flush(writer)
            return
        self.flush(writer)
        entries = self.temp("tags")
        code(f"{entries}: list[bytes] = []")
        for f in sorted(tagged, key=lambda f: f.tag or 0):
            value = f"{obj}.{f.attr}"
            with code.block(f"if {ctx.non_default_test(f, value)}:"):
                parts = self.temp("tagged")
                code(f"{parts}: list[bytes] = []")
                self.write_field(f, version, value, version in f.nullable, True, f"{parts}.append")
                self.flush(f"{parts}.append")
                code(f"{entries}.append(tagged_field({f.tag}, {parts}))")
        code(f"{writer}(uvarint(len({entries})))")
        code(f"{writer}(b''.join({entries}))")

    def write_field(
        self,
        f: FieldSpec,
        version: int,
        value: str,
        nullable: bool,
        tagged: bool,
        writer: str = "w",
    ) -> None:
        ctx, code = self.ctx, self.code
        compact = tagged or ctx.compact(f, version)
        if f.kind in FORMATS:
            expr = f"{value}.bytes" if f.kind == "uuid" else value
            self.run.append((FORMATS[f.kind], expr))
        elif f.kind == "string":
            if compact:
                self.flush(writer)
                helper = "compact_nullable_string" if nullable else "compact_string"
                code(f"{writer}({helper}({self.value_of(f, value, nullable)}))")
            else:
                var = self.temp("s")
                if nullable:
                    code(f"{var} = None if {value} is None else {value}.encode()")
                    self.run.append(("h", f"-1 if {var} is None else len({var})"))
                    self.flush(writer)
                    with code.block(f"if {var} is not None:"):
                        code(f"{writer}({var})")
                else:
                    code(f"{var} = {self.value_of(f, value, nullable)}.encode()")
                    self.run.append(("h", f"len({var})"))
                    self.flush(writer)
                    code(f"{writer}({var})")
        elif f.kind in ("bytes", "records"):
            var = self.temp("b")
            if compact:
                self.flush(writer)
            code(f"{var} = {self.value_of(f, value, nullable)}")
            if compact:
                if nullable:
                    with code.block(f"if {var} is None:"):
                        code(f"{writer}(b'\\x00')")
                    with code.block("else:"):
                        code(f"{writer}(uvarint(len({var}) + 1))")
                        code(f"{writer}({var})")
                else:
                    code(f"{writer}(uvarint(len({var}) + 1))")
                    code(f"{writer}({var})")
            else:
                if nullable:
                    self.run.append(("i", f"-1 if {var} is None else len({var})"))
                    self.flush(writer)
                    with code.block(f"if {var} is not None:"):
                        code(f"{writer}({var})")
                else:
                    self.run.append(("i", f"len({var})"))
                    self.flush(writer)
                    code(f"{writer}({var})")
        elif f.kind == "struct":
            struct = ctx.struct_of(f)
            encoder = ctx.encoder(struct, version)
            if nullable:
                var = self.temp("t")
                code(f"{var} = {value}")
                if tagged:  # tagged nullable structs carry a varint marker: 0 null, 1 present
                    self.flush(writer)
                    code(f"{writer}(b'\\x00' if {var} is None else b'\\x01')")
                else:
                    self.run.append(("b", f"-1 if {var} is None else 1"))
                    self.flush(writer)
                with code.block(f"if {var} is not None:"):
                    code(f"{encoder}({var}, {writer})")
            else:
                self.flush(writer)
                code(f"{encoder}({self.value_of(f, value, nullable)}, {writer})")
        elif f.kind == "array":
            var = self.temp("a")
            if compact:
                self.flush(writer)
            code(f"{var} = {self.value_of(f, value, nullable)}")
            if compact:
                if nullable:
                    code(f"{writer}(b'\\x00' if {var} is None else uvarint(len({var}) + 1))")
                else:
                    code(f"{writer}(uvarint(len({var}) + 1))")
            else:
                self.run.append(
                    ("i", f"-1 if {var} is None else len({var})" if nullable else f"len({var})")
                )
                self.flush(writer)
            if nullable:
                with code.block(f"if {var} is not None:"):
                    self.write_elements(f, version, var, compact, writer)
            else:
                self.write_elements(f, version, var, compact, writer)
        else:
            raise AssertionError(f.kind)

    def write_elements(
        self, f: FieldSpec, version: int, var: str, compact: bool, writer: str
    ) -> None:
        ctx, code = self.ctx, self.code
        element = f.element
        assert element is not None
        if element in ARRAY_HELPER:
            code(f"{writer}(pack_{ARRAY_HELPER[element]}({var}))")
            return
        item = self.temp("e")
        with code.block(f"for {item} in {var}:"):
            if element == "struct" and is_leaf(ctx, ctx.struct_of(f), version):
                self.write_struct(ctx.struct_of(f), version, item, writer)  # inline: no call
            elif element == "struct":
                struct = ctx.struct_of(f)
                code(f"{ctx.encoder(struct, version)}({item}, {writer})")
            elif element == "uuid":
                code(f"{writer}({item}.bytes)")
            elif element == "string":
                if compact:
                    code(f"{writer}(compact_string({item}))")
                else:
                    encoded = self.temp("s")
                    code(f"{encoded} = {item}.encode()")
                    self.run.append(("h", f"len({encoded})"))
                    self.flush(writer)
                    code(f"{writer}({encoded})")
            elif element == "bytes":
                if compact:
                    code(f"{writer}(uvarint(len({item}) + 1))")
                else:
                    self.run.append(("i", f"len({item})"))
                    self.flush(writer)
                code(f"{writer}({item})")
            else:
                raise AssertionError(element)


class DecoderWriter(FunctionWriter):
    """Writes ``_dec_<Struct>_v<N>(data, pos)``, returning the object and the end offset.

    The object is made with ``object.__new__`` and its attributes are assigned as the fields
    are read (unpacking a run of fixed-size fields straight into them): that is about three
    times cheaper than calling the dataclass ``__init__``, and every slot is always assigned.
    """

    def __init__(self, ctx: Context, code: Code, formats: StructFormats, used: set[str]) -> None:
        super().__init__(ctx, code, formats, used)
        # (target, raw 16 bytes) of the UUIDs in the pending run, converted after it is read
        self.uuids: list[tuple[str, str]] = []

    def flush(self) -> None:
        if not self.run:
            return
        codes = [c for c, _ in self.run]
        targets = [t for _, t in self.run if t is not None]
        suffix = self.formats.name(codes)
        self.used.add(suffix)
        size = sum(SIZES[c] for c in codes)
        if len(targets) == 1:
            self.code(f"{targets[0]} = _unpack_{suffix}(data, pos)[0]")
        else:
            self.code(f"{', '.join(targets)} = _unpack_{suffix}(data, pos)")
        self.code(f"pos += {size}")
        for target, raw in self.uuids:
            self.code(f"{target} = UUID(bytes={raw})")
        self.run = []
        self.uuids = []

    def write_struct(self, struct: StructSpec, version: int) -> None:
        self.read_struct(struct, version, "o")
        self.code("return o, pos")

    def read_struct(self, struct: StructSpec, version: int, obj: str) -> None:
        """Read one *struct* into a new object named *obj*."""
        ctx, code = self.ctx, self.code
        code(f"{obj} = new_instance({ctx.alias(struct)})")
        tagged: list[FieldSpec] = []
        absent: list[FieldSpec] = []
        for f in struct.fields:
            if version not in f.versions:
                absent.append(f)
            elif version in f.tagged:
                tagged.append(f)
            else:
                target = f"{obj}.{f.attr}"
                self.read_field(f, version, target, version in f.nullable, tagged=False)
        self.flush()
        for f in absent:
            code(f"{obj}.{f.attr} = {ctx.default_literal(f)}")
        if ctx.flexible(version):
            self.read_tagged(tagged, version, obj)

    def read_tagged(self, tagged: list[FieldSpec], version: int, obj: str) -> None:
        ctx, code = self.ctx, self.code
        if not tagged:  # usually a zero byte: no tagged fields
            with code.block("if data[pos]:"):
                code("pos = skip_tagged_fields(data, pos)")
            with code.block("else:"):
                code("pos += 1")
            return
        for f in tagged:
            code(f"{obj}.{f.attr} = {ctx.default_literal(f)}")
        code("_nt, pos = read_uvarint(data, pos)")
        with code.block("for _ in range(_nt):"):
            code("_tag, pos, _end = tagged_field_end(data, pos)")
            keyword_ = "if"
            for f in sorted(tagged, key=lambda f: f.tag or 0):
                with code.block(f"{keyword_} _tag == {f.tag}:"):
                    code("_start = pos")
                    target = f"{obj}.{f.attr}"
                    self.read_field(f, version, target, version in f.nullable, tagged=True)
                    self.flush()
                    with code.block("if pos != _end:"):
                        code("raise tagged_value_mismatch(_tag, _start, _end, pos)")
                keyword_ = "elif"
            with code.block("else:"):
                code("pos = _end  # a tag this version does not know: skip it")

    def read_field(
        self, f: FieldSpec, version: int, target: str, nullable: bool, tagged: bool
    ) -> None:
        ctx, code = self.ctx, self.code
        compact = tagged or ctx.compact(f, version)
        nullable_ = "nullable_" if nullable else ""
        if f.kind in FORMATS:
            if f.kind == "uuid":
                raw = self.temp("u")
                self.run.append(("16s", raw))
                self.uuids.append((target, raw))
            else:
                self.run.append((FORMATS[f.kind], target))
        elif f.kind in ("string", "bytes", "records"):
            what = "string" if f.kind == "string" else "bytes"
            if compact:
                self.flush()
                code(f"{target}, pos = read_compact_{nullable_}{what}(data, pos)")
            else:
                length = self.temp("n")
                self.run.append(("h" if f.kind == "string" else "i", length))
                self.flush()
                code(f"{target}, pos = {nullable_}{what}_at(data, pos, {length})")
        elif f.kind == "struct":
            decoder = ctx.decoder(ctx.struct_of(f), version)
            if nullable:
                marker = self.temp("m")
                if tagged:  # tagged nullable structs carry a varint marker: 0 null, 1 present
                    self.flush()
                    code(f"{marker}, pos = read_uvarint(data, pos)")
                    test = f"{marker} == 0"
                else:  # an int8 marker: -1 null, 1 present
                    self.run.append(("b", marker))
                    self.flush()
                    test = f"{marker} < 0"
                with code.block(f"if {test}:"):
                    code(f"{target} = None")
                with code.block("else:"):
                    code(f"{target}, pos = {decoder}(data, pos)")
            else:
                self.flush()
                code(f"{target}, pos = {decoder}(data, pos)")
        elif f.kind == "array":
            self.read_array(f, version, target, nullable, compact)
        else:
            raise AssertionError(f.kind)

    def read_array(
        self, f: FieldSpec, version: int, target: str, nullable: bool, compact: bool
    ) -> None:
        code = self.code
        element = f.element
        assert element is not None
        nullable_ = "nullable_" if nullable else ""
        if element in ARRAY_HELPER:  # one helper call reads the count and all the elements
            helper = ARRAY_HELPER[element]
            if compact:
                self.flush()
                code(f"{target}, pos = read_compact_{nullable_}{helper}(data, pos)")
            else:
                count = self.temp("n")
                self.run.append(("i", count))
                self.flush()
                code(f"{target}, pos = read_{nullable_}{helper}_at(data, pos, {count})")
            return
        count = self.temp("n")
        if compact:
            self.flush()
            code(f"{count} = data[pos] - 1")
            with code.block(f"if {count} < 0x7F:"):
                code("pos += 1")
            with code.block("else:"):
                code(f"{count}, pos = read_uvarint(data, pos)")
                code(f"{count} -= 1")
        else:
            self.run.append(("i", count))
            self.flush()
        if nullable:
            with code.block(f"if {count} < 0:"):
                code(f"{target} = None")
            with code.block("else:"):
                self.read_elements(f, version, target, count, compact)
        else:
            with code.block(f"if {count} < 0:"):
                code(f"raise DecodeFailure(pos, {f'non-nullable array {f.attr} is null'!r})")
            self.read_elements(f, version, target, count, compact)

    def read_elements(
        self, f: FieldSpec, version: int, target: str, count: str, compact: bool
    ) -> None:
        ctx, code = self.ctx, self.code
        element = f.element
        assert element is not None
        code(f"check_count(data, pos, {count}, {element_min_size(ctx, f, version)})")
        items = self.temp("items")
        code(f"{items}: list[{ctx.element_type(f)}] = []")
        append = self.temp("append")
        code(f"{append} = {items}.append")
        with code.block(f"for _ in range({count}):"):
            item = self.temp("e")
            if element == "struct" and is_leaf(ctx, ctx.struct_of(f), version):
                # Structs without structs inside (Metadata's partitions, say) are read in
                # the loop itself: no call, no tuple per element.
                self.read_struct(ctx.struct_of(f), version, item)
            elif element == "struct":
                decoder = ctx.decoder(ctx.struct_of(f), version)
                code(f"{item}, pos = {decoder}(data, pos)")
            elif element == "uuid":
                code(f"{item}, pos = read_uuid(data, pos)")
            elif element in ("string", "bytes"):
                prefix = "read_compact_" if compact else "read_"
                code(f"{item}, pos = {prefix}{element}(data, pos)")
            else:
                raise AssertionError(element)
            code(f"{append}({item})")
        code(f"{target} = {items}")


# --------------------------------------------------------------------------- modules

#: Names the generated modules import from trio_brod.protocol._primitives (when they use them).
RUNTIME_NAMES = {
    "Buffer",
    "DecodeFailure",
    "InvalidValue",
    "Message",
    "Struct",
    "UUID_ZERO",
    "Writer",
    "new_instance",
    "bytes_at",
    "check_count",
    "compact_nullable_string",
    "compact_string",
    "not_null",
    "nullable_bytes_at",
    "nullable_string_at",
    "read_bytes",
    "read_compact_bytes",
    "read_compact_nullable_bytes",
    "read_compact_nullable_string",
    "read_compact_string",
    "read_string",
    "read_uuid",
    "read_uvarint",
    "skip_tagged_fields",
    "string_at",
    "tagged_field",
    "tagged_field_end",
    "tagged_value_mismatch",
    "uvarint",
}
for _helper in ARRAY_HELPER.values():
    RUNTIME_NAMES |= {
        f"pack_{_helper}",
        f"read_{_helper}_at",
        f"read_nullable_{_helper}_at",
        f"read_compact_{_helper}",
        f"read_compact_nullable_{_helper}",
    }


def write_class(ctx: Context, code: Code) -> None:
    message = ctx.message
    code("")
    code("")
    code("@dataclass(slots=True)")
    with code.block(f"class {message.name}(Message):"):
        code(f'"""{class_doc(message)}"""')
        code("")
        code(f"API_KEY: ClassVar[int] = {message.api_key}")
        code(f"NAME: ClassVar[str] = {message.name!r}")
        code(f"MIN_VERSION: ClassVar[int] = {message.valid.low}")
        code(f"MAX_VERSION: ClassVar[int] = {message.valid.high}")
        stable = message.valid.high - 1 if message.latest_unstable else message.valid.high
        code(f"MAX_STABLE_VERSION: ClassVar[int] = {stable}")
        first_flexible = next(
            (v for v in range(message.valid.low, message.valid.high + 1) if ctx.flexible(v)),
            None,
        )
        code(f"FLEXIBLE_VERSION: ClassVar[int | None] = {first_flexible}")
        partner = partner_name(message)
        if partner is not None:
            attr = "RESPONSE" if message.kind == "request" else "REQUEST"
            code(f"{attr}: ClassVar[type[{partner}]]")
        for struct in message.structs.values():
            code("")
            code("@dataclass(slots=True)")
            with code.block(f"class {struct.name}(Struct):"):
                code(f'"""{struct.name}, a structure in {message.name}."""')
                code("")
                write_fields(ctx, code, struct)
        code("")
        write_fields(ctx, code, message.top)


def class_doc(message: MessageSpec) -> str:
    versions = f"versions {message.valid.low}-{message.valid.high}"
    if message.kind in ("request", "response"):
        api = message.name.removesuffix("Request").removesuffix("Response")
        what = f"The {api} {message.kind} (API key {message.api_key}), {versions}."
    elif message.kind == "header":
        what = f"The {message.name[: -len('Header')].lower()} header, {versions}."
    else:
        what = f"The {message.name} data type, {versions}."
    return f"{what}\n\n    Generated from Kafka's {message.source}.\n    "


def partner_name(message: MessageSpec) -> str | None:
    if message.kind == "request":
        return message.name.removesuffix("Request") + "Response"
    if message.kind == "response":
        return message.name.removesuffix("Response") + "Request"
    return None


def write_fields(ctx: Context, code: Code, struct: StructSpec) -> None:
    if not struct.fields:
        code("pass")
        return
    for f in struct.fields:
        literal = ctx.default_literal(f)
        if f.kind == "array" and literal == "[]":
            default = "field(default_factory=list)"
        elif f.kind == "struct" and literal != "None":
            # Nested classes are not in scope in each other's bodies: look up lazily.
            default = f"field(default_factory=lambda: {ctx.class_ref(ctx.struct_of(f))}())"
        else:
            default = literal
        about = " ".join(f.about.split())
        for line in textwrap.wrap(about, width=92 - 4 * code.level):
            code(f"#: {line}")
        code(f"{f.attr}: {ctx.py_type(f)} = {default}")


def write_schema(ctx: Context, code: Code, struct: StructSpec) -> None:
    code(f"{ctx.class_ref(struct)}._SCHEMA = (")
    for f in struct.fields:
        args = [repr(f.attr), repr(f.wire_name), repr(f.kind), f.versions.range_literal()]
        if not f.nullable.empty:
            args.append(f"nullable={f.nullable.range_literal()}")
        if not f.tagged.empty:
            args.append(f"tagged={f.tagged.range_literal()}")
            args.append(f"tag={f.tag}")
        if f.ignorable:
            args.append("ignorable=True")
        if f.element is not None:
            args.append(f"element={f.element!r}")
        if f.struct_name is not None:
            args.append(f"struct={ctx.class_ref(ctx.struct_of(f))}")
        code(f"    FieldSchema({', '.join(args)}),")
    code(")")


def plan_functions(ctx: Context) -> list[tuple[StructSpec, list[list[int]]]]:
    """Group each struct's versions by wire layout; name the functions after each group's
    first version (filling ``ctx.functions``)."""
    memo: dict[Any, Any] = {}
    reachable = reachable_versions(ctx)
    plan = []
    for struct in [ctx.message.top, *ctx.message.structs.values()]:
        groups: dict[Any, list[int]] = {}
        for version in reachable.get(struct.name, []):
            groups.setdefault(layout_key(ctx, struct, version, memo), []).append(version)
        for versions in groups.values():
            for version in versions:
                ctx.functions[(struct.name, version)] = f"{ctx.short(struct)}_v{versions[0]}"
        plan.append((struct, list(groups.values())))
    return plan


def generate_module(module: str, specs: list[MessageSpec]) -> str:
    # Struct names are unique within one schema file, not across the request and response.
    names: dict[str, int] = {}
    for spec in specs:
        for struct_name in spec.structs:
            names[struct_name] = names.get(struct_name, 0) + 1
    contexts = [Context(spec, names) for spec in specs]
    plans = [(ctx, plan_functions(ctx)) for ctx in contexts]
    formats = StructFormats()
    used_pack: set[str] = set()
    used_unpack: set[str] = set()

    classes = Code()
    for ctx in contexts:
        write_class(ctx, classes)

    links = Code()
    for ctx in contexts:
        message = ctx.message
        partner = partner_name(message)
        if partner is not None:
            attr = "RESPONSE" if message.kind == "request" else "REQUEST"
            links(f"{message.name}.{attr} = {partner}")
    links("")
    links("# Short names for the nested classes, and their default instances (never mutated).")
    for ctx in contexts:
        for struct in ctx.message.structs.values():
            links(f"{ctx.alias(struct)} = {ctx.class_ref(struct)}")
            links(f"_DEFAULT_{ctx.short(struct)} = {ctx.alias(struct)}()")
        links(f"{ctx.alias(ctx.message.top)} = {ctx.message.name}")

    body = Code()
    for ctx, plan in plans:
        for struct, groups in plan:
            for versions in groups:
                version = versions[0]
                listed = ", ".join(str(v) for v in versions)
                plural = "s" if len(versions) > 1 else ""
                ref = ctx.class_ref(struct)
                body("")
                body("")
                with body.block(
                    f"def {ctx.encoder(struct, version)}(o: {ref}, w: Writer) -> None:"
                ):
                    body(f'"""Encode a {struct.name}, version{plural} {listed}."""')
                    EncoderWriter(ctx, body, formats, used_pack).write_struct(struct, version)
                body("")
                body("")
                signature = f"(data: Buffer, pos: int) -> tuple[{ref}, int]:"
                with body.block(f"def {ctx.decoder(struct, version)}{signature}"):
                    body(f'"""Decode a {struct.name}, version{plural} {listed}."""')
                    DecoderWriter(ctx, body, formats, used_unpack).write_struct(struct, version)

    tables = Code()
    for ctx in contexts:
        message = ctx.message
        top = message.top
        encoders, decoders = [], []
        for version in range(message.valid.high + 1):
            if version < message.valid.low:
                encoders.append("None")
                decoders.append("None")
            else:
                encoders.append(ctx.encoder(top, version))
                decoders.append(ctx.decoder(top, version))
        tables("")
        tables(f"{message.name}._ENCODERS = (")
        for name in encoders:
            tables(f"    {name},")
        tables(")")
        tables(f"{message.name}._DECODERS = (")
        for name in decoders:
            tables(f"    {name},")
        tables(")")
        for struct in [top, *message.structs.values()]:
            write_schema(ctx, tables, struct)

    struct_code = Code()
    formats.emit(struct_code, used_pack, used_unpack)

    text_so_far = "\n".join(classes.lines + body.lines + tables.lines)
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text_so_far))
    runtime = sorted(RUNTIME_NAMES & words)
    lines = [
        f"# Generated by `{COMMAND}` from Apache Kafka's {' and '.join(s.source for s in specs)}.",
        "# Do not edit: change the generator and run it again.",
        f'"""{module_doc(specs)}"""',
        "",
        "from __future__ import annotations",
        "",
        "import struct as _struct",
        "from dataclasses import dataclass, field",
        "from typing import ClassVar",
        "from uuid import UUID",
        "",
        "from trio_brod.protocol._primitives import (",
        "    FieldSchema,",
        *(f"    {name}," for name in runtime),
        ")",
        "",
        f"__all__ = [{', '.join(repr(s.name) for s in specs)}]",
        "",
        *struct_code.lines,
        *classes.lines,
        "",
        "",
        *links.lines,
        "",
        "",
        "# " + "-" * 68 + " encode / decode",
        *body.lines,
        "",
        "",
        "# " + "-" * 68 + " version tables",
        *tables.lines,
    ]
    text = "\n".join(lines) + "\n"
    return re.sub(r"\n{4,}", "\n\n\n", text)


def module_doc(specs: list[MessageSpec]) -> str:
    names = " and ".join(s.name for s in specs)
    if specs[0].kind in ("request", "response"):
        api = specs[0].name.removesuffix("Request").removesuffix("Response")
        return f"Kafka's {api} API (key {specs[0].api_key}): {names}."
    return f"Kafka's {names}."


def generate_init(modules: list[tuple[str, list[MessageSpec]]]) -> str:
    lines = [
        f"# Generated by `{COMMAND}`. Do not edit: change the generator and run it again.",
        '"""The generated Kafka message classes, and the request and response classes by API key.',
        "",
        "See :mod:`trio_brod.protocol` for how to use them.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
    ]
    exported: list[str] = []
    for module, specs in modules:
        names = [s.name for s in specs]
        exported.extend(names)
        lines.append(f"from trio_brod.protocol._gen.{module} import {', '.join(names)}")
    lines.append("from trio_brod.protocol._primitives import Message")
    lines.append("")
    lines.append("__all__ = [")
    lines.extend(f"    {name!r}," for name in sorted([*exported, "REQUESTS", "RESPONSES"]))
    lines.append("]")
    lines.append("")
    for kind, table in (("request", "REQUESTS"), ("response", "RESPONSES")):
        entries = sorted(
            (s.api_key, s.name) for _, specs in modules for s in specs if s.kind == kind
        )
        lines.append(f"#: The {kind} classes by API key.")
        lines.append(f"{table}: dict[int, type[Message]] = {{")
        lines.extend(f"    {key}: {name}," for key, name in entries)
        lines.append("}")
    return "\n".join(lines) + "\n"


def plan_modules(schemas: Path) -> list[tuple[str, list[MessageSpec]]]:
    modules: list[tuple[str, list[MessageSpec]]] = []
    for api in APIS:
        specs = [parse_message(schemas / f"{api}{kind}.json") for kind in ("Request", "Response")]
        modules.append((snake_case(api), specs))
    for module, names in OTHER_MODULES:
        modules.append((module, [parse_message(schemas / f"{name}.json") for name in names]))
    return modules


def generate(schemas: Path, out: Path) -> list[Path]:
    """Write every generated module into *out*; return the paths written."""
    modules = plan_modules(schemas)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for module, specs in modules:
        path = out / f"{module}.py"
        path.write_text(generate_module(module, specs), encoding="utf-8")
        written.append(path)
    init = out / "__init__.py"
    init.write_text(generate_init(modules), encoding="utf-8")
    written.append(init)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate trio_brod/protocol/_gen.")
    parser.add_argument("--schemas", type=Path, default=DEFAULT_SCHEMAS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not args.schemas.is_dir():
        print(f"no schema directory at {args.schemas}", file=sys.stderr)
        return 1
    written = generate(args.schemas, args.out)
    print(f"wrote {len(written)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
