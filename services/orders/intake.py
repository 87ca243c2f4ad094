"""Webhook intake: an accepted order is appended to the intake topic, and nothing else.

The log is the system of record for intake, so there is no database write (and no outbox)
on the request path: the reply waits only for the durable append, and a livestream spike
queues in the log while the consumer works through it.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid

from vuonminh.orders.models import DirectOrderWebhook
from vuonminh.shared.events import Envelope, OrderReceived
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.transport import LogProducer

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


def intake_envelope(event: OrderReceived, raw_body: bytes) -> Envelope:
    # A retried delivery carries the same body, hence the same event id: the consumer's inbox
    # drops it without even looking at the order.
    digest = hashlib.sha256(raw_body).hexdigest()
    event_id = str(uuid.uuid5(_INTAKE_EVENT_NAMESPACE, f"{event.aggregate_id()}:{digest}"))
    return Envelope.new(event, source="/vuonminh/orders/webhooks/direct", event_id=event_id)


async def accept(producer: LogProducer, envelope: Envelope, *, timeout_s: float) -> None:
    """Appends the order to the log; raises TimeoutError past `timeout_s`, so the shop hears 503
    in bounded time instead of waiting on a broker that is down (the record may still land: its
    event id makes the shop's retry a duplicate the consumer drops)."""
    async with asyncio.timeout(timeout_s):
        await producer.send([envelope.to_record()])
