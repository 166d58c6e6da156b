"""The transactional producer's errors, typed by what the caller can do about them.

* :class:`FatalTransactionError`: the producer is unusable (fenced by a newer instance
  with the same transactional id, a stale epoch, no authorisation for the id). Every
  later call raises the same error; close the producer, and start a new one if this
  instance should still be the one.
* :class:`AbortableTransactionError`: this transaction cannot commit (a record failed,
  an offset commit was refused, the transaction timed out). It has been (or must be)
  aborted; the producer goes on with the next transaction.
* :class:`TransactionStateError`: a programming error: producing outside a transaction,
  two transactions at once on one producer.

Retriable broker errors (CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS,
NOT_COORDINATOR ...) never reach the caller unless they outlast the transaction timeout:
they are retried inside, with backoff; then they come out as an abortable error.
"""

from __future__ import annotations

from trio_brod.protocol.errors import BrodError

__all__ = [
    "AbortableTransactionError",
    "FatalTransactionError",
    "TransactionError",
    "TransactionStateError",
]


class TransactionError(BrodError):
    """Base class of the transactional producer's errors.

    Attributes:
        cause: The error underneath (a :class:`~trio_brod.KafkaError`, say), or None.
    """

    retriable = False

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause
        if cause is not None:
            self.__cause__ = cause

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.cause))


class FatalTransactionError(TransactionError):
    """The transactional producer is unusable; every later call raises this same error.

    Raised for ProducerFencedError, InvalidProducerEpochError and
    TransactionalIdAuthorizationFailedError (see ``cause``). Leave the producer's
    block (that does not raise it again).
    """


class AbortableTransactionError(TransactionError):
    """The transaction could not commit and was aborted (or must be); the producer goes on.

    ``cause`` says why: a record's error, a refused offset commit (the group moved on:
    IllegalGenerationError, FencedInstanceIdError ...), or a timeout. Process the input
    again in a new transaction, or give up on it.
    """


class TransactionStateError(TransactionError, RuntimeError):
    """A transactional producer was used the wrong way: producing outside a transaction,
    a second transaction while one is open, a call after its block ended."""
