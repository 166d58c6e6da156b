"""A transaction processor in a process of its own, for the exactly-once-through-a-crash
test (``test_transaction_processor.py``), which SIGKILLs it mid-stream.

    python txn_processor_child.py BOOTSTRAP GROUP INPUT OUTPUT TRANSACTIONAL_ID

Prints ``transactions N`` each time its count of committed transactions grows.
"""

from __future__ import annotations

import logging
import sys

import trio

import trio_brod
from trio_brod.consumer.message_set import MessageSet
from trio_brod.transaction import Transaction

#: Small fetches: many small transactions, so that a kill lands in the middle of the stream.
CONSUMER = trio_brod.ConsumerConfig(begin_offset="earliest", max_bytes=8192)
GROUP = trio_brod.GroupConfig(session_timeout=6.5, rebalance_timeout=15.0, heartbeat_rate=1.0)
TXN = trio_brod.TransactionConfig(transaction_timeout=30.0)


def transform(output: str) -> trio_brod.transaction.Process:
    async def process(txn: Transaction, message_set: MessageSet) -> None:
        for message in message_set:
            assert message.value is not None
            await txn.produce(output, b"out:" + message.value, key=message.key)

    return process


async def main(bootstrap: str, group: str, source: str, sink: str, transactional_id: str) -> None:
    async with (
        trio_brod.open_client(bootstrap) as client,
        trio_brod.open_transaction_processor(
            client,
            group,
            [source],
            transform(sink),
            transactional_id=transactional_id,
            consumer_config=CONSUMER,
            group_config=GROUP,
            config=TXN,
        ) as processor,
    ):
        seen = 0
        while True:
            await trio.sleep(0.05)
            if processor.transactions != seen:
                seen = processor.transactions
                print(f"transactions {seen}", flush=True)


if __name__ == "__main__":
    # Its warnings on stderr, which the test's output shows.
    logging.basicConfig(level=logging.INFO, format="child %(levelname)s %(name)s: %(message)s")
    trio.run(main, *sys.argv[1:6])
