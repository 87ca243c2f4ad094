"""Carriers' status callbacks: read, authenticated, kept as they came, and applied to the shipment.

Every callback is stored (`carrier_callbacks`), refused ones too. A report moves the shipment only
forward (domain.why_not_move); a repeat of a report already applied does nothing; a late one is kept
and moves nothing. A move publishes `shipment_status_changed` in the same transaction (outbox).
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from vuonminh.logistics import domain
from vuonminh.logistics.carriers import CARRIERS
from vuonminh.logistics.carriers.base import CallbackMalformed, CallbackRequest, CarrierCallback, plain_body
from vuonminh.logistics.models import CarrierCallbackRecord, Shipment
from vuonminh.shared.metrics import record_carrier_callback
from vuonminh.shared.runtime import ServiceRuntime
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)
# Outcomes, and how the metric counts them (shared/metrics.py record_carrier_callback).
METRIC_RESULT = {
    "applied": "ok",
    "stale": "ok",
    "recorded": "ok",
    "duplicate": "duplicate",
    "refused_auth": "bad_signature",
    "malformed": "invalid",
    "unknown_shipment": "invalid",
    "unknown_carrier": "invalid",
}


@dataclass(frozen=True)
class Outcome:
    outcome: str  # a key of METRIC_RESULT
    detail: str | None = None
    shipment_id: str | None = None
    status: str | None = None  # the shipment's state after the callback

    @property
    def accepted(self) -> bool:
        return self.outcome in ("applied", "stale", "recorded", "duplicate")


async def receive(runtime: ServiceRuntime, carrier: str, request: CallbackRequest, secret: str | None) -> Outcome:
    """Authenticates, reads, stores and applies one callback; the outcome says what the carrier is answered."""
    adapter = CARRIERS.get(carrier)
    if adapter is None:
        return await _refused(runtime, carrier[:20], request, "unknown_carrier", f"no carrier named {carrier!r}")
    if not secret:
        detail = f"{adapter.secret_env} is not set: callbacks from {adapter.display_name} cannot be checked"
        return await _refused(runtime, carrier, request, "refused_auth", detail)
    if not adapter.authenticate(request, secret):
        return await _refused(runtime, carrier, request, "refused_auth", f"wrong {adapter.display_name} credential")
    try:
        callback = adapter.parse_callback(request)
    except CallbackMalformed as error:
        return await _refused(runtime, carrier, request, "malformed", str(error))
    try:
        async with runtime.unit_of_work() as uow:
            outcome = await apply(uow, carrier, callback, request)
    except IntegrityError:
        # The same report arrived twice at once: the other one applied it.
        async with runtime.unit_of_work() as uow:
            outcome = Outcome("duplicate", "the same report arrived twice at once")
            _store(uow, carrier, request, outcome, callback, dedupe=False)
    if outcome.outcome == "unknown_shipment":
        async with runtime.unit_of_work() as uow:
            _store(uow, carrier, request, outcome, callback, dedupe=False)
    record_carrier_callback(carrier, METRIC_RESULT[outcome.outcome])
    log.info(
        "logistics.carrier_callback",
        carrier=carrier,
        outcome=outcome.outcome,
        shipment_id=outcome.shipment_id,
        raw_status=callback.raw_status,
        detail=outcome.detail,
    )
    return outcome


async def apply(uow: UnitOfWork, carrier: str, callback: CarrierCallback, request: CallbackRequest) -> Outcome:
    session = uow.session
    seen = await session.exec(
        select(CarrierCallbackRecord.id).where(
            CarrierCallbackRecord.carrier == carrier, CarrierCallbackRecord.dedupe_key == callback.dedupe_key
        )
    )
    shipment = await _shipment_of(uow, carrier, callback)
    if shipment is None:
        return Outcome("unknown_shipment", "no shipment of this carrier has that tracking code or reference")
    if seen.first() is not None:
        outcome = Outcome("duplicate", "this report was applied before", shipment.id, shipment.status)
        _store(uow, carrier, request, outcome, callback, dedupe=False)
        return outcome
    if shipment.tracking_code is None and callback.tracking_code:
        shipment.tracking_code = callback.tracking_code
    if callback.fee_vnd is not None:
        shipment.shipping_fee_vnd = callback.fee_vnd
    if callback.cod_collected_vnd is not None:
        shipment.cod_collected_vnd = callback.cod_collected_vnd
    if callback.remitted and shipment.cod_remitted_vnd < shipment.cod_collected_vnd:
        shipment.cod_remitted_vnd, shipment.cod_remitted_at = shipment.cod_collected_vnd, callback.occurred_at
    if callback.status is None:
        outcome = Outcome("recorded", f"{callback.raw_status} moves no state", shipment.id, shipment.status)
    elif reason := domain.why_not_move(
        shipment.status, callback.status, current_at=shipment.status_at, proposed_at=callback.occurred_at
    ):
        outcome = Outcome("stale", reason, shipment.id, shipment.status)
    else:
        uow.publish(
            shipment.move_to(callback.status, occurred_at=callback.occurred_at, recorded_at=utc_now()),
            correlation_id=shipment.order_id,
        )
        outcome = Outcome("applied", None, shipment.id, shipment.status)
    _store(uow, carrier, request, outcome, callback, dedupe=True)
    return outcome


async def _shipment_of(uow: UnitOfWork, carrier: str, callback: CarrierCallback) -> Shipment | None:
    matches = []
    if callback.tracking_code:
        matches.append(Shipment.tracking_code == callback.tracking_code)
    if callback.reference:
        matches.append(Shipment.reference == callback.reference)
    if not matches:
        return None
    query = select(Shipment).where(Shipment.carrier == carrier, or_(*matches)).with_for_update()
    return (await uow.session.exec(query)).first()


def _store(
    uow: UnitOfWork,
    carrier: str,
    request: CallbackRequest,
    outcome: Outcome,
    callback: CarrierCallback | None,
    *,
    dedupe: bool,
) -> None:
    uow.session.add(
        CarrierCallbackRecord(
            carrier=carrier,
            received_at=utc_now(),
            outcome=outcome.outcome,
            detail=outcome.detail,
            dedupe_key=callback.dedupe_key if (callback and dedupe) else None,
            shipment_id=outcome.shipment_id,
            raw_status=callback.raw_status if callback else None,
            status=callback.status if callback else None,
            occurred_at=callback.occurred_at if callback else None,
            content_type=request.headers.get("content-type", "")[:100] or None,
            query=_without_secrets(request.query),
            body=adapter.redact(request.body) if (adapter := CARRIERS.get(carrier)) else plain_body(request.body),
        )
    )


def _without_secrets(query: dict[str, str] | object) -> dict[str, str]:
    # The token and hash are secrets: never kept.
    return {k: ("***" if k in ("token", "hash") else v) for k, v in dict(query).items()}  # type: ignore[call-overload]


async def _refused(
    runtime: ServiceRuntime, carrier: str, request: CallbackRequest, outcome: str, detail: str
) -> Outcome:
    refused = Outcome(outcome, detail)
    async with runtime.unit_of_work() as uow:
        _store(uow, carrier, request, refused, None, dedupe=False)
    record_carrier_callback(carrier, METRIC_RESULT[outcome])
    log.warning("logistics.carrier_callback_refused", carrier=carrier, outcome=outcome, detail=detail)
    return refused
