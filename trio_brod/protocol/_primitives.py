"""Runtime support for the generated message codecs in :mod:`trio_brod.protocol._gen`.

The generated modules do the field-by-field work, specialised per message version; this module
holds what they share:

* :class:`Struct` and :class:`Message`, the base classes of every generated class, with the
  public ``encode`` / ``decode`` / ``decode_from`` methods and their error handling;
* :class:`FieldSchema`, the per-field description the generator emits as ``_SCHEMA`` on every
  class (used to explain encoding failures, and by the tests to build values);
* small readers and writers for the variable-length wire types: unsigned varints, compact and
  classic strings and bytes, arrays of primitives, tagged-field sections.

Error handling is split so that the happy path pays nothing for it:

* Decoding raises :class:`DecodeFailure` (a private exception carrying a byte offset) from the
  explicit checks, and lets ``struct.error`` / ``IndexError`` happen on truncated input;
  :meth:`Message.decode_from` turns all of these into one
  :class:`~trio_brod.protocol.errors.DecodeError` that names the message, version and offset.
* Encoding runs straight through, relying on ``struct`` and ``str.encode`` to reject bad values.
  When anything fails, :func:`explain_encode_failure` walks the message against its schema to
  find the offending field and raises an :class:`~trio_brod.protocol.errors.EncodeError` that
  names it.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Self, TypeVar

from trio_brod.protocol.errors import DecodeError, EncodeError

#: What decoders accept. ``bytearray`` is wrapped in a ``memoryview`` before decoding starts,
#: so that slicing does not copy twice.
Buffer = bytes | bytearray | memoryview
#: The encoders' output: ``list.append`` of the list that is joined at the end.
Writer = Callable[[bytes], object]

#: The all-zero UUID, Kafka's default (and "no topic id") value. UUIDs are immutable.
UUID_ZERO = uuid.UUID(int=0)

_T = TypeVar("_T")

if TYPE_CHECKING:

    def new_instance(cls: type[_T]) -> _T:
        """Make an instance without calling ``__init__`` (the decoders then assign every
        field): about three times faster than a dataclass ``__init__`` call."""

else:
    new_instance = object.__new__

_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
}
#: Kafka refuses to write or read strings longer than this, compact or not.
MAX_STRING_LENGTH = 0x7FFF
#: Bytes fields and arrays carry an int32 length (or a varint of length + 1).
MAX_BYTES_LENGTH = 2**31 - 1


class DecodeFailure(Exception):
    """Raised inside the decoders; :meth:`Message.decode_from` turns it into a DecodeError."""

    def __init__(self, offset: int, what: str) -> None:
        super().__init__(offset, what)
        self.offset = offset
        self.what = what


class InvalidValue(Exception):
    """Raised inside the encoders for a value they cannot write (a too long string, None in a
    non-nullable version, a non-default value in a field the version lacks).

    :func:`explain_encode_failure` then finds the field and writes the real message.
    """


# --------------------------------------------------------------------------- the schema tables


@dataclass(frozen=True, slots=True)
class FieldSchema:
    """One field of a generated class, as the JSON schema describes it.

    The generator emits a tuple of these, in wire order, as ``_SCHEMA`` on every message and
    struct class. Version sets are ``range`` objects, so ``version in field.versions`` reads
    naturally; open-ended ranges stop at 32767.
    """

    #: The Python attribute name (snake_case).
    name: str
    #: The name in Kafka's schema (CamelCase), for messages that quote the schema.
    wire_name: str
    #: "bool", "int8", "int16", "uint16", "int32", "uint32", "int64", "float64", "uuid",
    #: "string", "bytes", "records", "struct" or "array".
    kind: str
    #: Versions in which the field exists.
    versions: range
    #: Versions in which the field may be None.
    nullable: range = range(0)
    #: Versions in which the field is written as a tagged field (``tag`` is its tag).
    tagged: range = range(0)
    tag: int | None = None
    #: True if the field may be silently dropped when the version lacks it.
    ignorable: bool = False
    #: For arrays: the element type, one of the primitive names above or "struct".
    element: str | None = None
    #: For structs and arrays of structs: the generated class.
    struct: type[Struct] | None = None


class Struct:
    """Base class of every generated structure (messages and the structures nested in them).

    Subclasses are ``@dataclass(slots=True)`` classes whose fields are the schema's fields.
    """

    __slots__ = ()

    #: The fields, in wire order (see :class:`FieldSchema`).
    _SCHEMA: ClassVar[tuple[FieldSchema, ...]]


_Encoder = Callable[[Any, Writer], None]
_Decoder = Callable[[Any, int], tuple[Any, int]]


class Message(Struct):
    """Base class of the generated top-level classes: requests, responses, headers, data types.

    Every subclass knows all versions of its message; the version is a parameter of
    :meth:`encode` and :meth:`decode`, not part of the object.
    """

    __slots__ = ()

    #: The API key (-1 for headers and data types such as ConsumerProtocolAssignment).
    API_KEY: ClassVar[int]
    #: The message name as in Kafka's schema, e.g. ``"ProduceRequest"``.
    NAME: ClassVar[str]
    #: The lowest and highest versions this class can encode and decode.
    MIN_VERSION: ClassVar[int]
    MAX_VERSION: ClassVar[int]
    #: MAX_VERSION, or the version below it when Kafka's schema marks the highest version as
    #: unstable (still being designed; brokers only offer it when configured to). Negotiate
    #: with this one unless you mean to test unstable versions.
    MAX_STABLE_VERSION: ClassVar[int]
    #: The first flexible version (compact strings, tagged fields), or None if there is none.
    FLEXIBLE_VERSION: ClassVar[int | None]

    # One encoder and one decoder per version (None below MIN_VERSION), set by the generator.
    _ENCODERS: ClassVar[tuple[_Encoder | None, ...]]
    _DECODERS: ClassVar[tuple[_Decoder | None, ...]]

    def encode(self, version: int) -> bytes:
        """Encode the message body (no header, no size prefix) in the given version.

        Raises:
            EncodeError: The version is not supported, or a field's value cannot be written in
                it (out of range, too long, None where the version does not allow null, or a
                non-default value in a non-ignorable field the version does not have).
        """
        out: list[bytes] = []
        self.encode_into(version, out)
        return join_encoded(self, version, out)

    def encode_into(self, version: int, out: list[bytes]) -> None:
        """Append the encoded body to *out* as parts, to be joined by :func:`join_encoded`.

        For framing code (:func:`~trio_brod.protocol.encode_request`): it puts the size
        prefix and the header in front of the parts and joins everything once, so that a
        large records blob is copied once, into the final frame.

        Raises:
            EncodeError: As :meth:`encode`, except for a bytes field holding something that
                is not bytes (a ``str``, say): that only shows up when joining.
        """
        cls = type(self)
        if not cls.MIN_VERSION <= version <= cls.MAX_VERSION:
            raise EncodeError(
                f"cannot encode {cls.NAME} v{version}: supported versions are "
                f"{cls.MIN_VERSION}-{cls.MAX_VERSION}"
            )
        encoder = cls._ENCODERS[version]
        assert encoder is not None
        try:
            encoder(self, out.append)
        except (
            InvalidValue,
            struct.error,
            TypeError,
            AttributeError,
            ValueError,
            OverflowError,
        ) as exc:
            raise explain_encode_failure(self, version, exc) from None

    @classmethod
    def decode(cls, data: Buffer, version: int) -> Self:
        """Decode a message body that fills *data* exactly.

        Raises:
            DecodeError: The bytes are not a valid encoding of this message in this version, or
                bytes are left over after it.
        """
        message, end = cls.decode_from(data, 0, version)
        if end != len(data):
            raise DecodeError(
                f"{cls.NAME} v{version}: {len(data) - end} unexpected bytes after the message "
                f"(it ends at byte {end} of {len(data)})"
            )
        return message

    @classmethod
    def decode_from(cls, data: Buffer, offset: int, version: int) -> tuple[Self, int]:
        """Decode the message that starts at *offset*; return it and the offset after it.

        Bytes after the message are left alone, which is what framing code and readers of
        newer versions (ConsumerProtocolSubscription) want.

        Raises:
            DecodeError: The bytes are not a valid encoding of this message in this version.
        """
        if not cls.MIN_VERSION <= version <= cls.MAX_VERSION:
            raise DecodeError(
                f"cannot decode {cls.NAME} v{version}: supported versions are "
                f"{cls.MIN_VERSION}-{cls.MAX_VERSION}"
            )
        decoder = cls._DECODERS[version]
        assert decoder is not None
        if type(data) is not bytes:
            data = _as_byte_buffer(data)
        if not 0 <= offset <= len(data):
            raise DecodeError(f"{cls.NAME} v{version}: offset {offset} is outside the input")
        try:
            result: tuple[Self, int] = decoder(data, offset)
        except DecodeFailure as exc:
            raise DecodeError(f"{cls.NAME} v{version}: at byte {exc.offset}: {exc.what}") from None
        except struct.error as exc:  # its message gives the offset
            raise DecodeError(f"{cls.NAME} v{version}: input is truncated ({exc})") from None
        except IndexError:
            # Only single-byte reads (varints, counts, markers) index the buffer, and every
            # offset is checked before it is used, so this happened at the very end.
            raise DecodeError(
                f"{cls.NAME} v{version}: at byte {len(data)}: input is truncated (the message "
                f"needs more bytes)"
            ) from None
        except (ValueError, OverflowError) as exc:
            raise DecodeError(f"{cls.NAME} v{version}: malformed input ({exc})") from None
        return result


def join_encoded(message: Message, version: int, parts: list[bytes]) -> bytes:
    """Join the parts :meth:`Message.encode_into` wrote for *message* (and whatever the
    caller put around them) into one bytes object.

    Raises:
        EncodeError: A bytes field of *message* holds something that is not bytes (a
            ``str``, say): that only shows up here.
    """
    try:
        return b"".join(parts)
    except TypeError as exc:
        raise explain_encode_failure(message, version, exc) from None


def _as_byte_buffer(data: Buffer) -> bytes | memoryview:
    """Return *data* as something the decoders can index and slice byte by byte, cheaply."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray):
        # Slicing a bytearray copies, and bytes() would copy again; a memoryview slice does not.
        return memoryview(data)
    if isinstance(data, memoryview):
        if data.format != "B" or data.ndim != 1:
            return data.cast("B")
        return data
    raise TypeError(f"expected bytes, bytearray or memoryview, not {type(data).__name__}")


