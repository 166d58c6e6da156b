"""produce_batch's two paths, and the odd inputs that tell them apart.

produce_batch prepares its records in C (``trio_brod.protocol._speedups.prepare_records``)
when every message is a plain one, and with its Python loop otherwise (or without the
extension). tests/unit/test_producer.py checks that the two agree; test_speedups.py tests
the C function itself. Both use what is here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import pytest
import trio
from hypothesis import strategies as st

from trio_brod import Message, ProducerConfig
from trio_brod.producer import PartitionProducer
from trio_brod.producer import worker as producer_module

TOPIC = "orders"


NOW = 1_700_000_000_000


def describe_call(records: Sequence[Any], size: int) -> str:
    """Records and their size as text, with the type of the list and of every field, so that
    bytes and a bytearray, or () and [], count as different."""
    fields = [[type(field).__name__ for field in record] for record in records]
    return f"{type(records).__name__} {records!r} {fields} size {size}"


def batch_outcome(messages: Any, *, c_path: bool, max_request_size: int = 1_048_576) -> str:
    """What produce_batch makes of ``messages``: the records and size of the call it queues
    (:func:`describe_call`), or the exception it raises, as text.

    ``c_path=False`` takes the C path away (there is none without the extension). The clock
    is stopped at NOW, so that the two paths' timestamps match. The producer has no client
    and no worker: produce_batch only puts its call in the channel, and it is read from there.
    """

    async def produce() -> str:
        config = ProducerConfig(max_request_size=max_request_size)
        producer = PartitionProducer(cast(Any, None), TOPIC, 0, config, None)
        try:
            await producer.produce_batch(messages)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        call = producer._receive_channel.receive_nowait()
        return describe_call(call.records, call.size)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(producer_module, "_now_ms", lambda: NOW)
        if not c_path:
            patch.setattr(producer_module, "_c_prepare_records", None)
        return trio.run(produce)


class BytesSubclass(bytes):
    __slots__ = ()


class TupleSubclass(tuple):  # type: ignore[type-arg]
    __slots__ = ()


class KeyValue(NamedTuple):
    key: bytes | None
    value: bytes | None


class MessageSubclass(Message):
    __slots__ = ()


plain_data = st.none() | st.binary(max_size=20)
# (Messages are made with explicit fields: st.builds would invent headers and timestamps.)
plain_pairs = st.tuples(plain_data, plain_data)
#: What the C path takes: (key, value) tuples and Messages with neither headers nor a
#: timestamp, their keys and values bytes or None.
plain_messages = plain_pairs | plain_pairs.map(lambda kv: Message(kv[1], kv[0]))
odd_data = st.one_of(
    plain_data,
    st.binary(max_size=5).map(bytearray),
    st.binary(max_size=5).map(lambda data: memoryview(data)),
    st.binary(max_size=5).map(BytesSubclass),
    st.text(max_size=3),
    st.integers(-1, 1),
)
# Any: they are odd, and Message's type hints say otherwise.
odd_headers: st.SearchStrategy[Any] = st.lists(
    st.tuples(st.text(max_size=3), plain_data), min_size=1, max_size=2
)
odd_timestamps: st.SearchStrategy[Any] = st.integers(-1, 2**41) | st.sampled_from(
    [1.5, True, 2**64]
)
#: What it leaves to the Python loop: valid in other ways (which the loop converts) or
#: invalid (a TypeError naming the message).
odd_messages = st.one_of(
    st.tuples(odd_data, odd_data),
    st.tuples(odd_data, odd_data).map(lambda kv: Message(kv[1], kv[0])),
    st.tuples(plain_data, odd_headers | st.sampled_from([[], [("h", "text")], "", None])).map(
        lambda vh: Message(vh[0], headers=vh[1])
    ),
    st.tuples(plain_data, odd_timestamps).map(lambda vt: Message(vt[0], timestamp=vt[1])),
    st.tuples(plain_data) | st.tuples(plain_data, plain_data, plain_data) | st.just(()),
    plain_pairs.map(list),
    plain_pairs.map(lambda kv: KeyValue(*kv)),
    plain_pairs.map(TupleSubclass),
    plain_pairs.map(lambda kv: MessageSubclass(kv[1], kv[0])),
    st.sampled_from([None, b"kv", "kv", 5, {b"k": b"v"}]),
)
