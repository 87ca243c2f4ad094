"""The log the services talk through: Apache Kafka, or the embedded local log on SQLite."""

from vuonminh.shared.transport.base import LogConsumer, LogFull, LogProducer, Transport

__all__ = ["LogConsumer", "LogFull", "LogProducer", "Transport"]
