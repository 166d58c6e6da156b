"""pytest plugin: fixtures that start a real Apache Kafka (filled in by the harness work)."""
