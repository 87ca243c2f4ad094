"""Dispatch requests for carrier partners without Kafka: each becomes a signed POST to the partner's
endpoint (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`), retried with
growing delays, every attempt kept in the delivery log.

The consumer never calls out: its handler only stages a delivery row in the event's transaction
(exactly once per endpoint and event); a background loop sends what is due. A delivery survives a
restart (it is a row); the partner dedupes on `webhook-id` (the event id), as a retry may repeat it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from datetime import datetime, timedelta

import httpx
import structlog
from sqlmodel import col, select
from standardwebhooks.webhooks import Webhook

from vuonminh.logistics.models import PartnerDelivery, PartnerEndpoint
from vuonminh.shared.events import DispatchRequested, Envelope
from vuonminh.shared.retry import scheduled_backoff_s
from vuonminh.shared.runtime import ServiceRuntime
from vuonminh.shared.secret_box import SecretBox, SecretsKeyMissing
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)
MAX_ATTEMPTS = 12  # about a day and a half of retries at the default delays
FIRST_RETRY_S = 30.0
LAST_RETRY_S = 6 * 3600.0
SEND_BATCH = 50
IDLE_S = 1.0
TIMEOUT_S = 10.0


def new_signing_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and base64 of random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


async def on_dispatch_requested(uow: UnitOfWork, envelope: Envelope) -> None:
    """Stages one delivery per active endpoint of the event's carrier (none: nothing to do)."""
    request = envelope.data_as(DispatchRequested)
    endpoints = (
        await uow.session.exec(
            select(PartnerEndpoint).where(PartnerEndpoint.carrier == request.carrier, col(PartnerEndpoint.active))
        )
    ).all()
    now = utc_now()
    body = json.dumps(
        {
            "id": envelope.id,
            "type": envelope.type,
            "time": envelope.time.isoformat(),
            "data": request.model_dump(mode="json"),
        },
        ensure_ascii=False,
    )
    for endpoint in endpoints:
        staged = await uow.session.exec(
            select(PartnerDelivery.id).where(
                PartnerDelivery.endpoint_id == endpoint.id, PartnerDelivery.event_id == envelope.id
            )
        )
        if staged.first() is None:
            uow.session.add(
                PartnerDelivery(
                    endpoint_id=endpoint.id,
                    carrier=request.carrier,
                    event_id=envelope.id,
                    shipment_id=request.shipment_id,
                    body=body,
                    status="pending",
                    next_attempt_at=now,
                    created_at=now,
                )
            )


async def deliver_to_partners(runtime: ServiceRuntime) -> None:
    """Background loop: sends the deliveries that are due."""
    while True:
        try:
            sent = await send_due(runtime)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the database may be away: try again shortly
            log.warning("logistics.partner_delivery_failed", error=repr(error))
            sent = 0
        if sent == 0:
            await asyncio.sleep(IDLE_S)


async def send_due(runtime: ServiceRuntime, *, now: datetime | None = None) -> int:
    """Sends up to SEND_BATCH due deliveries; returns how many were tried."""
    now = now or utc_now()
    async with runtime.sessions() as session:
        due = (
            await session.exec(
                select(PartnerDelivery)
                .where(PartnerDelivery.status == "pending", col(PartnerDelivery.next_attempt_at) <= now)
                .order_by(col(PartnerDelivery.id))
                .limit(SEND_BATCH)
            )
        ).all()
        endpoints = {
            e.id: e
            for e in (
                await session.exec(
                    select(PartnerEndpoint).where(col(PartnerEndpoint.id).in_({d.endpoint_id for d in due}))
                )
            ).all()
        }
    if not due:
        return 0
    box = SecretBox(runtime.settings.secrets_key)
    transport = runtime.state.get("partner_http_transport")  # tests hand in a partner of their own
    async with httpx.AsyncClient(timeout=TIMEOUT_S, transport=transport) as client:
        results = [await _attempt(client, box, endpoints.get(d.endpoint_id), d) for d in due]
    async with runtime.unit_of_work() as uow:
        for delivery, (status_code, error) in zip(due, results, strict=True):
            row = await uow.session.get(PartnerDelivery, delivery.id, with_for_update=True)
            if row is None or row.status != "pending":
                continue
            row.attempts += 1
            row.last_status_code, row.last_error = status_code, error
            if status_code is not None and 200 <= status_code < 300:
                row.status, row.delivered_at = "delivered", utc_now()
            elif row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
                log.error("logistics.partner_delivery_gave_up", delivery_id=row.id, endpoint_id=row.endpoint_id)
            else:
                delay = scheduled_backoff_s(row.attempts, initial_s=FIRST_RETRY_S, max_s=LAST_RETRY_S)
                row.next_attempt_at = utc_now() + timedelta(seconds=delay)
    return len(due)


async def _attempt(
    client: httpx.AsyncClient, box: SecretBox, endpoint: PartnerEndpoint | None, delivery: PartnerDelivery
) -> tuple[int | None, str | None]:
    if endpoint is None or not endpoint.active:
        return None, "the endpoint was removed or deactivated"
    try:
        secret = box.decrypt(endpoint.secret_encrypted)
    except SecretsKeyMissing as error:
        return None, str(error)
    sent_at = utc_now()
    signature = Webhook(secret).sign(delivery.event_id, sent_at, delivery.body)
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }
    try:
        answer = await client.post(endpoint.url, content=delivery.body.encode(), headers=headers)
    except httpx.HTTPError as error:
        return None, f"{type(error).__name__}: {error}"[:500]
    return answer.status_code, None if answer.is_success else answer.text[:500]
