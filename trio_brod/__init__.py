"""trio-brod: a Kafka client for Trio, carrying the design of brod."""

from __future__ import annotations

from trio_brod.protocol.errors import BrodError, DecodeError, KafkaError

__all__ = ["BrodError", "DecodeError", "KafkaError"]
__version__ = "0.1.0.dev0"
