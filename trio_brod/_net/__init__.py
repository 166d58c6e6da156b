"""One connection to one broker: the :class:`Connection` and what it is made of.

Everything that talks to a broker goes through a :class:`Connection`; the pool in
:mod:`trio_brod._cluster` decides which one. Its parts, each a module of its own:

* :mod:`~trio_brod._net.connection`: the connection's lifecycle, ``send``/``request``, and
  the writer and reader tasks that pipeline requests;
* :mod:`~trio_brod._net.pending`: :class:`PendingResponse` (a caller's handle on a request
  in flight) and the items the writer's queue holds;
* :mod:`~trio_brod._net.handshake`: opening the stream (TCP, TLS), ApiVersions, and SASL
  authentication and re-authentication;
* :mod:`~trio_brod._net.sasl`: the SASL mechanisms, sans-IO;
* :mod:`~trio_brod._net.merge`: merging one-partition Produce and Fetch requests into one
  request, and splitting its response, sans-IO.
"""

from __future__ import annotations

from trio_brod._net.connection import Connection
from trio_brod._net.handshake import mechanism_factory
from trio_brod._net.pending import PendingResponse

__all__ = ["Connection", "PendingResponse", "mechanism_factory"]
