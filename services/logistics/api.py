"""logistics' HTTP API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.logistics import callbacks, commands, first_mile, partners, queries
from vuonminh.logistics.carriers import CARRIERS
from vuonminh.logistics.carriers.base import CallbackRequest
from vuonminh.logistics.models import (
    AvailabilityIn,
    AvailabilityOut,
    CallbackOut,
    CarrierPreferenceIn,
    CarrierPreferenceOut,
    CodLine,
    CodReport,
    Courier,
    CourierIn,
    CourierOut,
    HandOverIn,
    PartnerDelivery,
    PartnerDeliveryOut,
    PartnerEndpoint,
    PartnerEndpointIn,
    PartnerEndpointOut,
    PickupOut,
    RemittanceIn,
    RemittanceOut,
    Shipment,
    ShipmentOut,
)
from vuonminh.logistics.queries import visible_shipments
from vuonminh.logistics.settings import carrier_settings
from vuonminh.shared.app import NOT_FOUND_OR_NOT_YOURS, runtime_of, session_of
from vuonminh.shared.audit import audit_write
from vuonminh.shared.auth import Caller, Role, require
from vuonminh.shared.paging import Limit, Offset
from vuonminh.shared.privacy import buyer_out
from vuonminh.shared.runtime import ServiceRuntime
from vuonminh.shared.secret_box import SecretBox, SecretsKeyMissing
from vuonminh.shared.timeutil import utc_now

router = APIRouter(prefix="/v1", tags=["logistics"])
Session = Annotated[AsyncSession, Depends(session_of("logistics"))]
Runtime = Annotated[ServiceRuntime, Depends(runtime_of("logistics"))]
Operator = Annotated[Caller, Depends(require(Role.operator))]
# Cash on delivery: a seller its own, a carrier what it carries.
CodReader = Annotated[Caller, Depends(require(Role.seller, Role.carrier))]
CarrierCaller = Annotated[Caller, Depends(require(Role.carrier))]
SellerCaller = Annotated[Caller, Depends(require(Role.seller))]
PickupReader = Annotated[Caller, Depends(require(Role.seller, Role.carrier))]
# What a carrier is answered, per outcome (it resends on anything but 200).
CALLBACK_STATUS = {
    "applied": 200,
    "stale": 200,
    "recorded": 200,
    "duplicate": 200,
    "unknown_carrier": 404,
    "refused_auth": 401,
    "malformed": 422,
    "unknown_shipment": 404,
}
# Who reads shipments: a seller its own, a carrier those it carries, officials their communes' sellers'.
Reader = Annotated[Caller, Depends(require(Role.seller, Role.carrier, Role.commune_official, Role.province_official))]


def _shipments_out(shipments: Sequence[Shipment], caller: Caller) -> list[ShipmentOut]:
    # The recipient is shown to the operator, the selling seller and the carrier delivering it.
    reveal = caller.role in (Role.operator, Role.seller, Role.carrier)
    return [
        ShipmentOut(
            **shipment.model_dump(exclude={"recipient_name", "recipient_phone", "destination_line"}),
            recipient=buyer_out(
                name=shipment.recipient_name,
                phone=shipment.recipient_phone,
                province_code=shipment.destination_province_code,
                ward_code=shipment.destination_ward_code,
                line=shipment.destination_line,
                reveal=reveal,
            ),
        )
        for shipment in shipments
    ]


@router.get("/shipments", response_model=list[ShipmentOut], summary="Shipments, by order or seller")
async def list_shipments(
    session: Session,
    caller: Reader,
    order_id: str | None = None,
    seller_id: str | None = None,
    status_: Annotated[
        str | None,
        Query(
            alias="status",
            pattern="^(needs_attention|created|pickup_assigned|picked_up|in_transit|out_for_delivery|delivered"
            "|delivery_failed|returning|returned|cancelled|lost)$",
            description="e.g. needs_attention: the shipments no carrier could take, for a person to look at",
        ),
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[ShipmentOut]:
    query = select(Shipment).order_by(col(Shipment.created_at).desc(), col(Shipment.id)).limit(limit).offset(offset)
    if (scope := visible_shipments(caller)) is not None:
        query = query.where(scope)
    if order_id:
        query = query.where(Shipment.order_id == order_id)
    if seller_id:
        query = query.where(Shipment.seller_id == seller_id)
    if status_:
        query = query.where(Shipment.status == status_)
    return _shipments_out((await session.exec(query)).all(), caller)


@router.get("/shipments/{shipment_id}", response_model=ShipmentOut, responses={404: NOT_FOUND_OR_NOT_YOURS})
async def get_shipment(shipment_id: str, session: Session, caller: Reader) -> ShipmentOut:
    query = select(Shipment).where(Shipment.id == shipment_id)
    if (scope := visible_shipments(caller)) is not None:
        query = query.where(scope)
    shipment = (await session.exec(query)).first()
    if shipment is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"shipment {shipment_id!r} not found")
    return _shipments_out([shipment], caller)[0]


@router.post(
    "/carriers/{carrier}/callbacks",
    summary="A carrier's status callback, in its own format and with its own credential",
    responses={
        200: {"description": "taken: applied, or kept as a duplicate or a late report"},
        401: {"description": "wrong or missing carrier credential (kept, never applied)"},
        404: {"description": "unknown carrier, or no shipment with that tracking code or reference (kept)"},
        422: {"description": "not in the carrier's documented shape (kept, never applied)"},
    },
)
async def carrier_callback(carrier: str, request: Request, runtime: Runtime) -> JSONResponse:
    # Authenticated by the carrier's shared secret (query, header or body, per carrier), not by our keys.
    raw = CallbackRequest(
        body=await request.body(),
        query=dict(request.query_params),
        headers={name.lower(): value for name, value in request.headers.items()},
    )
    outcome = await callbacks.receive(runtime, carrier, raw, carrier_settings(runtime).secret_for(carrier))
    body = {"success": outcome.accepted, "outcome": outcome.outcome}
    if outcome.detail:
        body["detail"] = outcome.detail
    if outcome.status:
        body["status"] = outcome.status
    return JSONResponse(body, status_code=CALLBACK_STATUS[outcome.outcome])


@router.get(
    "/carriers/{carrier}/callbacks",
    response_model=list[CallbackOut],
    summary="Callbacks a carrier posted, newest first, with what became of each",
    responses={404: NOT_FOUND_OR_NOT_YOURS},
)
async def list_callbacks(
    carrier: str,
    session: Session,
    caller: CarrierCaller,
    outcome: Annotated[str | None, Query(pattern="^[a-z_]{1,20}$")] = None,
    shipment_id: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[CallbackOut]:
    if carrier not in CARRIERS or not (caller.is_operator or caller.carrier == carrier):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"carrier {carrier!r} not found")
    rows = await queries.callbacks(
        session, carrier, outcome=outcome, shipment_id=shipment_id, limit=limit, offset=offset
    )
    return [CallbackOut.model_validate(row, from_attributes=True) for row in rows]


@router.get("/cod/reconciliation", response_model=CodReport, summary="Cash on delivery per seller and carrier")
async def cod_reconciliation(
    session: Session,
    caller: CodReader,
    from_: Annotated[date, Query(alias="from", description="first day (Vietnam)")],
    to: Annotated[date, Query(description="last day (Vietnam), included")],
    seller_id: str | None = None,
    carrier: Annotated[str | None, Query(pattern="^(ghn|ghtk|viettel_post|vnpost)$")] = None,
) -> CodReport:
    if to < from_:
        raise HTTPException(422, "to must not be before from")
    if (to - from_).days > 366:
        raise HTTPException(422, "a report covers at most 366 days")
    lines = await queries.cod_reconciliation(session, caller, from_, to, seller_id=seller_id, carrier=carrier)
    totals = None
    if lines:
        fields = [name for name in CodLine.model_fields if name not in ("seller_id", "carrier")]
        sums = {name: sum(getattr(line, name) for line in lines) for name in fields}
        totals = CodLine(seller_id="*", carrier="*", **sums)
    return CodReport(from_=from_, to=to, lines=lines, totals=totals)


@router.post(
    "/cod/remittances",
    response_model=RemittanceOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record a carrier's payment of collected COD to a seller (from the carrier's statement)",
)
async def record_remittance(body: RemittanceIn, runtime: Runtime, caller: Operator) -> RemittanceOut:
    try:
        async with runtime.unit_of_work() as uow:
            out = await commands.record_remittance(uow, body)
            audit_write(uow, caller, "record_remittance", target=("cod_remittance", out.id), outcome="created")
    except commands.CommandError as error:
        raise HTTPException(422, str(error)) from error
    return out


@router.put(
    "/sellers/{seller_id}/carrier-preference",
    response_model=CarrierPreferenceOut,
    summary="The carrier a seller prefers (chosen whenever it can take the parcel); null for none",
    responses={404: NOT_FOUND_OR_NOT_YOURS},
)
async def set_carrier_preference(
    seller_id: str, body: CarrierPreferenceIn, runtime: Runtime, caller: SellerCaller
) -> CarrierPreferenceOut:
    if not caller.may_see_seller(seller_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"seller {seller_id!r} not found")
    async with runtime.unit_of_work() as uow:
        await commands.set_carrier_preference(uow, seller_id, body.carrier)
        audit_write(uow, caller, "set_carrier_preference", target=("seller", seller_id), outcome=body.carrier or "none")
    return CarrierPreferenceOut(seller_id=seller_id, carrier=body.carrier)


@router.post(
    "/couriers",
    response_model=CourierOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register (or change) a carrier's first-mile courier and the communes it covers",
)
async def register_courier(body: CourierIn, runtime: Runtime, caller: Operator) -> CourierOut:
    try:
        async with runtime.unit_of_work() as uow:
            courier = await commands.register_courier(uow, body)
            audit_write(uow, caller, "register_courier", target=("courier", courier.id), outcome="saved")
    except commands.CommandError as error:
        raise HTTPException(422, str(error)) from error
    return CourierOut.model_validate(courier, from_attributes=True)


@router.get("/couriers", response_model=list[CourierOut], summary="Couriers (a carrier sees its own)")
async def list_couriers(
    session: Session, caller: CarrierCaller, limit: Limit = 100, offset: Offset = 0
) -> list[CourierOut]:
    query = select(Courier).order_by(col(Courier.id)).limit(limit).offset(offset)
    if not caller.is_operator:
        query = query.where(Courier.carrier == caller.carrier)
    return [CourierOut.model_validate(c, from_attributes=True) for c in (await session.exec(query)).all()]


@router.post(
    "/couriers/{courier_id}/availability",
    response_model=AvailabilityOut,
    summary="A courier cannot come (its pickups go to others with room) or is back",
    responses={404: NOT_FOUND_OR_NOT_YOURS},
)
async def courier_availability(
    courier_id: str, body: AvailabilityIn, runtime: Runtime, caller: CarrierCaller
) -> AvailabilityOut:
    async with runtime.unit_of_work() as uow:
        courier = await uow.session.get(Courier, courier_id, with_for_update=True)
        if courier is None or not (caller.is_operator or caller.carrier == courier.carrier):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"courier {courier_id!r} not found")
        moved = await first_mile.set_availability(uow, courier, body.available, body.reason)
        audit_write(uow, caller, "courier_availability", target=("courier", courier_id), outcome=str(body.available))
        out = CourierOut.model_validate(courier, from_attributes=True)
    return AvailabilityOut(courier=out, reassigned=moved)


@router.get(
    "/pickups", response_model=list[PickupOut], summary="First-mile pickups: one per seller, carrier and window"
)
async def list_pickups(
    session: Session,
    caller: PickupReader,
    seller_id: str | None = None,
    courier_id: str | None = None,
    window_date: date | None = None,
    unassigned: bool = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[PickupOut]:
    rows = await queries.pickups(
        session,
        caller,
        seller_id=seller_id,
        courier_id=courier_id,
        window_date=window_date,
        unassigned=unassigned,
        limit=limit,
        offset=offset,
    )
    return [PickupOut.model_validate(p, from_attributes=True) for p in rows]


@router.post(
    "/partners/endpoints",
    response_model=PartnerEndpointOut,
    status_code=status.HTTP_201_CREATED,
    summary="A carrier partner without Kafka: its dispatch requests are POSTed here, signed (the secret is shown once)",
    responses={409: {"description": "an endpoint with this id exists"}},
)
async def add_partner_endpoint(body: PartnerEndpointIn, runtime: Runtime, caller: Operator) -> PartnerEndpointOut:
    secret = partners.new_signing_secret()
    try:
        encrypted = SecretBox(runtime.settings.secrets_key).encrypt(secret)
    except SecretsKeyMissing as error:
        raise HTTPException(503, str(error)) from error
    async with runtime.unit_of_work() as uow:
        if await uow.session.get(PartnerEndpoint, body.id) is not None:
            raise HTTPException(409, f"partner endpoint {body.id!r} exists already")
        endpoint = PartnerEndpoint(**body.model_dump(), secret_encrypted=encrypted, created_at=utc_now())
        uow.session.add(endpoint)
        audit_write(uow, caller, "add_partner_endpoint", target=("partner_endpoint", body.id), outcome="created")
        out = PartnerEndpointOut.model_validate(endpoint, from_attributes=True)
    return out.model_copy(update={"signing_secret": secret})


@router.get("/partners/endpoints", response_model=list[PartnerEndpointOut], summary="Partners' webhook endpoints")
async def list_partner_endpoints(session: Session, caller: CarrierCaller) -> list[PartnerEndpointOut]:
    query = select(PartnerEndpoint).order_by(col(PartnerEndpoint.id))
    if not caller.is_operator:
        query = query.where(PartnerEndpoint.carrier == caller.carrier)
    return [PartnerEndpointOut.model_validate(e, from_attributes=True) for e in (await session.exec(query)).all()]


@router.get(
    "/partners/deliveries",
    response_model=list[PartnerDeliveryOut],
    summary="The delivery log of dispatch requests to partners' endpoints, newest first",
)
async def list_partner_deliveries(
    session: Session,
    caller: CarrierCaller,
    delivery_status: Annotated[str | None, Query(alias="status", pattern="^(pending|delivered|failed)$")] = None,
    shipment_id: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[PartnerDeliveryOut]:
    query = select(PartnerDelivery).order_by(col(PartnerDelivery.id).desc()).limit(limit).offset(offset)
    if not caller.is_operator:
        query = query.where(PartnerDelivery.carrier == caller.carrier)
    if delivery_status:
        query = query.where(PartnerDelivery.status == delivery_status)
    if shipment_id:
        query = query.where(PartnerDelivery.shipment_id == shipment_id)
    return [PartnerDeliveryOut.model_validate(d, from_attributes=True) for d in (await session.exec(query)).all()]


@router.post(
    "/shipments/{shipment_id}/carrier",
    response_model=ShipmentOut,
    summary="Hand a shipment no carrier could take (needs_attention) to a carrier, with what was arranged",
    responses={404: NOT_FOUND_OR_NOT_YOURS},
)
async def hand_to_carrier(shipment_id: str, body: HandOverIn, runtime: Runtime, caller: Operator) -> ShipmentOut:
    try:
        async with runtime.unit_of_work() as uow:
            shipment = await commands.hand_to_carrier(
                uow, shipment_id, body.carrier, f"handed over by hand: {body.note}"
            )
            audit_write(uow, caller, "hand_to_carrier", target=("shipment", shipment_id), outcome=body.carrier)
            out = _shipments_out([shipment], caller)[0]
    except LookupError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error
    except commands.CommandError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    return out
