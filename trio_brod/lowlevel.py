"""Handles for experts: the objects behind the client's calls.

Applications produce and consume through :class:`~trio_brod.Client`; these are the pieces it
hands out when asked, for code that needs to hold one directly, as Trio keeps its own
lower-level objects in :mod:`trio.lowlevel`:

* :class:`Connection`: one broker connection, pipelined. Get one from
  :meth:`Client.get_connection <trio_brod.Client.get_connection>` or
  :meth:`Client.get_leader_connection <trio_brod.Client.get_leader_connection>`, and send any
  request of :mod:`trio_brod.protocol` with :meth:`Connection.request`. Never construct one:
  the client's connection pool opens, shares and closes them.
* :class:`PartitionProducer`: one partition's producer, from
  :meth:`Client.get_producer <trio_brod.Client.get_producer>`.
* :class:`PartitionConsumer`: one partition's consumer, from
  :meth:`Client.get_consumer <trio_brod.Client.get_consumer>`.

Their methods are stable, but they are not needed for ordinary use, which is why they are
not in the top-level namespace.
"""

from __future__ import annotations

from trio_brod._net import Connection
from trio_brod.consumer import PartitionConsumer
from trio_brod.producer import PartitionProducer

__all__ = ["Connection", "PartitionConsumer", "PartitionProducer"]
