"""Carriers' callbacks through the API on the embedded platform: applied once, late and repeated ones kept
but moving nothing, refused ones kept for inspection; cancellation before pickup; cash on delivery."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from sqlmodel import select

from vuonminh.logistics.models import CarrierCallbackRecord, Shipment
from vuonminh.logistics.settings import CarrierSettings
from vuonminh.shared.auth import Role
from vuonminh.shared.events import Envelope, OrderCancelled, OrderConfirmed
from vuonminh.shared.timeutil import utc_now
from vuonminh.wiring.testing import auth_headers, embedded_client, eventually, order_line, placed_order

SECRETS = CarrierSettings(
    GHN_CALLBACK_TOKEN="ghn-secret",
    GHTK_CALLBACK_HASH="ghtk-secret",
    VIETTELPOST_CALLBACK_TOKEN="vtp-secret",
    VNPOST_CALLBACK_TOKEN="vnp-secret",
)
GROUP = "vuonminh.logistics"


@pytest.fixture
async def stack(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):
        platform.service("logistics").state["carrier_settings"] = SECRETS
        yield client, platform


async def _ship(platform, order_id: str, *, buyer_province: str = "12", buyer_ward: str = "03391") -> Shipment:
    """One seller's order from Bình Lư, placed and confirmed: one shipment (GHTK inside Lai Châu)."""
    order = placed_order(
        [order_line("co-ba-hong", "03390", 2, 65000, 500, sku="MIEN-DONG-500")],
        province_code=buyer_province,
        ward_code=buyer_ward,
    ).model_copy(update={"order_id": order_id})
    envelopes = [
        Envelope.new(order, source="/test"),
        Envelope.new(OrderConfirmed(order_id=order_id, confirmed_at=utc_now()), source="/test"),
    ]
    await platform.transport.log.append([e.to_record() for e in envelopes])
    return await eventually(lambda: _shipment(platform, order_id))


async def _shipment(platform, order_id: str) -> Shipment | None:
    async with platform.service("logistics").sessions() as session:
        return (await session.exec(select(Shipment).where(Shipment.order_id == order_id))).first()


async def _records(platform, carrier: str) -> list[CarrierCallbackRecord]:
    async with platform.service("logistics").sessions() as session:
        query = select(CarrierCallbackRecord).where(CarrierCallbackRecord.carrier == carrier)
        return list((await session.exec(query.order_by(CarrierCallbackRecord.id))).all())


def _ghtk(partner_id: str, status_id: int, at: str, **extra) -> tuple[str, dict]:
    form = {
        "label_id": "S1.A1.555",
        "partner_id": partner_id,
        "status_id": str(status_id),
        "action_time": at,
        "reason_code": "",
        "reason": "",
        "weight": "1.0",
        "fee": "30000",
        "pick_money": "130000",
        "return_part_package": "0",
        **extra,
    }
    return urlencode(form), {"content-type": "application/x-www-form-urlencoded"}


async def _post_ghtk(client, shipment: Shipment, status_id: int, at: str, *, secret: str = "ghtk-secret"):
    body, headers = _ghtk(shipment.reference, status_id, at)
    return await client.post(f"/v1/carriers/ghtk/callbacks?hash={secret}", content=body, headers=headers)