# --------------------------------------------------------------------------- writing

_ONE_BYTE_VARINTS = tuple(bytes((i,)) for i in range(0x80))


def uvarint(value: int) -> bytes:
    """Encode an unsigned 32-bit varint (7 bits per byte, low bits first)."""
    if 0 <= value < 0x80:
        return _ONE_BYTE_VARINTS[value]
    if not 0 <= value <= 0xFFFFFFFF:
        raise InvalidValue(f"{value} does not fit an unsigned 32-bit varint")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def compact_string(value: str) -> bytes:
    """A COMPACT_STRING: varint(length + 1) and the UTF-8 bytes."""
    encoded = value.encode()
    length = len(encoded)
    if length < 0x7F:
        return _ONE_BYTE_VARINTS[length + 1] + encoded
    if length > MAX_STRING_LENGTH:
        raise InvalidValue(f"string of {length} bytes is longer than {MAX_STRING_LENGTH}")
    return uvarint(length + 1) + encoded


def compact_nullable_string(value: str | None) -> bytes:
    """A COMPACT_NULLABLE_STRING: a zero byte for None, else as :func:`compact_string`."""
    if value is None:
        return b"\x00"
    return compact_string(value)


def not_null(value: _T | None) -> _T:
    """Return *value*, refusing None (for fields that are nullable in other versions only)."""
    if value is None:
        raise InvalidValue("None in a version where the field is not nullable")
    return value


