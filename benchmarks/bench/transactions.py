"""The transaction workloads, for every client that has transactions.

``txn_produce``
    ``N`` records into an 8-partition topic in transactions of :data:`TXN_SIZE` records
    each (keys by the default partitioner), one transaction after another, timed from the
    first transaction's start to the last commit. One transactional producer per run.
``txn_process``
    Exactly-once consume-transform-produce: one member of a fresh group over a 6-partition
    topic filled beforehand (``N`` records) copies every record to an output topic, each
    batch of input in one transaction with its offsets. Timed from the start (join
    included, as in the group workload) until the whole input was processed and committed.
    trio-brod's ``open_transaction_processor`` against the loop every aiokafka user writes:
    ``getmany()``, ``async with producer.transaction():`` ``send()`` each record,
    ``send_offsets_to_transaction()``.

Each checks what it did: every record acknowledged (produce), every input record processed
exactly once in a committed transaction (a processed count above ``N`` means an aborted
transaction was redone, and fails the run rather than report a number).
"""

from __future__ import annotations

#: Records per transaction in the transactional produce workload (the issue's row).
TXN_SIZE = 1000
#: Partitions of the topics of the two workloads.
PRODUCE_PARTITIONS = 8
PROCESS_PARTITIONS = 6
#: The transaction timeout every client gets (seconds).
TXN_TIMEOUT_S = 60