async def test_a_parcels_life_from_ghtk_callbacks_late_and_repeated_ones_included(stack):
    client, platform = stack
    shipment = await _ship(platform, "o-life")
    assert (shipment.carrier, shipment.status, shipment.reference) == ("ghtk", "created", shipment.id)

    picked = await _post_ghtk(client, shipment, 3, "2026-11-21T09:00:00+07:00")
    assert picked.status_code == 200 and picked.json()["outcome"] == "applied"
    assert (await _post_ghtk(client, shipment, 3, "2026-11-21T09:00:00+07:00")).json()["outcome"] == "duplicate"
    assert (await _post_ghtk(client, shipment, 4, "2026-11-21T14:00:00+07:00")).json()["outcome"] == "applied"
    late = await _post_ghtk(client, shipment, 12, "2026-11-21T08:00:00+07:00")  # "picking", arriving after
    assert late.status_code == 200 and late.json()["outcome"] == "stale"
    delivered = await _post_ghtk(client, shipment, 5, "2026-11-22T10:00:00+07:00")
    assert delivered.json() == {"success": True, "outcome": "applied", "status": "delivered"}
    reconciled = await _post_ghtk(client, shipment, 6, "2026-11-25T10:00:00+07:00")
    assert reconciled.json()["outcome"] == "recorded"

    stored = await _shipment(platform, "o-life")
    assert stored.status == "delivered" and stored.tracking_code == "S1.A1.555"
    assert (stored.cod_collected_vnd, stored.cod_remitted_vnd, stored.shipping_fee_vnd) == (130000, 130000, 30000)
    kept = await _records(platform, "ghtk")
    assert [r.outcome for r in kept] == ["applied", "duplicate", "applied", "stale", "applied", "recorded"]
    assert all("ghtk-secret" not in json.dumps(r.query) for r in kept)  # the hash is never kept

    # One shipment_status_changed per move: picked up, out for delivery, delivered.
    async with platform.service("logistics").sessions() as session:
        outbox = platform.service("logistics").spec.outbox
        rows = (
            await session.exec(
                select(outbox.c.payload).where(outbox.c.event_type == "vuonminh.logistics.shipment_status_changed.v1")
            )
        ).all()
    assert [json.loads(payload)["status"] for payload in rows] == ["picked_up", "out_for_delivery", "delivered"]
    # The carrier's partner got its create-order request on its own topic.
    async with platform.service("logistics").sessions() as session:
        dispatch = (
            await session.exec(
                select(outbox.c.topic, outbox.c.payload).where(
                    outbox.c.event_type == "vuonminh.logistics.ghtk_dispatch_requested.v1"
                )
            )
        ).one()
    assert dispatch.topic == "logistics.dispatch.ghtk"
    assert json.loads(dispatch.payload)["create_order"]["order"]["id"] == shipment.id