def tagged_field(tag: int, parts: list[bytes]) -> bytes:
    """One entry of a tagged-field section: varint tag, varint size, the encoded value."""
    body = b"".join(parts)
    return uvarint(tag) + uvarint(len(body)) + body


def _array_packer(code: str) -> Callable[[Sequence[Any]], bytes]:
    """Build a function that packs a sequence of one primitive type, big-endian, in one call."""
    packers: dict[int, Callable[..., bytes]] = {}

    def pack(values: Sequence[Any]) -> bytes:
        count = len(values)
        packer = packers.get(count)
        if packer is None:
            packer = struct.Struct(f">{count}{code}").pack
            if count <= 256:  # keep the cache small; larger arrays are rare
                packers[count] = packer
        return packer(*values)

    return pack


pack_bools = _array_packer("?")
pack_int8s = _array_packer("b")
pack_int16s = _array_packer("h")
pack_uint16s = _array_packer("H")
pack_int32s = _array_packer("i")
pack_uint32s = _array_packer("I")
pack_int64s = _array_packer("q")
pack_float64s = _array_packer("d")


# --------------------------------------------------------------------------- reading


def read_uvarint(data: Buffer, pos: int) -> tuple[int, int]:
    """Read an unsigned 32-bit varint at *pos*; return it and the offset after it."""
    start = pos
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    value = byte & 0x7F
    for shift in (7, 14, 21, 28):
        pos += 1
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value > 0xFFFFFFFF:
                raise DecodeFailure(start, f"unsigned varint {value} does not fit 32 bits")
            return value, pos + 1
    raise DecodeFailure(start, "unsigned varint is longer than 5 bytes")


