"""Webhook intake: an accepted order is appended to the intake topic, and nothing else.

The log is the system of record for intake, so there is no database write (and no outbox)
on the request path: the reply waits only for the durable append, and a livestream spike
queues in the log while the consumer works through it. The one read, the look-up that answers
409 to a placed order sent again with other content, is bounded by a short timeout and skipped
while the database is unreachable: the consumer then records the conflict instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from datetime import datetime, timedelta

import structlog
from sqlmodel import col, select

from vuonminh.orders import domain
from vuonminh.orders.handlers import find_order, received_from
from vuonminh.orders.metrics import INTAKE_FINAL_ORDERS, INTAKE_FINAL_ORDERS_COVERED, INTAKE_LOOKUPS
from vuonminh.orders.models import DirectOrderWebhook, Order
from vuonminh.shared import db
from vuonminh.shared.events import Envelope, OrderReceived, PlatformOrderNotified
from vuonminh.shared.events.orders import order_key
from vuonminh.shared.runtime import ServiceRuntime
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.transport import LogProducer

log = structlog.get_logger(__name__)

_INTAKE_EVENT_NAMESPACE = uuid.UUID("0b7d4c52-7c1e-4b0e-8f6a-4d7f0f1e2a9c")


def order_received(webhook: DirectOrderWebhook) -> OrderReceived:
    return OrderReceived(
        channel="direct",
        shop_id=webhook.shop_id,
        order_id=webhook.order_id,
        placed_at=webhook.placed_at,
        livestream_id=webhook.livestream_id,
        buyer=webhook.buyer,
        items=tuple(webhook.items),
        payment_method=webhook.payment.method,
        received_at=utc_now(),
    )


def intake_envelope(event: OrderReceived, raw_body: bytes, *, webhook_id: str | None = None) -> Envelope:
    # A retried delivery has the same webhook-id (Standard Webhooks) or, for the deprecated
    # signature, the same body: hence the same event id, and the consumer's inbox drops it
    # without even looking at the order.
    if webhook_id is not None:
        identity = f"{event.aggregate_id()}:webhook-id:{webhook_id}"
    else:
        identity = f"{event.aggregate_id()}:{hashlib.sha256(raw_body).hexdigest()}"
    event_id = str(uuid.uuid5(_INTAKE_EVENT_NAMESPACE, identity))
    return Envelope.new(event, source="/vuonminh/orders/webhooks/direct", event_id=event_id)


def notification_envelope(event: PlatformOrderNotified, *, slug: str) -> Envelope:
    """A platform's notification; its id derives from the platform's identity of the delivery, so a
    replayed webhook is the same event and changes nothing."""
    event_id = str(uuid.uuid5(_INTAKE_EVENT_NAMESPACE, f"{event.channel}:notification:{event.notification_id}"))
    return Envelope.new(event, source=f"/vuonminh/orders/webhooks/{slug}", event_id=event_id)


async def accept(producer: LogProducer, envelope: Envelope, *, timeout_s: float) -> None:
    """Appends the order to the log; raises TimeoutError past `timeout_s`, so the shop hears 503
    in bounded time instead of waiting on a broker that is down (the record may still land: its
    event id makes the shop's retry a duplicate the consumer drops)."""
    async with asyncio.timeout(timeout_s):
        await producer.send([envelope.to_record()])


def limit_errors(webhook: DirectOrderWebhook) -> list[dict]:
    """422 details, in pydantic's shape, for amounts beyond what the events and columns hold."""
    return [
        {"loc": list(problem.loc), "msg": problem.message, "type": "limit"}
        for problem in domain.limit_problems(webhook.items)
    ]


FINAL_FOR_INTAKE = domain.FINAL_FOR_INTAKE


class StoredOrderLookup:
    """Finds how an incoming order differs from the stored one, without a database round trip for a
    new order: intake keeps in memory the keys of the orders that are final (placed or later), loaded
    by a background loop every VUONMINH_FINAL_ORDERS_REFRESH_S from the orders whose status changed
    since the last pass (orders placed within VUONMINH_FINAL_ORDERS_WINDOW_DAYS at start). Only an order
    whose key is known is read whole, to name what differs: that is rare (a shop resending a placed
    order). An order placed since the last pass is let through, and the consumer records the conflict.

    Until the first load, each look-up is a point read on the driver (see db.PointReader), bounded by
    VUONMINH_INTAKE_LOOKUP_TIMEOUT_S and skipped for a while after a failure.
    """

    PAUSE_AFTER_FAILURE_S = 5.0
    # Transactions stamp status_changed_at before they commit: each pass looks back this far.
    OVERLAP_S = 10.0

    def __init__(self, runtime: ServiceRuntime) -> None:
        self._runtime = runtime
        self.reader = db.PointReader(runtime.engine, schema=runtime.name)
        self._skip_until = 0.0
        self.final_keys: set[str] = set()
        self.loaded = False
        self.covered_until: datetime | None = None  # status changes up to here are in final_keys

    async def refresh(self) -> None:
        """One pass: the orders whose status changed since the last pass join or leave the known keys."""
        now = utc_now()
        settings = self._runtime.settings
        since = (
            self.covered_until - timedelta(seconds=self.OVERLAP_S)
            if self.covered_until is not None
            else now - timedelta(days=settings.final_orders_window_days)
        )
        query = select(Order.channel, Order.shop_id, Order.external_order_id, Order.status).where(
            col(Order.status_changed_at) >= since
        )
        async with db.read_only_session(self._runtime.engine) as session:
            rows = (await session.exec(query)).all()
        for channel, shop_id, order_id, status in rows:
            key = order_key(channel, shop_id, order_id)
            if status in FINAL_FOR_INTAKE:
                self.final_keys.add(key)
            else:
                self.final_keys.discard(key)
        self.covered_until = now
        self.loaded = True
        INTAKE_FINAL_ORDERS.set(len(self.final_keys))
        INTAKE_FINAL_ORDERS_COVERED.set(now.timestamp())

    async def conflict(self, received: OrderReceived) -> tuple[str, list[str]] | None:
        """(our order id, differing fields) when the order is final with other content, else None.

        An order that is not final (rejected, or awaiting the catalog) may be replaced by a new
        version, so only a final one conflicts.
        """
        if self.loaded and received.aggregate_id() not in self.final_keys:
            INTAKE_LOOKUPS.labels("not_final_in_memory").inc()
            return None
        if time.monotonic() < self._skip_until:
            INTAKE_LOOKUPS.labels("skipped").inc()
            return None
        try:
            async with asyncio.timeout(self._runtime.settings.intake_lookup_timeout_s):
                stored = await self.reader.fetch_one(
                    "orders",
                    ("id", "status"),
                    channel=received.channel,
                    shop_id=received.shop_id,
                    external_order_id=received.order_id,
                )
                order = None
                if stored is not None and stored["status"] in FINAL_FOR_INTAKE:
                    async with db.read_only_session(self._runtime.engine) as session:
                        order = await find_order(session, received.channel, received.shop_id, received.order_id)
        except Exception as error:  # slow or down: accept; the consumer records a conflict if there is one
            self._skip_until = time.monotonic() + self.PAUSE_AFTER_FAILURE_S
            INTAKE_LOOKUPS.labels("failed").inc()
            log.warning("orders.intake_lookup_skipped", error=repr(error), paused_s=self.PAUSE_AFTER_FAILURE_S)
            return None
        INTAKE_LOOKUPS.labels("found" if stored else "not_found").inc()
        if order is None:
            return None
        differs = domain.differences(domain.order_content(received_from(order)), domain.order_content(received))
        return (order.id, differs) if differs else None

    async def close(self) -> None:
        await self.reader.close()


def lookup_of(runtime: ServiceRuntime) -> StoredOrderLookup:
    lookup = runtime.state.get("stored_order_lookup")
    if lookup is None:
        lookup = runtime.state["stored_order_lookup"] = StoredOrderLookup(runtime)
    return lookup


async def hold_lookup_connections(runtime: ServiceRuntime) -> None:
    """Background job of the API: keeps intake's keys of final orders fresh (every
    VUONMINH_FINAL_ORDERS_REFRESH_S) and owns the look-up's connections, closed when the service stops."""
    lookup = lookup_of(runtime)
    try:
        while True:
            try:
                await lookup.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database is away: keep the keys we have (the consumer still checks)
                log.warning("orders.final_orders_refresh_failed", error=repr(error))
            await asyncio.sleep(runtime.settings.final_orders_refresh_s)
    finally:
        await lookup.close()
