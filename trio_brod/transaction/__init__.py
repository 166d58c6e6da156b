"""Transactions: the transactional producer and the consume-transform-produce processor.

brod's ``brod_transaction`` and ``brod_transaction_processor`` (``brod:txn_do``): see
:mod:`trio_brod.transaction.producer` and :mod:`trio_brod.transaction.processor`, and the
transactions guide in the documentation.
"""

from trio_brod._config_transaction import TransactionConfig
from trio_brod.transaction._errors import (
    AbortableTransactionError,
    FatalTransactionError,
    TransactionError,
    TransactionStateError,
)
from trio_brod.transaction._txn import Transaction
from trio_brod.transaction.processor import (
    Process,
    TransactionProcessor,
    open_transaction_processor,
)
from trio_brod.transaction.producer import (
    GroupMetadata,
    TransactionalProducer,
    group_metadata,
    open_transactional_producer,
)

__all__ = [
    "AbortableTransactionError",
    "FatalTransactionError",
    "GroupMetadata",
    "Process",
    "Transaction",
    "TransactionConfig",
    "TransactionError",
    "TransactionProcessor",
    "TransactionStateError",
    "TransactionalProducer",
    "group_metadata",
    "open_transaction_processor",
    "open_transactional_producer",
]
