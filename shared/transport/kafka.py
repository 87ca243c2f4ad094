"""Apache Kafka through aiokafka, configured for the guarantees the services promise."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from vuonminh.shared.records import IncomingRecord, OutgoingRecord
from vuonminh.shared.transport.base import TopicPartition as TP
from vuonminh.shared.transport.kafka_topics import KafkaTopics, TopicPolicy

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ProducerBatching:
    """How the producer groups records into requests (docs/operations.md, "Producer batching").

    The relay sends up to 500 outbox rows at once and intake appends what concurrent webhooks
    bring; `linger_ms` lets those fill one request per partition, and `max_batch_bytes` (64 KiB:
    about 60 orders of ~1 KiB) keeps a relay pass to a few requests. No compression by default:
    on the small machines we run on the CPU is scarcer than the network; `gzip` (zlib, no extra
    package) is there for links where bytes cost more.
    """

    linger_ms: int = 5
    max_batch_bytes: int = 64 * 1024
    compression: Literal["none", "gzip"] = "none"

    def aiokafka_config(self) -> dict[str, object]:
        return {
            "linger_ms": self.linger_ms,
            "max_batch_size": self.max_batch_bytes,
            "compression_type": None if self.compression == "none" else self.compression,
        }


class KafkaProducer:
    def __init__(
        self, bootstrap_servers: str, client_id: str, namespace: str = "", batching: ProducerBatching | None = None
    ) -> None:
        self._namespace = namespace
        self._config = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": client_id,
            # aiokafka defaults to acks=1 without idempotence; both must be asked for. With a
            # single broker (dev, CI) acks=all is no stronger than acks=1: production runs 3
            # replicas and min.insync.replicas=2 (deploy/k8s).
            "enable_idempotence": True,
            "acks": "all",
            "request_timeout_ms": 30_000,
            **(batching or ProducerBatching()).aiokafka_config(),
        }
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # aiokafka binds to the running loop at construction, hence here and not in __init__.
        producer = AIOKafkaProducer(**self._config)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()  # a broker that is down: close what was opened, the caller retries
            raise
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def check(self) -> None:
        if self._producer is None:
            raise ConnectionError("the Kafka producer is not started")
        # A metadata round trip to any broker: what a send needs first.
        await self._producer.client.fetch_all_metadata()

    async def send(self, records: Sequence[OutgoingRecord]) -> None:
        if self._producer is None:
            raise ConnectionError("the Kafka producer is not started")
        # Enqueue all, then wait for all: the idempotent producer keeps per-partition order.
        pending = [
            await self._producer.send(self._namespace + r.topic, value=r.value, key=r.key, headers=list(r.headers))
            for r in records
        ]
        await asyncio.gather(*pending)


def incoming_record(message: ConsumerRecord, namespace: str) -> IncomingRecord:
    """A consumed Kafka message as the services see it: topic without the namespace prefix."""
    return IncomingRecord(
        topic=message.topic.removeprefix(namespace),
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=tuple(message.headers or ()),
        timestamp_ms=message.timestamp,
    )


class KafkaConsumer:
    def __init__(self, bootstrap_servers: str, group_id: str, topics: Sequence[str], namespace: str = "") -> None:
        self._namespace = namespace
        self._consumer = AIOKafkaConsumer(
            *(namespace + t for t in topics),
            bootstrap_servers=bootstrap_servers,
            group_id=namespace + group_id,
            client_id=group_id,
            enable_auto_commit=False,  # offsets are committed after the effect, by the runner
            auto_offset_reset="earliest",
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
            fetch_max_wait_ms=100,
            max_poll_interval_ms=300_000,
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def poll(self, *, max_records: int, timeout_s: float) -> list[IncomingRecord]:
        batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        return [incoming_record(m, self._namespace) for messages in batches.values() for m in messages]

    async def commit(self, positions: dict[TP, int]) -> bool:
        try:
            await self._consumer.commit({self._tp(partition): o for partition, o in positions.items()})
        except (CommitFailedError, IllegalStateError) as error:
            # The group rebalanced under us: the batch will be delivered again and the inbox
            # absorbs it (aiokafka's known sharp edge).
            log.warning("kafka.commit_failed", error=str(error))
            return False
        return True

    def _tp(self, partition: TP) -> TopicPartition:
        return TopicPartition(self._namespace + partition[0], partition[1])

    def seek(self, partition: TP, offset: int) -> None:
        self._consumer.seek(self._tp(partition), offset)

    def pause(self, partitions: Sequence[TP]) -> None:
        assigned = self._consumer.assignment()
        self._consumer.pause(*(tp for tp in map(self._tp, partitions) if tp in assigned))

    def resume(self, partitions: Sequence[TP]) -> None:
        self._consumer.resume(*map(self._tp, partitions))

    async def lag(self, *, exclude: Collection[TP] = ()) -> int:
        skipped = {self._tp(partition) for partition in exclude}
        assigned = [tp for tp in self._consumer.assignment() if tp not in skipped]
        if not assigned:
            return 0
        ends = await self._consumer.end_offsets(assigned)
        return sum(max(0, ends[tp] - await self._consumer.position(tp)) for tp in assigned)

    def is_assigned(self) -> bool:
        return bool(self._consumer.assignment())


class KafkaTransport:
    name = "kafka"

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        namespace: str = "",
        policy: TopicPolicy | None = None,
        batching: ProducerBatching | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.namespace = namespace
        self.topic_policy = policy or TopicPolicy()
        self.batching = batching or ProducerBatching()

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        """Creates missing topics as the policy says (or refuses); reports drift of existing ones."""
        await KafkaTopics(self.bootstrap_servers, namespace=self.namespace, policy=self.topic_policy).ensure(topics)

    def producer(self, *, client_id: str) -> KafkaProducer:
        return KafkaProducer(self.bootstrap_servers, client_id, self.namespace, self.batching)

    def consumer(self, *, group_id: str, topics: Sequence[str]) -> KafkaConsumer:
        return KafkaConsumer(self.bootstrap_servers, group_id, topics, self.namespace)

    async def close(self) -> None:
        return None
