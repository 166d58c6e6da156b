"""An in-process fake Kafka for fast, deterministic tests, with fault injection.

``async with fake_kafka(brokers=1) as fake:`` runs Kafka brokers inside the caller's Trio
run, on loopback TCP listeners, speaking the real protocol through trio-brod's generated
codec: trio-brod, librdkafka (confluent-kafka, kcat) or any other client connects to
``fake.bootstrap_servers``. All its timers run on Trio's clock, so under
``trio.testing.MockClock(autojump_threshold=0)`` a long poll or an injected delay takes no
wall time.

Fault injection (see :meth:`FakeKafka.control`)::

    fake.fail(ProduceRequest, NotLeaderOrFollowerError, topic="orders", partition=0)
    fake.control(FetchRequest, Delay(5.0), times=None)  # every Fetch waits 5 s (Trio's clock)
    fake.control(MetadataRequest, Drop())               # the next Metadata: hang up
    fake.control(ProduceRequest, Drop(after_serving=True))  # written, but the answer lost
    hold = Hold(); fake.control(FetchRequest, hold)     # held at the broker until
    hold.release()                                      # the test lets it go
    fake.control(ProduceRequest, lambda req: Drop() if req.broker == 2 else None)
    fake.move_leader("orders", 0)                     # leader moves; old one answers
                                                      # NOT_LEADER_OR_FOLLOWER
    await fake.stop_broker(2); await fake.start_broker(2)
    fake.expire_member("my-group", member_id)         # evicted as by its session timeout
    fake.move_coordinator("my-group")                 # old coordinator: NOT_COORDINATOR
    fake.transaction("my-txn-id")                     # a transactional id's state
    fake.remove_api(ConsumerGroupHeartbeatRequest)    # an older Kafka, without KIP-848

Transactions (v1) run through a transaction coordinator with Kafka's fencing, markers, last
stable offsets and timeouts on Trio's clock (see :mod:`._transactions`).

The modules, one job each: ``_log`` (a partition's log: validation, sequences, offsets),
``_model`` (topics, partitions, leaders), ``_faults`` (controls), ``_wire`` (frames),
``_admin_apis`` and ``_data_apis`` (the handlers), ``_groups`` (the group coordinator's
rules, pure) and ``_group_apis`` (its handlers and timers), ``_transactions`` (the
transaction coordinator's rules, pure) and ``_txn_apis`` (its handlers, markers and timer),
``_runtime`` (the API table and the shared state coordinators plug into), ``_server``
(sockets), ``_fake`` (this API).
"""

from __future__ import annotations

from trio_brod.testing.fake._consumer_groups import ConsumerGroup, ConsumerMember
from trio_brod.testing.fake._fake import FakeKafka, fake_kafka
from trio_brod.testing.fake._faults import (
    Action,
    Control,
    Delay,
    Drop,
    Fail,
    Hang,
    Hold,
    Intercepted,
    Pass,
)
from trio_brod.testing.fake._group_apis import GroupCoordinator
from trio_brod.testing.fake._groups import Committed, Group, Member
from trio_brod.testing.fake._log import AppendResult, LogError, PartitionLog, StoredBatch
from trio_brod.testing.fake._model import ClusterModel, ModelError, Partition, Topic
from trio_brod.testing.fake._runtime import Api, FakeCluster, RequestContext
from trio_brod.testing.fake._transactions import Transaction
from trio_brod.testing.fake._txn_apis import TransactionCoordinator

__all__ = [
    "Action",
    "Api",
    "AppendResult",
    "ClusterModel",
    "Committed",
    "ConsumerGroup",
    "ConsumerMember",
    "Control",
    "Delay",
    "Drop",
    "Fail",
    "FakeCluster",
    "FakeKafka",
    "Group",
    "GroupCoordinator",
    "Hang",
    "Hold",
    "Intercepted",
    "LogError",
    "Member",
    "ModelError",
    "Partition",
    "PartitionLog",
    "Pass",
    "RequestContext",
    "StoredBatch",
    "Topic",
    "Transaction",
    "TransactionCoordinator",
    "fake_kafka",
]