def _read_length(data: Buffer, pos: int) -> tuple[int, int]:
    """Read a compact length: varint(length + 1); -1 means null."""
    length = data[pos]
    if length < 0x80:
        return length - 1, pos + 1
    length, pos = read_uvarint(data, pos)
    return length - 1, pos


def skip_tagged_fields(data: Buffer, pos: int) -> int:
    """Skip a tagged-field section (its count, then each tag, size and value) at *pos*;
    return the offset after it."""
    count, pos = read_uvarint(data, pos)
    size_of_data = len(data)
    for _ in range(count):
        tag, pos = read_uvarint(data, pos)
        size, pos = read_uvarint(data, pos)
        pos += size
        if pos > size_of_data:
            raise DecodeFailure(
                pos - size, f"tagged field {tag} of {size} bytes runs past the end of the input"
            )
    return pos


def tagged_field_end(data: Buffer, pos: int) -> tuple[int, int, int]:
    """Read a tagged field's tag and size; return (tag, offset of the value, offset after)."""
    tag, pos = read_uvarint(data, pos)
    size, pos = read_uvarint(data, pos)
    end = pos + size
    if end > len(data):
        raise DecodeFailure(
            pos, f"tagged field {tag} of {size} bytes runs past the end of the input"
        )
    return tag, pos, end


def tagged_value_mismatch(tag: int, start: int, end: int, pos: int) -> DecodeFailure:
    """The error for a known tagged field whose value does not fill its declared size."""
    return DecodeFailure(
        start, f"tagged field {tag} declares {end - start} bytes but its value takes {pos - start}"
    )


def _string(data: Buffer, pos: int, length: int) -> tuple[str, int]:
    end = pos + length
    if end > len(data):
        raise DecodeFailure(
            pos, f"string of {length} bytes runs past the end of the input ({len(data)} bytes)"
        )
    try:
        return str(data[pos:end], "utf-8"), end
    except UnicodeDecodeError as exc:
        raise DecodeFailure(pos + exc.start, f"string is not valid UTF-8 ({exc.reason})") from None


def _bytes(data: Buffer, pos: int, length: int) -> tuple[bytes, int]:
    end = pos + length
    if end > len(data):
        raise DecodeFailure(
            pos, f"bytes field of {length} bytes runs past the end of the input ({len(data)})"
        )
    return bytes(data[pos:end]), end


