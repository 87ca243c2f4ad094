"""Topics on the real broker: created with the configured partitions, replicas, min.insync.replicas
and retention (dead-letter topics kept longer), drift reported, and refused outside development."""

import asyncio
import os
import sys
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from structlog.testing import capture_logs

from vuonminh.shared.events import ALL_TOPICS
from vuonminh.shared.transport.kafka_topics import DAY_MS, KafkaTopics, TopicPolicy, TopicPolicyError
from vuonminh.wiring.testing import VuonminhProcess, eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def namespace(kafka_bootstrap):
    """A namespace of the test's own; its topics are deleted afterwards (the broker is shared)."""
    prefix = f"test-topics-{uuid.uuid4().hex[:8]}."
    yield prefix
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


async def _broker_view(bootstrap: str, names: list[str], *, expect_all: bool = True) -> dict[str, dict]:
    """What the broker itself says, independent of the code under test."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:

        async def described() -> dict | None:
            # A topic created a moment ago may not show its partitions yet.
            found = {t["topic"]: t for t in await admin.describe_topics(names)}
            return found if not expect_all or all(found.get(n, {}).get("partitions") for n in names) else None

        topics = await eventually(described, timeout_s=15, interval_s=0.2)
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        configs = {
            r["resource_name"]: {e["config_names"]: e["config_value"] for e in r["config_entries"]}
            for r in response.to_object()["resources"]
        }
    finally:
        await admin.close()
    return {
        name: {
            "partitions": len(topics[name]["partitions"]),
            "replicas": {len(p["replicas"]) for p in topics[name]["partitions"]},
            "retention.ms": configs[name]["retention.ms"],
            "min.insync.replicas": configs[name]["min.insync.replicas"],
        }
        for name in names
        if topics.get(name, {}).get("partitions")
    }


async def test_topics_are_created_with_the_configured_partitions_and_retention(kafka_bootstrap, namespace):
    policy = TopicPolicy(partitions=2, replication_factor=1, min_insync_replicas=1, retention_ms=3 * DAY_MS)
    topics = KafkaTopics(kafka_bootstrap, namespace=namespace, policy=policy)

    created = await topics.ensure(ALL_TOPICS)

    assert sorted(created) == sorted(ALL_TOPICS)
    view = await _broker_view(kafka_bootstrap, [namespace + t for t in ALL_TOPICS])
    assert view[namespace + "orders.intake"] == {
        "partitions": 2,
        "replicas": {1},
        "retention.ms": str(3 * DAY_MS),
        "min.insync.replicas": "1",
    }
    # Dead-letter topics keep their records 30 days by default, whatever ordinary topics keep.
    assert view[namespace + "orders.intake.dlq"]["retention.ms"] == str(30 * DAY_MS)
    assert {view[namespace + t]["retention.ms"] for t in ALL_TOPICS if t.endswith(".dlq")} == {str(30 * DAY_MS)}
    assert all(state.drift(policy) == [] for state in await topics.describe(ALL_TOPICS))


async def test_existing_topics_are_left_alone_and_their_drift_is_logged(kafka_bootstrap, namespace):
    await KafkaTopics(kafka_bootstrap, namespace=namespace, policy=TopicPolicy(partitions=2)).ensure(ALL_TOPICS)
    wanted = TopicPolicy(partitions=3, retention_ms=1 * DAY_MS)

    with capture_logs() as logs:
        created = await KafkaTopics(kafka_bootstrap, namespace=namespace, policy=wanted).ensure(ALL_TOPICS)

    assert created == []
    (drift,) = [entry for entry in logs if entry["event"] == "kafka.topic_drift"]
    assert drift["log_level"] == "warning"
    assert drift["topics"]["orders.orders"] == [
        "partitions 2 (settings: 3)",
        f"retention.ms {7 * DAY_MS} (settings: {DAY_MS})",
    ]
    assert drift["topics"]["orders.orders.dlq"] == ["partitions 2 (settings: 3)"]  # DLQ retention agrees
    view = await _broker_view(kafka_bootstrap, [namespace + "orders.orders"])
    assert view[namespace + "orders.orders"]["partitions"] == 2  # never changed by a service


async def test_production_refuses_topics_with_fewer_than_three_replicas(kafka_bootstrap, namespace):
    production = TopicPolicy(environment="production", replication_factor=1, min_insync_replicas=1)

    with pytest.raises(TopicPolicyError) as refused:
        await KafkaTopics(kafka_bootstrap, namespace=namespace, policy=production).ensure(ALL_TOPICS)

    message = str(refused.value)
    assert "refusing to create topics" in message and "in production" in message
    assert "VUONMINH_TOPIC_REPLICATION_FACTOR=1 is below 3" in message
    assert "VUONMINH_TOPIC_MIN_INSYNC_REPLICAS=1 is below 2" in message
    assert await _broker_view(kafka_bootstrap, [namespace + t for t in ALL_TOPICS], expect_all=False) == {}


async def test_a_replication_factor_the_cluster_cannot_meet_is_a_clear_error(kafka_bootstrap, namespace):
    # The dev broker is alone: three replicas cannot be placed, and the broker's reason is shown.
    policy = TopicPolicy(environment="production", replication_factor=3, min_insync_replicas=2)

    with pytest.raises(TopicPolicyError, match="replication factor of 3 cannot be reached"):
        await KafkaTopics(kafka_bootstrap, namespace=namespace, policy=policy).ensure(["orders.intake"])


async def test_a_production_service_stops_at_start_with_the_reason(service_env, namespace, tmp_path):
    env = {**service_env, "VUONMINH_KAFKA_NAMESPACE": namespace, "VUONMINH_ENVIRONMENT": "production"}
    catalog = VuonminhProcess(["serve", "catalog"], env=env, log_path=tmp_path / "catalog.log").start()
    try:
        assert await catalog.wait_exit(timeout_s=60) != 0
    finally:
        catalog.kill()
    assert "refusing to create topics" in catalog.log_tail(80)
    assert "VUONMINH_TOPIC_REPLICATION_FACTOR=1 is below 3" in catalog.log_tail(80)


async def test_without_auto_creation_the_admin_step_creates_the_topics(service_env, namespace, kafka_bootstrap):
    env = {
        **os.environ,
        **service_env,
        "VUONMINH_KAFKA_NAMESPACE": namespace,
        "VUONMINH_TOPIC_AUTO_CREATE": "false",
        "VUONMINH_TOPIC_PARTITIONS": "2",
    }
    manual = TopicPolicy(auto_create=False, partitions=2)
    with pytest.raises(TopicPolicyError, match="VUONMINH_TOPIC_AUTO_CREATE=false: create them first"):
        await KafkaTopics(kafka_bootstrap, namespace=namespace, policy=manual).ensure(ALL_TOPICS)

    async def vuonminh(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vuonminh.wiring.cli", *args, env=env, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await process.communicate()
        return process.returncode, out.decode()

    code, out = await vuonminh("topics", "describe", "--check")
    assert code == 1 and f"{namespace}orders.intake" in out and "missing" in out
    code, out = await vuonminh("topics", "create")
    assert code == 0 and f"created {namespace}orders.intake.dlq: 2 partitions, 1 replicas" in out
    assert "retention 30 d" in out
    code, out = await vuonminh("topics", "describe", "--check")
    assert code == 0 and "missing" not in out and "differs" not in out
    assert await KafkaTopics(kafka_bootstrap, namespace=namespace, policy=manual).ensure(ALL_TOPICS) == []
