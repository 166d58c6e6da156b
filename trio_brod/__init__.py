"""trio-brod: a Kafka client for Trio, carrying the design of brod.

Everything a user needs is importable from here::

    import trio
    import trio_brod

    async def main():
        async with trio_brod.open_client(["localhost:9092"]) as client:
            await client.start_producer("orders")
            offset = await client.produce_sync("orders", b"value", key=b"key")

    trio.run(main)

Administration (topics, configs, records, groups and their offsets) lives in
:mod:`trio_brod.admin`; the objects behind the client's calls (a broker connection, one
partition's producer or consumer) in :mod:`trio_brod.lowlevel`; the wire protocol in
:mod:`trio_brod.protocol` (sans-IO, usable without Trio); and a real local Kafka for tests
and experiments in :mod:`trio_brod.testing`.
"""

from __future__ import annotations

from trio_brod._config import (
    ClientConfig,
    ConsumerConfig,
    ProducerConfig,
    SaslConfig,
    Timestamp,
)
from trio_brod._config_groups import GroupConfig
from trio_brod._exceptions import (
    BrokerConnectionError,
    ClientClosed,
    ConfigError,
    ConnectionClosed,
    ConnectionFailed,
    ConnectionLost,
    LogTruncated,
    MessageTooLarge,
    NoLeader,
    NotFound,
    ProducerClosed,
    RequestTimedOut,
    SaslFailed,
    UnsupportedVersion,
)
from trio_brod._metadata import BrokerMetadata, ClusterMetadata, PartitionMetadata, TopicMetadata
from trio_brod._oneshot import get_metadata
from trio_brod._version import __version__ as __version__
from trio_brod.client import Client, open_client
from trio_brod.consumer import (
    FoldResult,
    FoldStop,
    MessageSet,
    Subscription,
    TopicSubscriber,
    open_topic_subscriber,
)
from trio_brod.groups import (
    AssignedPartition,
    GroupMember,
    GroupSubscriber,
    open_group_member,
    open_group_subscriber,
)
from trio_brod.producer import DeliveryReceipt, Message
from trio_brod.protocol.errors import BrodError, DecodeError, KafkaError
from trio_brod.protocol.records import Record
from trio_brod.transaction import (
    AbortableTransactionError,
    FatalTransactionError,
    GroupMetadata,
    Transaction,
    TransactionalProducer,
    TransactionConfig,
    TransactionError,
    TransactionProcessor,
    TransactionStateError,
    open_transaction_processor,
)

__all__ = [
    "AbortableTransactionError",
    "AssignedPartition",
    "BrodError",
    "BrokerConnectionError",
    "BrokerMetadata",
    "Client",
    "ClientClosed",
    "ClientConfig",
    "ClusterMetadata",
    "ConfigError",
    "ConnectionClosed",
    "ConnectionFailed",
    "ConnectionLost",
    "ConsumerConfig",
    "DecodeError",
    "DeliveryReceipt",
    "FatalTransactionError",
    "FoldResult",
    "FoldStop",
    "GroupConfig",
    "GroupMember",
    "GroupMetadata",
    "GroupSubscriber",
    "KafkaError",
    "LogTruncated",
    "Message",
    "MessageSet",
    "MessageTooLarge",
    "NoLeader",
    "NotFound",
    "PartitionMetadata",
    "ProducerClosed",
    "ProducerConfig",
    "Record",
    "RequestTimedOut",
    "SaslConfig",
    "SaslFailed",
    "Subscription",
    "Timestamp",
    "TopicMetadata",
    "TopicSubscriber",
    "Transaction",
    "TransactionConfig",
    "TransactionError",
    "TransactionProcessor",
    "TransactionStateError",
    "TransactionalProducer",
    "UnsupportedVersion",
    "get_metadata",
    "open_client",
    "open_group_member",
    "open_group_subscriber",
    "open_topic_subscriber",
    "open_transaction_processor",
]