async def test_refused_callbacks_are_kept_and_never_applied(stack):
    client, platform = stack
    shipment = await _ship(platform, "o-refused")
    wrong = await _post_ghtk(client, shipment, 5, "2026-11-22T10:00:00+07:00", secret="guess")
    assert wrong.status_code == 401 and wrong.json()["outcome"] == "refused_auth"
    malformed = await client.post(
        "/v1/carriers/ghtk/callbacks?hash=ghtk-secret",
        content=urlencode({"label_id": "S1", "status_id": "5"}),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert malformed.status_code == 422 and "action_time" in malformed.json()["detail"]
    body, headers = _ghtk("no-such-shipment", 5, "2026-11-22T10:00:00+07:00", label_id="S9.UNKNOWN")
    unknown = await client.post("/v1/carriers/ghtk/callbacks?hash=ghtk-secret", content=body, headers=headers)
    assert unknown.status_code == 404 and unknown.json()["outcome"] == "unknown_shipment"
    nobody = await client.post("/v1/carriers/dhl/callbacks", content=b"{}")
    assert nobody.status_code == 404 and "no carrier named 'dhl'" in nobody.json()["detail"]

    assert (await _shipment(platform, "o-refused")).status == "created"
    assert [r.outcome for r in await _records(platform, "ghtk")] == ["refused_auth", "malformed", "unknown_shipment"]
    assert [r.outcome for r in await _records(platform, "dhl")] == ["unknown_carrier"]
    # The operator inspects them; a carrier sees only its own.
    listed = (await client.get("/v1/carriers/ghtk/callbacks", params={"outcome": "malformed"})).json()
    assert len(listed) == 1 and "status_id=5" in listed[0]["body"]
    ghtk = auth_headers(Role.carrier, carrier="ghtk")
    assert len((await client.get("/v1/carriers/ghtk/callbacks", headers=ghtk)).json()) == 3
    assert (await client.get("/v1/carriers/ghn/callbacks", headers=ghtk)).status_code == 404


async def test_an_unset_secret_lets_no_callback_in(stack):
    client, platform = stack
    platform.service("logistics").state["carrier_settings"] = CarrierSettings()
    shipment = await _ship(platform, "o-unset")
    refused = await _post_ghtk(client, shipment, 3, "2026-11-21T09:00:00+07:00", secret="")
    assert refused.status_code == 401 and "GHTK_CALLBACK_HASH is not set" in refused.json()["detail"]


async def test_viettel_post_and_ghn_callbacks_find_their_shipment_by_our_reference(stack):
    client, platform = stack
    vtp = await _ship(platform, "o-vtp", buyer_province="01", buyer_ward="00004")  # Hà Nội: Viettel Post
    assert vtp.carrier == "viettel_post"
    data = {
        "ORDER_NUMBER": "1752300000001",
        "ORDER_REFERENCE": vtp.reference,
        "ORDER_STATUSDATE": "21/11/2026 10:00:00",
        "ORDER_STATUS": 501,
        "STATUS_NAME": "Phát thành công",
        "MONEY_COLLECTION": 130000,
        "MONEY_TOTAL": 27500,
        "PRODUCT_WEIGHT": 1000,
    }
    answer = await client.post("/v1/carriers/viettel_post/callbacks", json={"DATA": data, "TOKEN": "vtp-secret"})
    assert answer.status_code == 200 and answer.json()["status"] == "delivered"
    (kept,) = await _records(platform, "viettel_post")
    assert "vtp-secret" not in kept.body and kept.outcome == "applied"
    # A GHN callback for a Viettel Post shipment's reference finds nothing: a carrier reaches only its own.
    ghn = {"OrderCode": "GHNX", "ClientOrderCode": vtp.reference, "Status": "lost", "Time": "2026-11-22T00:00:00Z"}
    assert (await client.post("/v1/carriers/ghn/callbacks?token=ghn-secret", json=ghn)).status_code == 404


async def test_cancelling_before_pickup_cancels_and_a_later_pickup_report_moves_nothing(stack):
    client, platform = stack
    shipment = await _ship(platform, "o-cancel")
    assert (await _post_ghtk(client, shipment, 12, "2026-11-21T08:00:00+07:00")).json()["status"] == "pickup_assigned"
    cancelled = OrderCancelled(order_id="o-cancel", cancelled_at=utc_now(), cancelled_by="buyer", reason_code="x")
    await platform.transport.log.append([Envelope.new(cancelled, source="/test").to_record()])

    async def gone():
        found = await _shipment(platform, "o-cancel")
        return found if found.status == "cancelled" else None

    await eventually(gone)
    late = await _post_ghtk(client, shipment, 3, "2026-11-21T09:00:00+07:00")
    assert late.json() == {"success": True, "outcome": "stale", "detail": "cancelled is final", "status": "cancelled"}


async def test_cash_on_delivery_is_reconciled_per_seller_and_carrier(stack):
    client, platform = stack
    first = await _ship(platform, "o-cod-1")
    second = await _ship(platform, "o-cod-2")
    for shipment, label in ((first, "S1.A"), (second, "S1.B")):
        body, headers = _ghtk(shipment.reference, 5, "2026-11-22T10:00:00+07:00", label_id=label)
        assert (
            await client.post("/v1/carriers/ghtk/callbacks?hash=ghtk-secret", content=body, headers=headers)
        ).json()["outcome"] == "applied"
    today = utc_now().date().isoformat()
    period = {"from": "2026-11-01", "to": today}
    report = (await client.get("/v1/cod/reconciliation", params=period)).json()
    (line,) = report["lines"]
    assert (line["seller_id"], line["carrier"], line["shipments"], line["delivered"]) == ("co-ba-hong", "ghtk", 2, 2)
    assert (line["cod_to_collect_vnd"], line["cod_collected_vnd"], line["owed_to_seller_vnd"]) == (
        260000,
        260000,
        260000,
    )
    assert line["shipping_fees_vnd"] == 60000

    remittance = {
        "carrier": "ghtk",
        "seller_id": "co-ba-hong",
        "amount_vnd": 100000,
        "shipment_ids": [first.id, second.id],
        "remitted_at": "2026-11-25T03:00:00Z",
    }
    wrong = await client.post("/v1/cod/remittances", json=remittance)
    assert wrong.status_code == 422 and "260000 VND collected" in wrong.json()["detail"]
    paid = await client.post("/v1/cod/remittances", json={**remittance, "amount_vnd": 260000})
    assert paid.status_code == 201
    again = await client.post("/v1/cod/remittances", json={**remittance, "amount_vnd": 260000})
    assert again.status_code == 422  # nothing left owed: paying twice is refused
    (line,) = (await client.get("/v1/cod/reconciliation", params=period)).json()["lines"]
    assert (line["cod_remitted_vnd"], line["owed_to_seller_vnd"]) == (260000, 0)

    # A seller sees its own cash; another seller sees none; a carrier its own.
    mine = auth_headers(Role.seller, seller_ids={"co-ba-hong"})
    other = auth_headers(Role.seller, seller_ids={"htx-che"})
    assert len((await client.get("/v1/cod/reconciliation", params=period, headers=mine)).json()["lines"]) == 1
    assert (await client.get("/v1/cod/reconciliation", params=period, headers=other)).json()["lines"] == []
    ghn = auth_headers(Role.carrier, carrier="ghn")
    assert (await client.get("/v1/cod/reconciliation", params=period, headers=ghn)).json()["lines"] == []
    backwards = await client.get("/v1/cod/reconciliation", params={"from": today, "to": "2026-01-01"})
    assert backwards.status_code == 422


async def test_the_sellers_preference_and_the_explained_choice_are_kept_on_the_shipment(stack):
    client, platform = stack
    seller = auth_headers(Role.seller, seller_ids={"co-ba-hong"})
    other = auth_headers(Role.seller, seller_ids={"htx-che"})
    url = "/v1/sellers/co-ba-hong/carrier-preference"
    assert (await client.put(url, json={"carrier": "vnpost"}, headers=other)).status_code == 404
    assert (await client.put(url, json={"carrier": "dhl"}, headers=seller)).status_code == 422
    assert (await client.put(url, json={"carrier": "vnpost"}, headers=seller)).json() == {
        "seller_id": "co-ba-hong",
        "carrier": "vnpost",
    }
    preferred = await _ship(platform, "o-pref")
    assert preferred.carrier == "vnpost" and "preferred" in preferred.choice["why"]
    assert preferred.quoted_fee_vnd == next(
        c["fee_vnd"] for c in preferred.choice["candidates"] if c["carrier"] == "vnpost"
    )

    assert (await client.put(url, json={"carrier": None}, headers=seller)).status_code == 200
    cheapest = await _ship(platform, "o-nopref")
    assert cheapest.carrier == "ghtk" and cheapest.choice["why"].startswith("the lowest fee")


async def test_a_parcel_no_carrier_can_take_waits_for_a_person_and_goes_to_nobody(stack):
    client, platform = stack
    order = placed_order([order_line("co-ba-hong", "03390", 300, 65000, 500, sku="MIEN-DONG-500")])  # 150 kg
    order = order.model_copy(update={"order_id": "o-heavy"})
    confirmed = OrderConfirmed(order_id="o-heavy", confirmed_at=utc_now())
    await platform.transport.log.append(
        [Envelope.new(order, source="/test").to_record(), Envelope.new(confirmed, source="/test").to_record()]
    )
    heavy = await eventually(lambda: _shipment(platform, "o-heavy"))
    assert (heavy.status, heavy.carrier, heavy.quoted_fee_vnd) == ("needs_attention", "none", None)
    assert "no carrier can take it" in heavy.choice["why"] and "150,000 g is over" in heavy.choice["why"]
    flagged = (await client.get("/v1/shipments", params={"status": "needs_attention"})).json()
    assert [s["order_id"] for s in flagged] == ["o-heavy"]
    async with platform.service("logistics").sessions() as session:
        outbox = platform.service("logistics").spec.outbox
        sent = (await session.exec(select(outbox.c.event_type).where(outbox.c.message_key == heavy.id))).all()
    assert sent == []  # no dispatch event, no create-order request

    # A person arranges it (a truck from the commune) and hands it to a carrier: dispatched from then on.
    note = {"carrier": "vnpost", "note": "xe tải của bưu điện huyện"}
    handed = await client.post(f"/v1/shipments/{heavy.id}/carrier", json=note)
    assert handed.status_code == 200, handed.text
    assert (handed.json()["status"], handed.json()["carrier"]) == ("created", "vnpost")
    assert "xe tải" in handed.json()["choice"]["why"]
    again = await client.post(f"/v1/shipments/{heavy.id}/carrier", json=note)
    assert again.status_code == 409 and "only a shipment that needs attention" in again.json()["detail"]
    assert (await client.post("/v1/shipments/nope/carrier", json=note)).status_code == 404
    seller = auth_headers(Role.seller, seller_ids={"co-ba-hong"})
    assert (await client.post(f"/v1/shipments/{heavy.id}/carrier", json=note, headers=seller)).status_code == 403
    async with platform.service("logistics").sessions() as session:
        sent = (await session.exec(select(outbox.c.topic).where(outbox.c.message_key == heavy.id))).all()
    assert set(sent) == {"logistics.shipments", "logistics.dispatch.vnpost"}
