"""Run real Apache Kafka locally, for tests and for trying the library."""
