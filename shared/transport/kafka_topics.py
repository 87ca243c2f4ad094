"""Kafka topics as the services need them: partitions, replicas and retention come from settings.

A service creates the topics that are missing when it starts, with the configured partitions,
replication factor, `min.insync.replicas` and `retention.ms` (dead-letter topics get their own,
longer retention). Outside development it refuses to create a topic with fewer than 3 replicas or
`min.insync.replicas` below 2, and with VUONMINH_TOPIC_AUTO_CREATE=false it creates nothing and
leaves that to an admin step (`vuonminh topics create`). Existing topics are never altered by a
service: more partitions would move keys to other partitions and break per-key order, and
retention is the operator's call; what differs from the settings is reported instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from vuonminh.shared.settings import Settings

log = structlog.get_logger(__name__)

DAY_MS = 86_400_000
PRODUCTION_MIN_REPLICAS = 3
PRODUCTION_MIN_INSYNC = 2
MANAGED_CONFIGS = ("retention.ms", "min.insync.replicas")
_TOPIC_ALREADY_EXISTS = 36
METADATA_WAIT_S = 5.0


class TopicPolicyError(RuntimeError):
    """The topics cannot be created as configured; starting anyway would run on unsafe topics."""


def is_dead_letter_topic(topic: str) -> bool:
    return topic.endswith(".dlq")


@dataclass(frozen=True)
class TopicPolicy:
    partitions: int = 6
    replication_factor: int = 1
    min_insync_replicas: int = 1
    retention_ms: int = 7 * DAY_MS
    dlq_retention_ms: int = 30 * DAY_MS
    environment: str = "development"
    auto_create: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicPolicy:
        return cls(
            partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            min_insync_replicas=settings.topic_min_insync_replicas,
            retention_ms=int(settings.topic_retention_days * DAY_MS),
            dlq_retention_ms=int(settings.dlq_retention_days * DAY_MS),
            environment=settings.environment,
            auto_create=settings.topic_auto_create,
        )

    def configs_for(self, topic: str) -> dict[str, str]:
        retention = self.dlq_retention_ms if is_dead_letter_topic(topic) else self.retention_ms
        return {"retention.ms": str(retention), "min.insync.replicas": str(self.min_insync_replicas)}

    def problems(self) -> list[str]:
        """Why topics made by this policy would be unsafe here ([] when they are fine)."""
        found = []
        if self.min_insync_replicas > self.replication_factor:
            found.append(
                f"VUONMINH_TOPIC_MIN_INSYNC_REPLICAS={self.min_insync_replicas} exceeds "
                f"VUONMINH_TOPIC_REPLICATION_FACTOR={self.replication_factor}: no acks=all write could succeed"
            )
        if self.environment != "development":
            if self.replication_factor < PRODUCTION_MIN_REPLICAS:
                found.append(
                    f"VUONMINH_TOPIC_REPLICATION_FACTOR={self.replication_factor} is below "
                    f"{PRODUCTION_MIN_REPLICAS}: one broker lost would lose acknowledged orders"
                )
            if self.min_insync_replicas < PRODUCTION_MIN_INSYNC:
                found.append(
                    f"VUONMINH_TOPIC_MIN_INSYNC_REPLICAS={self.min_insync_replicas} is below "
                    f"{PRODUCTION_MIN_INSYNC}: acks=all would not wait for a second copy"
                )
        return found

    def check_can_create(self, topics: Sequence[str]) -> None:
        problems = self.problems()
        if problems:
            raise TopicPolicyError(
                f"refusing to create topics {', '.join(topics)} in {self.environment}: "
                + "; ".join(problems)
                + ". Set the replication settings for this cluster, or create the topics in an admin step "
                "(`vuonminh topics create` with the right settings, or your platform's topic resources) "
                "and set VUONMINH_TOPIC_AUTO_CREATE=false."
            )

    def check_at_start(self, namespace: str = "") -> None:
        """Refuses at once, before Kafka is reached, a policy a service could create topics with
        (auto-creation on) but must not; with auto-creation off, the admin step decides."""
        if self.auto_create:
            self.check_can_create([f"{namespace}*"])


@dataclass
class TopicState:
    """A topic as the cluster has it, next to what the policy wants."""

    name: str  # without the namespace
    exists: bool
    partitions: int | None = None
    replication_factor: int | None = None
    configs: dict[str, str] = field(default_factory=dict)

    def drift(self, policy: TopicPolicy) -> list[str]:
        if not self.exists:
            return ["missing"]
        found = []
        if self.partitions != policy.partitions:
            found.append(f"partitions {self.partitions} (settings: {policy.partitions})")
        if self.replication_factor != policy.replication_factor:
            found.append(f"replication factor {self.replication_factor} (settings: {policy.replication_factor})")
        for name, wanted in policy.configs_for(self.name).items():
            if self.configs.get(name) != wanted:
                found.append(f"{name} {self.configs.get(name)} (settings: {wanted})")
        return found


class KafkaTopics:
    """The admin side of the services' topics, under a namespace prefix."""

    def __init__(self, bootstrap_servers: str, *, namespace: str = "", policy: TopicPolicy | None = None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.namespace = namespace
        self.policy = policy or TopicPolicy()

    async def ensure(self, topics: Sequence[str]) -> list[str]:
        """Creates the missing topics (or refuses, see the module); returns the names created."""
        async with self._admin() as admin:
            existing = set(await admin.list_topics())
            missing = [t for t in topics if self.namespace + t not in existing]
            if missing and not self.policy.auto_create:
                raise TopicPolicyError(
                    f"topics {', '.join(self.namespace + t for t in missing)} do not exist and "
                    "VUONMINH_TOPIC_AUTO_CREATE=false: create them first (`vuonminh topics create`)"
                )
            created = await self._create(admin, missing) if missing else []
            # Topics another process created meanwhile are checked like the ones that were there.
            present = [t for t in topics if t not in created]
            if present:
                states = await self._describe(admin, present)
                drift = {s.name: s.drift(self.policy) for s in states if s.drift(self.policy)}
                if drift:
                    # Never altered here: see the module docstring. `vuonminh topics describe` shows it.
                    log.warning("kafka.topic_drift", namespace=self.namespace, topics=drift)
        return created

    async def create(self, topics: Sequence[str]) -> tuple[list[str], list[TopicState]]:
        """The operator's admin step: creates what is missing; returns (created, existing states)."""
        async with self._admin() as admin:
            existing = set(await admin.list_topics())
            missing = [t for t in topics if self.namespace + t not in existing]
            created = await self._create(admin, missing) if missing else []
            present = [t for t in topics if t not in created]
            return created, await self._describe(admin, present) if present else []

    async def describe(self, topics: Sequence[str]) -> list[TopicState]:
        async with self._admin() as admin:
            existing = set(await admin.list_topics())
            present = [t for t in topics if self.namespace + t in existing]
            states = {s.name: s for s in await self._describe(admin, present)} if present else {}
            return [states.get(t, TopicState(name=t, exists=False)) for t in topics]

    async def _create(self, admin: AIOKafkaAdminClient, topics: Sequence[str]) -> list[str]:
        self.policy.check_can_create([self.namespace + t for t in topics])
        response = await admin.create_topics(
            [
                NewTopic(
                    name=self.namespace + t,
                    num_partitions=self.policy.partitions,
                    replication_factor=self.policy.replication_factor,
                    topic_configs=self.policy.configs_for(t),
                )
                for t in topics
            ]
        )
        created, failures = [], []
        for name, error_code, error_message in response.topic_errors:
            if error_code == 0:
                created.append(name)
            elif error_code != _TOPIC_ALREADY_EXISTS:  # another service was first: fine
                failures.append(f"{name}: {error_message or f'error code {error_code}'}")
        if failures:
            raise TopicPolicyError("the broker refused to create topics: " + "; ".join(failures))
        if created:
            log.info(
                "kafka.topics_created",
                topics=created,
                partitions=self.policy.partitions,
                replication_factor=self.policy.replication_factor,
                min_insync_replicas=self.policy.min_insync_replicas,
            )
        return [name.removeprefix(self.namespace) for name in created]

    async def _describe(self, admin: AIOKafkaAdminClient, topics: Sequence[str]) -> list[TopicState]:
        full = [self.namespace + t for t in topics]
        metadata = await self._metadata(admin, full)
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, dict.fromkeys(MANAGED_CONFIGS)) for name in full]
        )
        configs: dict[str, dict[str, str]] = {}
        for response in responses:
            for resource in response.to_object()["resources"]:
                configs[resource["resource_name"]] = {
                    entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]
                }
        states = []
        for topic, name in zip(topics, full, strict=True):
            partitions = metadata.get(name, {}).get("partitions") or []
            states.append(
                TopicState(
                    name=topic,
                    exists=bool(partitions),
                    partitions=len(partitions) or None,
                    replication_factor=max((len(p["replicas"]) for p in partitions), default=None),
                    configs=configs.get(name, {}),
                )
            )
        return states

    @staticmethod
    async def _metadata(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, dict]:
        """Topic metadata; a topic created a moment ago may show no partitions yet, so that is
        waited out for a few seconds rather than reported as missing."""
        deadline = asyncio.get_running_loop().time() + METADATA_WAIT_S
        while True:
            metadata = {t["topic"]: t for t in await admin.describe_topics(names)}
            settled = all(metadata.get(name, {}).get("partitions") for name in names)
            if settled or asyncio.get_running_loop().time() > deadline:
                return metadata
            await asyncio.sleep(0.2)

    @asynccontextmanager
    async def _admin(self) -> AsyncIterator[AIOKafkaAdminClient]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        await admin.start()
        try:
            yield admin
        finally:
            await admin.close()
