"""One module per client library; each has ``run(spec) -> result`` for every workload.

Workloads and what every client must do for them (see benchmarks/README.md):

``produce``
    ``spec["messages"]`` records to ``spec["topic"]`` with the given acks, compression,
    batch size and linger, keys chosen by the client's default partitioner (or, for the
    ``-batch`` rows, whole batches sent round-robin to partitions). First one acknowledged
    record per partition, untimed, to open connections; then the timed run, done when every
    record is acknowledged. Count acknowledgements; the runner also checks the log.
``consume``
    Read ``spec["topic"]`` from the earliest offset to the end, touching every key and
    value (``len``), and count; ``spec["messages"]`` must come out exactly.
``latency``
    Send at ``spec["rate"]`` messages/s for warm-up plus duration, the send time stamped in
    the value; a consumer in the same process records now - stamp.
``partitions``
    Per-partition cost: RSS after starting producers/consumers on all partitions of a
    topic with ``spec["partitions"]`` partitions, then a produce and a consume run spread
    over all of them.
"""
