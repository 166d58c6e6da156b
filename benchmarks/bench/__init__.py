"""The trio-brod benchmark runner (``nox -s bench``; ``python benchmarks/run.py --help``).

One local broker, every client, the same workloads, each run in a subprocess of its own:

- :mod:`bench.cli` parses the options and drives the run;
- :mod:`bench.plan` turns them into cases (workload x topic layout x settings x client);
- :mod:`bench.broker` starts the broker (or uses ``--bootstrap``), creates topics, checks
  offsets, and builds the command lines of Kafka's Java tools;
- :mod:`bench.worker` is the subprocess entry point; :mod:`bench.clients` holds one module per
  client library, each doing the same workloads the way that library's docs recommend;
- :mod:`bench.report` prints the table and ratios, and writes the JSON and the PNG.
"""
