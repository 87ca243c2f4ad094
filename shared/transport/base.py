"""What the services need from a log. Both transports keep Kafka's semantics: ordered per
partition, durable once `send` returns, consumer groups with offsets committed by the consumer."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from vuonminh.shared.records import IncomingRecord, OutgoingRecord

TopicPartition = tuple[str, int]


class LogFull(OSError):
    """The log cannot take more records: its size cap or its disk is full.

    An OSError, so consumers and relays wait it out as an outage and never dead-letter for it.
    """


class LogProducer(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def send(self, records: Sequence[OutgoingRecord]) -> None:
        """Append records in order; returns only once every one is durable (acknowledged)."""

    async def check(self) -> None:
        """Raises when the log cannot be reached now (readiness)."""


class LogConsumer(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def poll(self, *, max_records: int, timeout_s: float) -> list[IncomingRecord]:
        """The next records after the current position; advances the position, not the commit."""

    async def commit(self, positions: dict[TopicPartition, int]) -> bool:
        """Store the next offset to read per partition; False when the group moved on meanwhile."""

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Read `partition` from `offset` again at the next poll."""

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        """Fetch nothing more from these partitions until resumed (the group keeps them)."""

    def resume(self, partitions: Sequence[TopicPartition]) -> None: ...

    async def lag(self, *, exclude: Collection[TopicPartition] = ()) -> int:
        """Records on the assigned partitions (but `exclude`) not yet fetched; raises when the log
        cannot be asked."""

    def is_assigned(self) -> bool: ...


class Transport(Protocol):
    name: str

    async def ensure_topics(self, topics: Sequence[str]) -> None: ...
    def producer(self, *, client_id: str) -> LogProducer: ...
    def consumer(self, *, group_id: str, topics: Sequence[str]) -> LogConsumer: ...
    async def close(self) -> None: ...
