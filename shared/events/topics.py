"""Kafka topics. The record key is always the id of the aggregate the event is about."""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    CATALOG_SELLERS = "catalog.sellers"  # key: seller_id
    CATALOG_PRODUCTS = "catalog.products"  # key: sku
    CATALOG_RESERVATIONS = "catalog.reservations"  # key: order_id (ours): the stock step of an order's saga
    ORDERS_INTAKE = "orders.intake"  # key: "<channel>:<shop_id>:<shop's order id>"
    # Platform webhooks (order id + status, not the order), before orders fetched the order.
    ORDER_NOTIFICATIONS = "orders.notifications"  # key: as orders.intake
    # Notifications whose fetch kept failing: tried again later, never dropped.
    ORDER_NOTIFICATIONS_RETRY = "orders.notifications.retry"  # key: as orders.intake
    ORDERS = "orders.orders"  # key: order_id (ours)
    LIVESTREAMS = "orders.livestreams"  # key: livestream_id
    SHIPMENTS = "logistics.shipments"  # key: shipment_id
    # One topic per carrier: each partner reads its own create-order requests, in its own format.
    DISPATCH_GHN = "logistics.dispatch.ghn"  # key: shipment_id
    DISPATCH_GHTK = "logistics.dispatch.ghtk"  # key: shipment_id
    DISPATCH_VIETTEL_POST = "logistics.dispatch.viettel_post"  # key: shipment_id
    DISPATCH_VNPOST = "logistics.dispatch.vnpost"  # key: shipment_id
    AUDIT = "access.audit"  # key: "<target type>:<target id>": who wrote what through the APIs


def dead_letter_topic(topic: str) -> str:
    """Where messages from `topic` that no consumer can handle are parked, with the error."""
    return f"{topic}.dlq"


ALL_TOPICS: tuple[str, ...] = tuple(t.value for t in Topic) + tuple(dead_letter_topic(t.value) for t in Topic)
