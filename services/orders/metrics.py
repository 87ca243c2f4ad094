"""orders' own Prometheus metrics (served at /metrics with the common ones)."""

from prometheus_client import Counter, Gauge

ORDER_CONFLICTS = Counter(
    "vuonminh_order_conflicts_total",
    "A shop sent an order id again with other content after the order was placed",
    # detected_by: intake (answered 409) | consumer (recorded on the order, not applied)
    ["channel", "detected_by"],
)
ORDERS_AWAITING_CATALOG = Gauge(
    "vuonminh_orders_awaiting_catalog", "Orders parked until a SKU or seller reaches orders' catalog copy"
)
INTAKE_LOOKUPS = Counter(
    "vuonminh_intake_order_lookups_total",
    "Webhook intake's look-up of the stored order, by outcome",
    # not_final_in_memory (no read: the common case) | found | not_found (point reads before the first load)
    # | skipped (database recently unreachable) | failed (timeout or error)
    ["outcome"],
)
FALLBACK_SECRET_USED = Counter(
    "vuonminh_webhook_fallback_secret_total",
    "Webhooks of unregistered shops verified with the deprecated VUONMINH_DIRECT_SECRET",
    ["channel"],
)
WEBHOOKS_REJECTED = Counter(
    "vuonminh_webhooks_rejected_total",
    "Webhooks refused at intake, nothing appended, by channel and reason",
    ["channel", "reason"],  # signature | not_json | schema | unknown_shop | address | limits | conflict
)
PLATFORM_API_CALLS = Counter(
    "vuonminh_platform_api_calls_total",
    "Requests to the platforms' Open APIs, by channel and outcome",
    ["channel", "outcome"],  # ok | client_error | server_error | throttled | transport_error
)
NOTIFICATIONS = Counter(
    "vuonminh_platform_notifications_total",
    "Platform notifications the fetcher handled, by channel and outcome",
    ["channel", "outcome"],  # fetched | retry_topic | dead_lettered | unknown_shop
)
LEGACY_SIGNATURE_USED = Counter(
    "vuonminh_webhook_legacy_signature_total",
    "Direct webhooks signed with the deprecated X-VuonMinh-Signature instead of Standard Webhooks",
    ["channel"],
)
TOKEN_REFRESHES = Counter(
    "vuonminh_platform_token_refreshes_total",
    "Marketplace shops' access token refreshes, by channel and outcome",
    ["channel", "outcome"],  # refreshed | failed
)
INTAKE_FINAL_ORDERS = Gauge(
    "vuonminh_intake_final_orders", "Keys of final orders intake holds in memory to answer 409 without a read"
)
INTAKE_FINAL_ORDERS_COVERED = Gauge(
    "vuonminh_intake_final_orders_covered_timestamp_seconds",
    "Status changes up to this time are in intake's keys of final orders (unix seconds)",
)