def string_at(data: Buffer, pos: int, length: int) -> tuple[str, int]:
    """Read a non-nullable STRING whose int16 length was already read."""
    if length < 0:
        raise DecodeFailure(pos, f"non-nullable string has length {length}")
    return _string(data, pos, length)


def nullable_string_at(data: Buffer, pos: int, length: int) -> tuple[str | None, int]:
    """Read a NULLABLE_STRING whose int16 length was already read (negative: None)."""
    if length < 0:
        return None, pos
    return _string(data, pos, length)


_unpack_int16 = struct.Struct(">h").unpack_from
_unpack_int32 = struct.Struct(">i").unpack_from


def read_string(data: Buffer, pos: int) -> tuple[str, int]:
    """Read a STRING: int16 length and UTF-8 bytes."""
    return string_at(data, pos + 2, _unpack_int16(data, pos)[0])


def read_bytes(data: Buffer, pos: int) -> tuple[bytes, int]:
    """Read BYTES: int32 length and the bytes."""
    return bytes_at(data, pos + 4, _unpack_int32(data, pos)[0])


def read_compact_string(data: Buffer, pos: int) -> tuple[str, int]:
    """Read a COMPACT_STRING."""
    length, pos = _read_length(data, pos)
    if length < 0:
        raise DecodeFailure(pos, "non-nullable compact string is null")
    if length > MAX_STRING_LENGTH:
        raise DecodeFailure(pos, f"string length {length} is over {MAX_STRING_LENGTH}")
    return _string(data, pos, length)


def read_compact_nullable_string(data: Buffer, pos: int) -> tuple[str | None, int]:
    """Read a COMPACT_NULLABLE_STRING."""
    length, pos = _read_length(data, pos)
    if length < 0:
        return None, pos
    if length > MAX_STRING_LENGTH:
        raise DecodeFailure(pos, f"string length {length} is over {MAX_STRING_LENGTH}")
    return _string(data, pos, length)


def bytes_at(data: Buffer, pos: int, length: int) -> tuple[bytes, int]:
    """Read non-nullable BYTES whose int32 length was already read."""
    if length < 0:
        raise DecodeFailure(pos, f"non-nullable bytes field has length {length}")
    return _bytes(data, pos, length)


def nullable_bytes_at(data: Buffer, pos: int, length: int) -> tuple[bytes | None, int]:
    """Read NULLABLE_BYTES (or RECORDS) whose int32 length was already read."""
    if length < 0:
        return None, pos
    return _bytes(data, pos, length)


def read_compact_bytes(data: Buffer, pos: int) -> tuple[bytes, int]:
    """Read COMPACT_BYTES."""
    length, pos = _read_length(data, pos)
    if length < 0:
        raise DecodeFailure(pos, "non-nullable compact bytes field is null")
    return _bytes(data, pos, length)


def read_compact_nullable_bytes(data: Buffer, pos: int) -> tuple[bytes | None, int]:
    """Read COMPACT_NULLABLE_BYTES (or compact RECORDS)."""
    length, pos = _read_length(data, pos)
    if length < 0:
        return None, pos
    return _bytes(data, pos, length)


def check_count(data: Buffer, pos: int, count: int, min_size: int) -> None:
    """Refuse an array count that the remaining bytes cannot hold (each element takes at least
    *min_size* bytes), before anything is allocated for it. A zero *min_size* (elements that
    may be empty) is treated as one byte, as Kafka's Java client does."""
    if count * (min_size or 1) > len(data) - pos:
        raise DecodeFailure(
            pos,
            f"array of {count} elements (at least {min_size} bytes each) is longer than the "
            f"{len(data) - pos} bytes left",
        )


class _ArrayReaders(NamedTuple):
    """The four readers of arrays of one primitive type."""

    #: (data, pos, count) -> (list, end); count < 0 is an error.
    at: Callable[[Buffer, int, int], tuple[list[Any], int]]
    #: (data, pos, count) -> (list or None, end); count < 0 is None.
    nullable_at: Callable[[Buffer, int, int], tuple[list[Any] | None, int]]
    #: (data, pos) -> (list, end), reading the compact count first.
    compact: Callable[[Buffer, int], tuple[list[Any], int]]
    #: (data, pos) -> (list or None, end), reading the compact count first.
    compact_nullable: Callable[[Buffer, int], tuple[list[Any] | None, int]]


