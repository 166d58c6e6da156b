"""The transactional producer's configuration: :class:`TransactionConfig`.

Beside :mod:`trio_brod._config` rather than in it only because that module is at the
800-line limit of ``tests/unit/test_architecture.py``; it uses the same checks.
"""

from __future__ import annotations

import dataclasses

from trio_brod._config import ProducerConfig, check_number, check_type
from trio_brod._exceptions import ConfigError
from trio_brod._util import ms_up

__all__ = ["TransactionConfig"]

_MAX_INT32_SECONDS = (2**31 - 1) / 1000


@dataclasses.dataclass(frozen=True, slots=True)
class TransactionConfig:
    """How a transactional producer runs its transactions (brod's ``brod_transaction``
    options, with the Java producer's defaults).

    Args:
        transaction_timeout: Seconds the coordinator lets a transaction stay open before it
            aborts it (Java's ``transaction.timeout.ms``, 60 s). A transaction left open by
            a producer that died holds back every ``read_committed`` reader of its
            partitions (the last stable offset) until then, unless a new producer with the
            same transactional id starts first. Retriable coordinator errors are retried
            for up to this long. At most the broker's ``transaction.max.timeout.ms``
            (15 minutes by default).
        end_timeout: Seconds an abort (on an exception or a cancellation, shielded from
            the cancellation) or a commit's EndTxn may take before it is given up. A
            given-up abort is finished by the coordinator at ``transaction_timeout``.
        producer_config: How the transaction's records are batched and sent: a
            :class:`ProducerConfig` with idempotence (the default). None: the default
            ``ProducerConfig`` with ``max_retries=-1`` (a record is retried until the
            transaction ends, as the Java producer does within its delivery timeout).

    Raises:
        ConfigError: A field has a bad value; the message names the field.
    """

    transaction_timeout: float = 60.0
    end_timeout: float = 30.0
    producer_config: ProducerConfig | None = None

    def __post_init__(self) -> None:
        check_number(
            self,
            "transaction_timeout",
            minimum=0,
            exclusive_minimum=True,
            maximum=_MAX_INT32_SECONDS,
        )
        check_number(self, "end_timeout", minimum=0, exclusive_minimum=True)
        if self.producer_config is not None:
            check_type(self, "producer_config", ProducerConfig, "a ProducerConfig or None")
            if not self.producer_config.idempotent:
                raise ConfigError(
                    f"TransactionConfig.producer_config={self.producer_config!r}: expected "
                    "a ProducerConfig with idempotence (required_acks=-1)"
                )

    @property
    def effective_producer_config(self) -> ProducerConfig:
        """``producer_config``, or the default for transactions."""
        if self.producer_config is not None:
            return self.producer_config
        return ProducerConfig(max_retries=-1)

    @property
    def transaction_timeout_ms(self) -> int:
        """``transaction_timeout`` as InitProducerId's ``transaction_timeout_ms``."""
        return ms_up(self.transaction_timeout)
