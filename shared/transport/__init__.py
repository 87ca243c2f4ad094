"""The log the services talk through: Apache Kafka, or the embedded local log on SQLite."""

from vuonminh.shared.transport.base import LogConsumer, LogProducer, Transport

__all__ = ["LogConsumer", "LogProducer", "Transport"]