def _array_readers(code: str) -> _ArrayReaders:
    """Build readers for arrays of a fixed-size primitive: one ``struct`` call per array."""
    size = struct.calcsize(f">{code}")
    # Precompiled unpackers for the common small counts; larger ones are built on demand.
    small = [struct.Struct(f">{count}{code}").unpack_from for count in range(33)]

    def at(data: Buffer, pos: int, count: int) -> tuple[list[Any], int]:
        if count < 0:
            raise DecodeFailure(pos, f"non-nullable array has length {count}")
        end = pos + size * count
        if end > len(data):
            raise DecodeFailure(
                pos, f"array of {count} x {size} bytes runs past the end of the input"
            )
        if count <= 32:
            return list(small[count](data, pos)), end
        return list(struct.unpack_from(f">{count}{code}", data, pos)), end

    def nullable_at(data: Buffer, pos: int, count: int) -> tuple[list[Any] | None, int]:
        if count < 0:
            return None, pos
        return at(data, pos, count)

    def compact(data: Buffer, pos: int) -> tuple[list[Any], int]:
        # The hot path of e.g. Metadata's replica lists: a one-byte count, a few elements,
        # all in this one call.
        count = data[pos] - 1
        if count < 0x7F:
            pos += 1
        else:
            count, pos = read_uvarint(data, pos)
            count -= 1
        if count < 0 or count > 32:
            return at(data, pos, count)
        end = pos + size * count
        if end > len(data):
            raise DecodeFailure(
                pos, f"array of {count} x {size} bytes runs past the end of the input"
            )
        return list(small[count](data, pos)), end

    def compact_nullable(data: Buffer, pos: int) -> tuple[list[Any] | None, int]:
        count, pos = _read_length(data, pos)
        if count < 0:
            return None, pos
        return at(data, pos, count)

    return _ArrayReaders(at, nullable_at, compact, compact_nullable)


(
    read_bools_at,
    read_nullable_bools_at,
    read_compact_bools,
    read_compact_nullable_bools,
) = _array_readers("?")
(
    read_int8s_at,
    read_nullable_int8s_at,
    read_compact_int8s,
    read_compact_nullable_int8s,
) = _array_readers("b")
(
    read_int16s_at,
    read_nullable_int16s_at,
    read_compact_int16s,
    read_compact_nullable_int16s,
) = _array_readers("h")
(
    read_uint16s_at,
    read_nullable_uint16s_at,
    read_compact_uint16s,
    read_compact_nullable_uint16s,
) = _array_readers("H")
(
    read_int32s_at,
    read_nullable_int32s_at,
    read_compact_int32s,
    read_compact_nullable_int32s,
) = _array_readers("i")
(
    read_uint32s_at,
    read_nullable_uint32s_at,
    read_compact_uint32s,
    read_compact_nullable_uint32s,
) = _array_readers("I")
(
    read_int64s_at,
    read_nullable_int64s_at,
    read_compact_int64s,
    read_compact_nullable_int64s,
) = _array_readers("q")
(
    read_float64s_at,
    read_nullable_float64s_at,
    read_compact_float64s,
    read_compact_nullable_float64s,
) = _array_readers("d")


def read_uuid(data: Buffer, pos: int) -> tuple[uuid.UUID, int]:
    """Read one UUID (16 bytes, big-endian)."""
    end = pos + 16
    if end > len(data):
        raise DecodeFailure(pos, "UUID runs past the end of the input")
    return uuid.UUID(bytes=bytes(data[pos:end])), end


# --------------------------------------------------------------------------- explaining


_DEFAULT_INSTANCES: dict[type[Struct], Struct] = {}


def _default_instance(cls: type[Struct]) -> Struct:
    """An instance with every field at its default (only read, never handed out)."""
    instance = _DEFAULT_INSTANCES.get(cls)
    if instance is None:
        instance = _DEFAULT_INSTANCES[cls] = cls()
    return instance


