"""Each carrier's callbacks, read from payloads shaped as the carriers document them, and each carrier's
create-order body. Pure: no database, no HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from vuonminh.logistics import domain
from vuonminh.logistics.carriers import CARRIERS
from vuonminh.logistics.carriers.base import CallbackMalformed, CallbackRequest
from vuonminh.wiring.testing import order_line, placed_order

FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}


def request(body: bytes | str, *, query=None, headers=None) -> CallbackRequest:
    raw = body.encode() if isinstance(body, str) else body
    return CallbackRequest(body=raw, query=query or {}, headers=headers or JSON)


def ghn(status: str, *, kind: str = "switch_status", at: str = "2026-11-21T03:52:50.158Z", **extra) -> CallbackRequest:
    body = {
        "CODAmount": 130000,
        "ClientOrderCode": "ship-1",
        "OrderCode": "GHN5FPL4",
        "ShopID": 885,
        "Status": status,
        "Time": at,
        "Type": kind,
        "TotalFee": 23100,
        "Weight": 1000,
        "Reason": "",
        **extra,
    }
    return request(json.dumps(body), query={"token": "ghn-secret"})


def ghtk(status_id: int, *, at: str = "2026-11-21T10:52:50+07:00", **extra) -> CallbackRequest:
    form = {
        "label_id": "S1.A1.17373471",
        "partner_id": "ship-2",
        "status_id": str(status_id),
        "action_time": at,
        "reason_code": "",
        "reason": "",
        "weight": "1.25",
        "fee": "32000",
        "pick_money": "250000",
        "return_part_package": "0",
        **extra,
    }
    return request(urlencode(form), query={"hash": "ghtk-secret"}, headers=FORM)


def viettel_post(code: int, *, at: str = "21/11/2026 10:52:50", token: str = "vtp-secret") -> CallbackRequest:
    data = {
        "ORDER_NUMBER": "1752312345678",
        "ORDER_REFERENCE": "ship-3",
        "ORDER_STATUSDATE": at,
        "ORDER_STATUS": code,
        "STATUS_NAME": "Phát thành công",
        "LOCALION_CURRENTLY": "Bưu cục Tam Đường",
        "NOTE": "",
        "MONEY_COLLECTION": 180000,
        "MONEY_FEECOD": 0,
        "MONEY_TOTAL": 27500,
        "PRODUCT_WEIGHT": 250,
        "ORDER_SERVICE": "VCN",
    }
    return request(json.dumps({"DATA": data, "TOKEN": token}))


def vnpost(code: int, *, at: str = "2026-11-21T10:52:50+07:00", token: str = "vnp-secret") -> CallbackRequest:
    body = {
        "OrderCode": "ship-4",
        "ItemCode": "EB123456789VN",
        "StatusCode": code,
        "StatusName": "Phát thành công",
        "StatusTime": at,
        "Note": "",
        "CodAmount": 65000,
        "Fee": 21000,
        "Weight": 500,
    }
    return request(json.dumps(body), headers={**JSON, "authorization": f"Bearer {token}"})


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("ready_to_pick", "created"),
        ("picking", "pickup_assigned"),
        ("picked", "picked_up"),
        ("transporting", "in_transit"),
        ("delivering", "out_for_delivery"),
        ("delivered", "delivered"),
        ("delivery_fail", "delivery_failed"),
        ("returning", "returning"),
        ("returned", "returned"),
        ("cancel", "cancelled"),
        ("lost", "lost"),
        ("exception", None),
    ],
)
def test_ghn_statuses_map_onto_the_shipment_states(raw, status):
    callback = CARRIERS["ghn"].parse_callback(ghn(raw))
    assert (callback.raw_status, callback.status) == (raw, status)
    assert (callback.tracking_code, callback.reference) == ("GHN5FPL4", "ship-1")
    assert callback.occurred_at == datetime(2026, 11, 21, 3, 52, 50, 158000, tzinfo=UTC)
    assert callback.fee_vnd == 23100 and callback.weight_g == 1000
    # The money is collected only on delivery; GHN repeats CODAmount on every callback.
    assert callback.cod_collected_vnd == (130000 if raw == "delivered" else None)


def test_ghn_figure_updates_move_no_state_and_repeats_share_an_identity():
    update = CARRIERS["ghn"].parse_callback(ghn("delivering", kind="update_weight", Weight=1200))
    assert update.status is None and update.weight_g == 1200
    first, again = (CARRIERS["ghn"].parse_callback(ghn("picked")) for _ in range(2))
    assert first.dedupe_key == again.dedupe_key
    assert first.dedupe_key != CARRIERS["ghn"].parse_callback(ghn("picked", at="2026-11-21T04:00:00Z")).dedupe_key


@pytest.mark.parametrize(
    ("status_id", "status"),
    [
        (-1, "cancelled"),
        (2, "created"),
        (12, "pickup_assigned"),
        (3, "picked_up"),
        (4, "out_for_delivery"),
        (5, "delivered"),
        (9, "delivery_failed"),
        (20, "returning"),
        (21, "returned"),
        (6, None),
        (10, None),
    ],
)
def test_ghtk_form_callbacks_map_onto_the_shipment_states(status_id, status):
    callback = CARRIERS["ghtk"].parse_callback(ghtk(status_id))
    assert callback.status == status
    assert (callback.tracking_code, callback.reference) == ("S1.A1.17373471", "ship-2")
    assert callback.occurred_at == datetime(2026, 11, 21, 3, 52, 50, tzinfo=UTC)  # +07:00 read as such
    assert callback.weight_g == 1250  # GHTK weighs in kg
    assert callback.fee_vnd == 32000
    assert callback.cod_collected_vnd == (250000 if status == "delivered" else None)
    assert callback.remitted is (status_id == 6)  # "reconciled": the COD was paid over


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (-100, "created"),
        (104, "pickup_assigned"),
        (-108, "picked_up"),
        (500, "out_for_delivery"),
        (501, "delivered"),
        (506, "delivery_failed"),
        (505, "returning"),
        (504, "returned"),
        (107, "cancelled"),
        (999, None),
    ],
)
def test_viettel_post_callbacks_map_onto_the_shipment_states(code, status):
    callback = CARRIERS["viettel_post"].parse_callback(viettel_post(code))
    assert callback.status == status and callback.raw_status == str(code)
    assert (callback.tracking_code, callback.reference) == ("1752312345678", "ship-3")
    # dd/MM/yyyy HH:mm:ss in Vietnam time
    assert callback.occurred_at == datetime(2026, 11, 21, 3, 52, 50, tzinfo=UTC)
    assert callback.fee_vnd == 27500 and callback.weight_g == 250


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (20, "pickup_assigned"),
        (30, "picked_up"),
        (40, "in_transit"),
        (50, "out_for_delivery"),
        (100, "delivered"),
        (110, "delivery_failed"),
        (161, "returning"),
        (170, "returned"),
        (61, "cancelled"),
        (190, "lost"),
    ],
)
def test_vnpost_callbacks_in_our_documented_shape(code, status):
    callback = CARRIERS["vnpost"].parse_callback(vnpost(code))
    assert callback.status == status
    assert (callback.tracking_code, callback.reference) == ("EB123456789VN", "ship-4")
    assert callback.cod_collected_vnd == (65000 if status == "delivered" else None)


@pytest.mark.parametrize(
    ("carrier", "good", "bad"),
    [
        ("ghn", ghn("picked"), ghn("picked").__class__(body=ghn("picked").body, query={"token": "nope"}, headers=JSON)),
        ("ghtk", ghtk(3), CallbackRequest(body=ghtk(3).body, query={}, headers=FORM)),
        ("viettel_post", viettel_post(501), viettel_post(501, token="nope")),
        ("vnpost", vnpost(100), vnpost(100, token="nope")),
    ],
)
def test_each_carrier_checks_its_own_credential(carrier, good, bad):
    secret = {"ghn": "ghn-secret", "ghtk": "ghtk-secret", "viettel_post": "vtp-secret", "vnpost": "vnp-secret"}[carrier]
    adapter = CARRIERS[carrier]
    assert adapter.authenticate(good, secret)
    assert not adapter.authenticate(bad, secret)
    assert not adapter.authenticate(good, "")  # an unset secret lets nothing in


def test_viettel_posts_token_is_never_kept():
    kept = CARRIERS["viettel_post"].redact(viettel_post(501).body)
    assert "vtp-secret" not in kept and '"TOKEN": "***"' in kept and "1752312345678" in kept


@pytest.mark.parametrize(
    ("carrier", "raw", "message"),
    [
        ("ghn", request("{not json"), "not JSON"),
        (
            "ghn",
            request(json.dumps({"OrderCode": "X", "Status": "teleported", "Time": "2026-11-21T03:00:00Z"})),
            "unknown GHN",
        ),
        ("ghn", request(json.dumps({"OrderCode": "X", "Status": "picked", "Time": "yesterday"})), "Time"),
        ("ghtk", request(urlencode({"label_id": "L", "status_id": "5"}), headers=FORM), "action_time is missing"),
        ("ghtk", request(json.dumps({"label_id": "L"}), headers=JSON), "x-www-form-urlencoded"),
        (
            "ghtk",
            request(
                urlencode(
                    {"label_id": "L", "status_id": "5", "action_time": "2026-11-21T10:00:00+07:00", "weight": "heavy"}
                ),
                headers=FORM,
            ),
            "weight",
        ),
        ("viettel_post", request(json.dumps({"TOKEN": "t"})), "DATA"),
        (
            "viettel_post",
            request(json.dumps({"DATA": {"ORDER_NUMBER": "1", "ORDER_STATUS": 501, "ORDER_STATUSDATE": "2026-11-21"}})),
            "dd/MM/yyyy",
        ),
        (
            "vnpost",
            request(json.dumps({"ItemCode": "E", "StatusCode": 999, "StatusTime": "2026-11-21T10:00:00+07:00"})),
            "unknown VNPost",
        ),
        (
            "vnpost",
            request(json.dumps({"StatusCode": 100, "StatusTime": "2026-11-21T10:00:00+07:00"})),
            "ItemCode or OrderCode",
        ),
    ],
)
def test_malformed_callbacks_are_refused_naming_what_is_wrong(carrier, raw, message):
    with pytest.raises(CallbackMalformed, match=message):
        CARRIERS[carrier].parse_callback(raw)


def _order():
    order = placed_order(
        [
            order_line("s1", "03390", 2, 65000, 500, sku="MIEN-DONG-500", product_name="Miến dong 500 g"),
            order_line("s1", "03390", 1, 250000, 1400, sku="MAT-ONG-1L", product_name="Mật ong 1 l"),
        ]
    )
    return order, domain.plan_shipments(order)[0]


def test_create_order_bodies_speak_each_carriers_format():
    order, plan = _order()
    parcel = domain.parcel_of(order, plan)
    assert parcel.sender_ward == "Xã Bình Lư" and parcel.sender_province == "Lai Châu"

    ghn_body = CARRIERS["ghn"].create_order(parcel)
    assert ghn_body["client_order_code"] == plan.shipment_id and ghn_body["weight"] == 2400
    assert ghn_body["cod_amount"] == 380000 and ghn_body["insurance_value"] == 380000
    assert [item["code"] for item in ghn_body["items"]] == ["MIEN-DONG-500", "MAT-ONG-1L"]

    ghtk_body = CARRIERS["ghtk"].create_order(parcel)
    assert ghtk_body["order"]["id"] == plan.shipment_id and ghtk_body["order"]["pick_money"] == 380000
    assert [p["weight"] for p in ghtk_body["products"]] == [0.5, 1.4]  # kg
    assert ghtk_body["order"]["pick_ward"] == "Xã Bình Lư" and ghtk_body["order"]["hamlet"] == "Khác"

    vtp = CARRIERS["viettel_post"].create_order(parcel)
    assert vtp["ORDER_NUMBER"] == plan.shipment_id and vtp["PRODUCT_WEIGHT"] == 2400
    assert vtp["MONEY_COLLECTION"] == 380000 and vtp["ORDER_PAYMENT"] == 3
    assert vtp["RECEIVER_WARD_CODE_2025"] == order.buyer.address.ward_code

    vnp = CARRIERS["vnpost"].create_order(parcel)
    assert vnp["OrderCode"] == plan.shipment_id and vnp["Weight"] == 2400 and vnp["CodAmount"] == 380000
    assert [item["Weight"] for item in vnp["Items"]] == [1000, 1400]


@pytest.mark.parametrize(
    ("current", "proposed", "moves"),
    [
        ("created", "picked_up", True),
        ("picked_up", "pickup_assigned", False),  # late
        ("in_transit", "in_transit", False),  # a repeat
        ("delivered", "returning", False),  # final
        ("pickup_assigned", "cancelled", True),
        ("picked_up", "cancelled", False),  # has left the seller: a return, not a cancellation
        ("in_transit", "lost", True),
        ("out_for_delivery", "delivered", True),
        ("delivery_failed", "returning", True),
    ],
)
def test_a_state_never_goes_backwards(current, proposed, moves):
    now = datetime(2026, 11, 21, tzinfo=UTC)
    assert (domain.why_not_move(current, proposed, current_at=now, proposed_at=now) is None) is moves


def test_a_failed_delivery_is_tried_again_only_by_a_newer_report():
    failed_at = datetime(2026, 11, 21, 8, tzinfo=UTC)
    later, earlier = datetime(2026, 11, 22, 8, tzinfo=UTC), datetime(2026, 11, 21, 7, tzinfo=UTC)
    assert domain.why_not_move("delivery_failed", "out_for_delivery", current_at=failed_at, proposed_at=later) is None
    assert domain.why_not_move("delivery_failed", "out_for_delivery", current_at=failed_at, proposed_at=earlier)
