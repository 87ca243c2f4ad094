"""Prometheus metrics common to every service (served at /metrics).

deploy/grafana/ and deploy/prometheus/ read these names (tests/test_signals.py checks that every
metric they use is defined here or in a service's metrics module): rename one, rename it there.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "vuonminh_events_consumed_total",
    "Events taken from the log by a consumer group, by outcome",
    ["group", "event_type", "outcome"],  # outcome: applied | duplicate | ignored | dead_lettered | held
)
HELD_PARTITIONS = Gauge(
    "vuonminh_consumer_held_partitions",
    "Partitions a consumer holds at an event type newer than its code (alert: finish the deploy)",
    ["group", "topic"],
)
HANDLER_FAILURES = Counter(
    "vuonminh_handler_failures_total", "Handler attempts that raised", ["group", "event_type", "kind"]
)
OUTBOX_PUBLISHED = Counter("vuonminh_outbox_published_total", "Outbox rows sent to the log", ["service"])
OUTBOX_PARKED = Counter(
    "vuonminh_outbox_parked_total", "Outbox rows the log refused for good, set aside so the rest flow", ["service"]
)
OUTBOX_PENDING = Gauge(
    "vuonminh_outbox_pending", "Outbox rows not yet sent (parked ones aside), measured by the relay", ["service"]
)
OUTBOX_OLDEST_AGE = Gauge(
    "vuonminh_outbox_oldest_unsent_age_seconds",
    "Age of the oldest outbox row not yet sent (0 when none waits): grows when the relay is stuck",
    ["service"],
)
CONSUMER_LAG = Gauge(
    "vuonminh_consumer_lag",
    "Records on this member's assigned partitions not yet fetched (sum over a group's members = group lag)",
    ["group"],
)
WEBHOOKS = Counter("vuonminh_webhooks_total", "Webhook deliveries by channel and HTTP status", ["channel", "status"])
WEBHOOK_LATENCY = Histogram(
    "vuonminh_webhook_seconds",
    "Time from request to reply, including the durable append to the log",
    ["channel"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
DEAD_LETTERED = Counter(
    "vuonminh_dead_lettered_total",
    "Records parked on a dead-letter topic, by consumer group and the topic they came from",
    ["group", "topic"],
)
RETENTION_DELETED = Counter(
    "vuonminh_retention_deleted_total",
    "Rows and records deleted by retention, by store (local_log, outbox, processed_events) and owner",
    ["store", "owner"],  # owner: the service, or the topic for the local log
)
LOCAL_LOG_BYTES = Gauge(
    "vuonminh_local_log_bytes", "Size of the embedded local log on disk, at the last retention pass"
)


# -- the outside: carriers' status callbacks (platform API calls: services/orders/metrics.py) -----
CARRIER_CALLBACKS = Counter(
    "vuonminh_carrier_callbacks_total",
    "Status callbacks received from carriers, by result",
    ["carrier", "result"],  # result: ok | duplicate | bad_signature | invalid | error
)


def record_carrier_callback(carrier: str, result: str) -> None:
    """Counts one carrier callback: `result` is ok, duplicate, bad_signature, invalid or error."""
    CARRIER_CALLBACKS.labels(carrier, result).inc()