def explain_encode_failure(message: Message, version: int, exc: BaseException) -> EncodeError:
    """Build the EncodeError for a failed encode, naming the field at fault.

    The encoders do no checking of their own beyond what ``struct`` and ``str.encode`` do, so
    when one fails this walks the message against its ``_SCHEMA`` to say which field was bad.
    """
    name = f"{message.NAME} v{version}"
    problem = _find_problem(message, version, message.NAME)
    if problem is None:  # pragma: no cover - the walk is meant to find every failure
        problem = f"{type(exc).__name__}: {exc}"
    return EncodeError(f"cannot encode {name}: {problem}")


def _find_problem(obj: Struct, version: int, path: str) -> str | None:
    cls = type(obj)
    for field in cls._SCHEMA:
        where = f"{path}.{field.name}"
        try:
            value = getattr(obj, field.name)
        except AttributeError:
            return f"{where} is not set"
        if version not in field.versions:
            if not field.ignorable:
                default = getattr(_default_instance(cls), field.name)
                if not _same(value, default):
                    return (
                        f"{where} is {_short(value)}, but version {version} does not have this "
                        f"field and it is not ignorable (leave it at its default, "
                        f"{_short(default)})"
                    )
            continue
        problem = _check_value(field.kind, field, value, version, where, version in field.nullable)
        if problem is not None:
            return problem
    return None


def _same(value: object, default: object) -> bool:
    if isinstance(default, list | bytes):
        try:
            return value is not None and len(value) == len(default) == 0  # type: ignore[arg-type]
        except TypeError:
            return False
    try:
        return bool(value == default)
    except Exception:  # an exotic __eq__ only makes the message vaguer
        return False


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_value(
    kind: str, field: FieldSchema, value: object, version: int, where: str, nullable: bool
) -> str | None:
    if value is None:
        if nullable or kind in ("bool",):
            return None
        return f"{where} is None, but the field is not nullable in version {version}"
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        if not isinstance(value, int):
            return f"{where} must be an int ({kind}), not {type(value).__name__}"
        if not low <= value <= high:
            return f"{where} = {value} is out of range for {kind} ({low}..{high})"
        return None
    if kind == "float64":
        if not isinstance(value, int | float):
            return f"{where} must be a float, not {type(value).__name__}"
        return None
    if kind == "uuid":
        if not isinstance(value, uuid.UUID):
            return f"{where} must be a uuid.UUID, not {type(value).__name__}"
        return None
    if kind == "string":
        if not isinstance(value, str):
            return f"{where} must be a str, not {type(value).__name__}"
        try:
            encoded = value.encode()
        except UnicodeEncodeError as exc:
            return f"{where} cannot be encoded as UTF-8 ({exc.reason})"
        if len(encoded) > MAX_STRING_LENGTH:
            return f"{where} is {len(encoded)} bytes long, over Kafka's limit {MAX_STRING_LENGTH}"
        return None
    if kind in ("bytes", "records"):
        if not isinstance(value, bytes | bytearray | memoryview):
            return f"{where} must be bytes, not {type(value).__name__}"
        if len(value) > MAX_BYTES_LENGTH:
            return f"{where} is {len(value)} bytes long, over the limit {MAX_BYTES_LENGTH}"
        return None
    if kind == "struct":
        assert field.struct is not None
        if not isinstance(value, field.struct):
            return f"{where} must be a {field.struct.__qualname__}, not {type(value).__qualname__}"
        return _find_problem(value, version, where)
    if kind == "array":
        assert field.element is not None
        if not isinstance(value, list | tuple):
            return f"{where} must be a list, not {type(value).__name__}"
        if len(value) > MAX_BYTES_LENGTH:
            return f"{where} has {len(value)} elements, over the limit {MAX_BYTES_LENGTH}"
        for index, element in enumerate(value):
            problem = _check_value(
                field.element, field, element, version, f"{where}[{index}]", False
            )
            if problem is not None:
                return problem
        return None
    return None  # bool: anything is true or false
