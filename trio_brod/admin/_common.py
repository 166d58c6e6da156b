"""What every admin module shares: bounded retries, argument checks, and raising what failed.

The admin calls do all of what they were asked, or raise (see :mod:`trio_brod.admin`); the
helpers here keep that contract in one place: :func:`raise_collected` raises nothing, the one
error, or an :class:`ExceptionGroup`, and :class:`Retry` bounds every retry loop by a deadline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from trio_brod._util import ms_up
from trio_brod.protocol.errors import BrodError

__all__ = [
    "DEFAULT_TIMEOUT",
    "POLL_MAX",
    "check_names",
    "check_partition_key",
    "ms",
    "raise_collected",
]

#: Default seconds for the broker-side ``timeout_ms`` of topic changes (Kafka's admin default).
DEFAULT_TIMEOUT: Final = 30.0

_BACKOFF_START: Final = 0.05
_BACKOFF_MAX: Final = 1.0
#: The longest pause between two polls of the brokers' metadata.
POLL_MAX: Final = 0.5


def raise_collected(errors: Sequence[BrodError], what: str, total: int) -> None:
    """Raise nothing, the one error, or a group of them (see :mod:`trio_brod.admin`)."""
    if not errors:
        return
    if len(errors) == 1:
        raise errors[0]
    raise ExceptionGroup(f"{what}: {len(errors)} of {total} failed", list(errors))


def check_names(names: Iterable[str], what: str) -> list[str]:
    """``names`` as a list, checked: a sequence (not one str) of distinct non-empty names.

    Raises:
        TypeError, ValueError: The message starts with ``what``.
    """
    if isinstance(names, str):
        raise TypeError(f"{what} must be a sequence of names, not a str")
    result = list(names)
    for name in result:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{what}: {name!r} is not a name")
    if len(set(result)) != len(result):
        raise ValueError(f"{what}: a name is given twice: {result!r}")
    return result


def check_partition_key(key: object, what: str) -> None:
    """Check that a mapping's key is a ``(topic, partition)`` tuple.

    Raises:
        TypeError: It is not; the message starts with ``what``.
    """
    if not (
        isinstance(key, tuple)
        and len(key) == 2
        and isinstance(key[0], str)
        and isinstance(key[1], int)
    ):
        raise TypeError(f"{what}: keys must be (topic, partition), not {key!r}")


def ms(seconds: float) -> int:
    """Seconds as the whole milliseconds of a request's ``timeout_ms`` (an int32).

    Raises:
        ValueError: ``seconds`` is negative or does not fit.
    """
    if not isinstance(seconds, (int, float)) or not 0 <= seconds < 2**31 / 1000:
        raise ValueError(f"timeout must be seconds between 0 and 2147483, not {seconds!r}")
    return ms_up(seconds)
