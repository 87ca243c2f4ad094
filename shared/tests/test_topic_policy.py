"""Topic settings: what a service may create, decided before Kafka is reached."""

import pytest

from vuonminh.shared.settings import Settings
from vuonminh.shared.transport.kafka_topics import DAY_MS, TopicPolicy, TopicPolicyError, TopicState


def test_settings_give_the_topic_configs_with_longer_dead_letter_retention():
    policy = TopicPolicy.from_settings(
        Settings(topic_partitions=12, topic_retention_days=3, dlq_retention_days=30, topic_min_insync_replicas=1)
    )

    assert policy.partitions == 12
    assert policy.configs_for("orders.intake") == {"retention.ms": str(3 * DAY_MS), "min.insync.replicas": "1"}
    assert policy.configs_for("orders.intake.dlq")["retention.ms"] == str(30 * DAY_MS)


def test_production_refuses_at_start_to_create_under_replicated_topics():
    with pytest.raises(TopicPolicyError, match="REPLICATION_FACTOR=1 is below 3.*MIN_INSYNC_REPLICAS=1 is below 2"):
        TopicPolicy(environment="production").check_at_start("prod.")

    TopicPolicy(environment="production", replication_factor=3, min_insync_replicas=2).check_at_start()
    TopicPolicy(environment="production", auto_create=False).check_at_start()  # the admin step decides
    TopicPolicy(environment="development").check_at_start()


def test_min_insync_replicas_above_the_replicas_is_refused_everywhere():
    with pytest.raises(TopicPolicyError, match="MIN_INSYNC_REPLICAS=2 exceeds VUONMINH_TOPIC_REPLICATION_FACTOR=1"):
        TopicPolicy(min_insync_replicas=2).check_at_start()


def test_a_topic_that_differs_from_the_settings_says_how():
    policy = TopicPolicy(partitions=6, retention_ms=7 * DAY_MS)
    state = TopicState(
        name="orders.orders",
        exists=True,
        partitions=3,
        replication_factor=1,
        configs={"retention.ms": str(DAY_MS), "min.insync.replicas": "1"},
    )

    assert state.drift(policy) == ["partitions 3 (settings: 6)", f"retention.ms {DAY_MS} (settings: {7 * DAY_MS})"]
    assert TopicState(name="orders.orders", exists=False).drift(policy) == ["missing"]
