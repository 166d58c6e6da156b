"""The harness's errors: a broker that would not start, a tool that failed.

Their own module because every part of the harness raises them (the layout, the JVMs, the
readiness checks) and the public ones are re-exported by :mod:`trio_brod.testing`.
"""

from __future__ import annotations

import subprocess

from trio_brod.protocol.errors import BrodError


class KafkaStartError(BrodError):
    """A broker did not start, or did not become ready in time.

    The message carries the end of the broker's log, which usually says why.
    """


class KafkaToolError(BrodError):
    """A Kafka command line tool run by the harness failed.

    Attributes:
        result: The finished process, with its ``stdout`` and ``stderr``.
    """

    def __init__(self, message: str, result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(message)
        self.result = result


class PortTakenError(KafkaStartError):
    """A broker could not bind a port chosen for it; the cluster's start retries with new
    ports."""
