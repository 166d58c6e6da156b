"""Which record loops run: the C ones of ``_speedups``, or the pure-Python reference.

Part of :mod:`trio_brod.protocol.records` (see its docstring, "Why the code looks like
this"). The choice is made once, at import: the C loops are used when the extension
``trio_brod.protocol._speedups`` was built and imports, unless ``TRIO_BROD_PURE_PYTHON`` is
set (to anything but ``0``).

With the C loops, :class:`Record`'s fields (and those of its subclasses) also become slots
that the interpreter reads inline, instead of NamedTuple's descriptors, which it must call
(``record_fields`` in ``_speedups.c``): a consumer reads a field or two of every record.

The hot paths do not look the choice up here on every call: the modules that hold them
(``_records_batch`` for decoding, ``_records_encode`` for encoding) bind
:data:`c_decode_records` and :data:`c_encode_records` to globals of their own at import, and
test whether that global is ``None``, which costs what it always did. Tests that run the
Python loops with the extension built patch those globals (see ``pure_python_codec`` in
``tests/unit/test_records.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Literal

from trio_brod.protocol._records_format import Record, TimestampType

# The record loops in C, or None for the pure-Python ones.
c_decode_records: (
    Callable[
        [type[Record], bytes | memoryview, int, int, int, int, int, TimestampType, int | None],
        list[Record],
    ]
    | None
) = None
c_encode_records: (
    Callable[[Sequence[Any], int, Callable[[int, Any, int], tuple[bytes, int]]], tuple[bytes, int]]
    | None
) = None
if os.environ.get("TRIO_BROD_PURE_PYTHON", "") in ("", "0"):
    try:
        from trio_brod.protocol import _speedups
    except ImportError:  # not built (no compiler at install time), or built for another Python
        pass
    else:
        c_decode_records = _speedups.decode_records
        c_encode_records = _speedups.encode_records
        # Record's fields become slots, which the interpreter reads inline (a consumer reads
        # them for every record); so do those of its subclasses. See record_fields in
        # _speedups.c.
        _speedups.record_fields(Record)

        def _init_record_subclass(cls: type[Record], /, **kwargs: Any) -> None:
            super(Record, cls).__init_subclass__(**kwargs)
            _speedups.record_fields(cls)

        Record.__init_subclass__ = classmethod(_init_record_subclass)  # type: ignore[assignment]

# Re-exported, with its documentation, by trio_brod.protocol.records.
IMPLEMENTATION: Literal["c", "python"] = "python" if c_decode_records is None else "c"
