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
    ["outcome"],  # found | not_found | skipped (database recently unreachable) | failed (timeout or error)
)
FALLBACK_SECRET_USED = Counter(
    "vuonminh_webhook_fallback_secret_total",
    "Webhooks of unregistered shops verified with the deprecated VUONMINH_DIRECT_SECRET",
    ["channel"],
)
