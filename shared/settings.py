"""Process settings, read from the environment (and a .env file when present)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str | None = Field(default=None, validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS"))
    # A PostgreSQL server. Each service keeps its own schema on it (named after the service).
    database_url: str | None = Field(default=None, validation_alias=AliasChoices("DATABASE_URL"))
    # Embedded mode keeps one SQLite file per service plus the local log here.
    data_dir: Path = Field(default=Path(".vuonminh"), validation_alias="VUONMINH_DATA_DIR")
    # Deprecated: one secret for every shop of the direct channel, used only for shops that are
    # not registered (`vuonminh shops add`) and only when set explicitly.
    direct_secret: str | None = Field(default=None, validation_alias="VUONMINH_DIRECT_SECRET")
    # Fernet key(s) that encrypt shops' webhook secrets at rest, comma-separated: the first
    # encrypts, every one decrypts (key rotation). `vuonminh run` generates one into the data dir.
    secrets_key: str | None = Field(default=None, validation_alias="VUONMINH_SECRETS_KEY")
    # How often orders reloads its in-memory copy of the shops' secrets from its database.
    shop_refresh_s: float = Field(default=30.0, gt=0, validation_alias="VUONMINH_SHOP_REFRESH_S")
    # Webhook intake looks the order up (409 when already stored with other content) for at
    # most this long; when the database is slow or down it skips the check and still accepts.
    intake_lookup_timeout_s: float = Field(default=0.5, gt=0, validation_alias="VUONMINH_INTAKE_LOOKUP_TIMEOUT_S")
    # An order naming a SKU or seller that orders' copy of the catalog lacks waits this long for
    # catalog's event, then is rejected; the sweep that decides it runs every catalog_sweep_s.
    catalog_wait_s: float = Field(default=3600.0, ge=0, validation_alias="VUONMINH_CATALOG_WAIT_S")
    catalog_sweep_s: float = Field(default=30.0, gt=0, validation_alias="VUONMINH_CATALOG_SWEEP_S")
    # Reject webhooks signed longer ago than this (replay window), or this far in the future.
    signature_tolerance_s: int = Field(default=300, validation_alias="VUONMINH_SIGNATURE_TOLERANCE_S")
    # Prefix of every Kafka topic and consumer group: lets environments (or test runs) share
    # one cluster without seeing each other's events.
    kafka_namespace: str = Field(default="", validation_alias="VUONMINH_KAFKA_NAMESPACE")
    topic_partitions: int = Field(default=6, validation_alias="VUONMINH_TOPIC_PARTITIONS")
    # Producer batching (shared/transport/kafka.py, ProducerBatching; docs/operations.md).
    kafka_linger_ms: int = Field(default=5, ge=0, le=1000, validation_alias="VUONMINH_KAFKA_LINGER_MS")
    kafka_batch_bytes: int = Field(default=64 * 1024, ge=1024, validation_alias="VUONMINH_KAFKA_BATCH_BYTES")
    kafka_compression: Literal["none", "gzip"] = Field(default="none", validation_alias="VUONMINH_KAFKA_COMPRESSION")
    log_level: str = Field(default="INFO", validation_alias="VUONMINH_LOG_LEVEL")
    log_json: bool = Field(default=False, validation_alias="VUONMINH_LOG_JSON")
    # Handler attempts before a message is parked on the dead-letter topic.
    max_handler_attempts: int = Field(default=3, validation_alias="VUONMINH_MAX_HANDLER_ATTEMPTS")
    # Fault injection for the tests that kill processes: the process dies (SIGKILL) the first
    # time it reaches this named point. Never set in production.
    crash_point: str | None = Field(default=None, validation_alias="VUONMINH_CRASH_POINT")
    # Requests one process serves at once; beyond it a request gets 503 + Retry-After at once
    # (shared/backpressure.py). Bounds memory and, embedded, keeps the consumers' share of the loop.
    max_in_flight: int = Field(default=256, ge=1, validation_alias="VUONMINH_MAX_IN_FLIGHT")
    # Longest wait for the log's acknowledgement of a webhook before answering 503 + Retry-After.
    intake_timeout_s: float = Field(default=2.0, gt=0, validation_alias="VUONMINH_INTAKE_TIMEOUT_S")
    # How often a consumer holding a partition at an event type newer than its code tries again.
    unknown_type_hold_s: float = Field(default=30.0, gt=0, validation_alias="VUONMINH_UNKNOWN_TYPE_HOLD_S")
    # A consumer is reported unready when its poll loop has not turned for this long.
    consumer_stall_s: float = Field(default=60.0, validation_alias="VUONMINH_CONSUMER_STALL_S")

    # -- access (shared/auth.py, docs/architecture.md "Access") -----------------------------------
    # The private key that signs tokens, `kid:<base64url Ed25519 seed>`: only where tokens are
    # issued (`vuonminh tokens create`, the embedded run, which keeps one in the data dir).
    token_signing_key: str | None = Field(default=None, validation_alias="VUONMINH_TOKEN_SIGNING_KEY")
    # Public keys tokens are checked with, `kid:<base64url>` comma-separated: during a rotation the
    # new and the old one. The signing key's own public key is always accepted.
    token_verify_keys: str | None = Field(default=None, validation_alias="VUONMINH_TOKEN_VERIFY_KEYS")
    # How often the API reloads its in-memory copy of API keys and revocations from its database.
    credentials_refresh_s: float = Field(default=5.0, gt=0, validation_alias="VUONMINH_CREDENTIALS_REFRESH_S")
    # Request rates on every route that declares its callers (not the signed webhooks), counted per
    # process: per credential and per client IP ("off" disables one). Behind a proxy, run uvicorn
    # with its forwarded-headers option so the client IP is the caller's.
    rate_limit_per_key: str = Field(default="600/minute", validation_alias="VUONMINH_RATE_LIMIT_PER_KEY")
    rate_limit_per_ip: str = Field(default="1200/minute", validation_alias="VUONMINH_RATE_LIMIT_PER_IP")
    # /metrics and the API docs (/docs, /redoc, /openapi.json) answer only the operator unless set.
    public_api_docs: bool = Field(default=False, validation_alias="VUONMINH_PUBLIC_API_DOCS")
    public_metrics: bool = Field(default=False, validation_alias="VUONMINH_PUBLIC_METRICS")
    # Serve /metrics also on this port, without credentials (for an in-cluster Prometheus).
    metrics_port: int | None = Field(default=None, validation_alias="VUONMINH_METRICS_PORT")

    # -- topics (docs/operations.md, "Topics") --------------------------------------------------
    # Outside development no topic is created with fewer than 3 replicas or
    # min.insync.replicas below 2: a service refuses at start, and so does `vuonminh topics create`.
    environment: Literal["development", "production"] = Field(
        default="development", validation_alias="VUONMINH_ENVIRONMENT"
    )
    topic_replication_factor: int = Field(default=1, ge=1, validation_alias="VUONMINH_TOPIC_REPLICATION_FACTOR")
    topic_min_insync_replicas: int = Field(default=1, ge=1, validation_alias="VUONMINH_TOPIC_MIN_INSYNC_REPLICAS")
    topic_retention_days: float = Field(default=7.0, gt=0, validation_alias="VUONMINH_TOPIC_RETENTION_DAYS")
    # Dead-letter topics are kept long: an operator has this long to look at a record and replay it.
    dlq_retention_days: float = Field(default=30.0, gt=0, validation_alias="VUONMINH_DLQ_RETENTION_DAYS")
    # false: services never create topics; an admin step does (`vuonminh topics create`).
    topic_auto_create: bool = Field(default=True, validation_alias="VUONMINH_TOPIC_AUTO_CREATE")

    # -- retention of what the services keep themselves (shared/retention.py) ------------------
    janitor_interval_s: float = Field(default=300.0, gt=0, validation_alias="VUONMINH_JANITOR_INTERVAL_S")
    # Published outbox rows are kept this long (to see what was sent), then deleted.
    outbox_retention_days: float = Field(default=7.0, ge=0, validation_alias="VUONMINH_OUTBOX_RETENTION_DAYS")
    # processed_events rows (the inbox's memory of event ids) are kept this long. It must outlast
    # any redelivery of an event: a dead-letter replay (up to VUONMINH_DLQ_RETENTION_DAYS after
    # the failure) reaches every group of the topic again, and a rewind re-reads what the topic
    # still holds (VUONMINH_TOPIC_RETENTION_DAYS).
    dedupe_window_days: float = Field(default=45.0, ge=0, validation_alias="VUONMINH_DEDUPE_WINDOW_DAYS")
    # Embedded mode: a cap on the local log file; appends beyond it fail (webhooks get 503)
    # until the janitor has freed space or the cap is raised. Unset: the disk is the limit.
    # Keep it far above one outbox relay send (up to 200 events): hundreds of MB in practice.
    local_log_max_mb: float | None = Field(default=None, ge=1, validation_alias="VUONMINH_LOCAL_LOG_MAX_MB")
    # The host of the GS1 Digital Link URIs printed on lots' QR codes (https://<domain>/01/<GTIN>/10/<lot>):
    # the public address that serves catalog's trace pages.
    trace_domain: str = Field(
        default="truyxuat.vuonminh.vn",
        pattern=r"^[A-Za-z0-9.-]+(:\d+)?$",
        validation_alias="VUONMINH_TRACE_DOMAIN",
    )

    # -- analytics: who counts as a core seller (docs/architecture.md, "Analytics") -------------
    # At least this many orders a day on at least `min_days` of the last `window_days` days.
    core_seller_min_orders: int = Field(default=20, ge=1, validation_alias="VUONMINH_CORE_SELLER_MIN_ORDERS")
    core_seller_window_days: int = Field(default=7, ge=1, le=366, validation_alias="VUONMINH_CORE_SELLER_WINDOW_DAYS")
    core_seller_min_days: int = Field(default=5, ge=1, validation_alias="VUONMINH_CORE_SELLER_MIN_DAYS")


@lru_cache
def get_settings() -> Settings:
    return Settings()
