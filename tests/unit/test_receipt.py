"""DeliveryReceipt: awaiting, result/exception, done-callbacks (no broker needed)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_brod import DeliveryReceipt, NotFound
from trio_brod.producer._buffer import Call, ProducerBuffer, WireBatch
from trio_brod.protocol.errors import NotEnoughReplicasError


def test_pending_receipt() -> None:
    receipt = DeliveryReceipt("t", 2)
    assert not receipt.done()
    assert receipt.exception() is None
    with pytest.raises(RuntimeError, match="not done"):
        receipt.result()
    assert repr(receipt) == "<DeliveryReceipt t[2] pending>"


async def test_await_gives_the_offset() -> None:
    receipt = DeliveryReceipt("t", 0)
    got: list[int] = []

    async def waiter() -> None:
        got.append(await receipt)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        receipt.resolve(41)
    assert got == [41, 41]
    assert receipt.result() == 41
    assert await receipt.wait() == 41
    assert repr(receipt) == "<DeliveryReceipt t[0] offset=41>"


async def test_a_failed_receipt_raises_its_error_each_time() -> None:
    receipt = DeliveryReceipt("t", 1)
    error = NotEnoughReplicasError(topic="t", partition=1)
    receipt.fail(error)
    assert receipt.done()
    assert receipt.exception() is error
    with pytest.raises(NotEnoughReplicasError, match=r"t\[1\]") as first:
        await receipt
    with pytest.raises(NotEnoughReplicasError) as second:
        receipt.result()
    # Each raise gets its own copy, so tracebacks do not pile up on one shared object.
    assert first.value is not second.value
    assert first.value == error
    assert "failed" in repr(receipt)


def test_the_first_outcome_wins() -> None:
    receipt = DeliveryReceipt("t", 0)
    receipt.resolve(5)
    receipt.fail(ValueError("late"))
    receipt.resolve(6)
    assert receipt.result() == 5


async def test_await_is_cancellable() -> None:
    receipt = DeliveryReceipt("t", 0)
    with trio.move_on_after(0.05) as scope:
        await receipt
    assert scope.cancelled_caught
    receipt.resolve(1)
    assert await receipt == 1


def test_callbacks_run_in_order_once_done() -> None:
    receipt = DeliveryReceipt("t", 0)
    seen: list[str] = []
    receipt.add_done_callback(lambda r: seen.append(f"a{r.result()}"))
    receipt.add_done_callback(lambda r: seen.append(f"b{r.result()}"))
    assert seen == []
    receipt.resolve(3)
    assert seen == ["a3", "b3"]
    receipt.resolve(4)  # no second run
    assert seen == ["a3", "b3"]


def test_a_callback_added_when_done_runs_at_once() -> None:
    receipt = DeliveryReceipt("t", 0)
    receipt.fail(NotFound("gone"))
    seen: list[BaseException | None] = []
    receipt.add_done_callback(lambda r: seen.append(r.exception()))
    assert isinstance(seen[0], NotFound)


def test_a_callback_added_when_done_raises_to_the_caller() -> None:
    receipt = DeliveryReceipt("t", 0)
    receipt.resolve(1)

    def explode(receipt: DeliveryReceipt) -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        receipt.add_done_callback(explode)


def test_a_raising_callback_does_not_stop_the_others() -> None:
    receipt = DeliveryReceipt("t", 0)
    seen: list[int] = []

    def explode(receipt: DeliveryReceipt) -> None:
        raise KeyError("boom")

    receipt.add_done_callback(explode)
    receipt.add_done_callback(lambda r: seen.append(r.result()))
    with pytest.raises(KeyError, match="boom"):
        receipt.resolve(7)
    assert seen == [7]
    assert receipt.result() == 7


def test_several_raising_callbacks_come_out_together() -> None:
    receipt = DeliveryReceipt("t", 0)

    def explode(receipt: DeliveryReceipt) -> None:
        raise KeyError("boom")

    def fail(receipt: DeliveryReceipt) -> None:
        raise ValueError("bad")

    receipt.add_done_callback(explode)
    receipt.add_done_callback(fail)
    with pytest.raises(ExceptionGroup) as info:
        receipt.fail(RuntimeError("x"))
    assert {type(e) for e in info.value.exceptions} == {KeyError, ValueError}


def make_call(value: bytes) -> Call:
    return Call("t", 0, [(0, None, value, ())], 40)


def test_a_batch_resolves_every_receipt_before_raising() -> None:
    receipts = [make_call(b"v") for _ in range(3)]

    def explode(receipt: DeliveryReceipt) -> None:
        raise KeyError("boom")

    receipts[0].add_done_callback(explode)
    batch = WireBatch(list(receipts))
    with pytest.raises(KeyError):
        batch.resolve(10)
    assert [r.result() for r in receipts] == [10, 11, 12]
    # Done calls keep no messages for whoever keeps their receipts.
    assert [r.records for r in receipts] == [(), (), ()]


def test_fail_all_fails_every_receipt_before_raising() -> None:
    buffer = ProducerBuffer(max_batch_size=50, onwire_limit=2)
    receipts = [make_call(b"v") for _ in range(4)]
    for receipt in receipts:
        buffer.add(receipt)
    buffer.sent(buffer.take_batch())

    def explode(receipt: DeliveryReceipt) -> None:
        raise KeyError("boom")

    receipts[0].add_done_callback(explode)
    receipts[3].add_done_callback(explode)
    with pytest.raises(ExceptionGroup):
        buffer.fail_all(RuntimeError("closed"))
    assert buffer.is_empty()
    for receipt in receipts:
        assert isinstance(receipt.exception(), RuntimeError)
        assert receipt.records == ()
