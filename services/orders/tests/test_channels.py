"""Each channel's webhook signature and each platform's normalisation, from real-shaped payloads."""

import hashlib
import hmac
import json
import time

import pytest

from vuonminh.orders.channels import MARKETPLACES
from vuonminh.orders.channels import direct as direct_channel
from vuonminh.orders.channels.base import ShapeError, WebhookRejected, fold_units, vnd
from vuonminh.orders.settings import PlatformSettings
from vuonminh.orders.shops import new_secret
from vuonminh.orders.webhooks import SignatureError
from vuonminh.wiring.marketplace_simulator import MarketplaceSimulator, tiktok_sign

SETTINGS = PlatformSettings(tiktok_shop_app_key="app-key-1", tiktok_shop_app_secret="app-secret-1")
TIKTOK = MARKETPLACES["tiktok_shop"]
TIKTOK_BODY = json.dumps(
    {
        "type": 1,
        "tts_notification_id": "7327112393057371910",
        "shop_id": "7494049642642441621",
        "timestamp": 1765689440,
        "data": {
            "order_id": "576461413038785752",
            "order_status": "AWAITING_SHIPMENT",
            "is_on_hold_order": False,
            "update_time": 1765689439,
        },
    }
).encode()


def _tiktok_headers(body: bytes, *, key: str = "app-key-1", secret: str = "app-secret-1") -> dict[str, str]:
    return {"authorization": hmac.new(secret.encode(), key.encode() + body, hashlib.sha256).hexdigest()}


# -- TikTok Shop signatures -----------------------------------------------------------------------------------
def test_tiktok_valid_signature_passes_and_the_notification_is_read():
    TIKTOK.verify(TIKTOK_BODY, _tiktok_headers(TIKTOK_BODY), SETTINGS)
    notification = TIKTOK.read_notification(TIKTOK_BODY)
    assert notification.order_id == "576461413038785752" and notification.identity == "7327112393057371910"
    assert notification.platform_status == "AWAITING_SHIPMENT" and notification.status_at.tzinfo is not None


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, TIKTOK_BODY),  # missing
        (_tiktok_headers(TIKTOK_BODY, secret="another-secret"), TIKTOK_BODY),  # invalid
        (_tiktok_headers(TIKTOK_BODY), TIKTOK_BODY.replace(b"AWAITING_SHIPMENT", b"CANCEL")),  # tampered body
        ({"authorization": "zz"}, TIKTOK_BODY),  # not even hex
    ],
    ids=["missing", "invalid", "tampered", "garbage"],
)
def test_tiktok_bad_signatures_are_refused_with_401(headers, body):
    with pytest.raises(WebhookRejected) as refused:
        TIKTOK.verify(body, headers, SETTINGS)
    assert refused.value.status == 401 and refused.value.reason == "signature"


def test_tiktok_non_order_pushes_are_acknowledged_and_ignored_and_bad_bodies_refused():
    product = json.dumps({"type": 5, "tts_notification_id": "1", "shop_id": "9", "timestamp": 1, "data": {}}).encode()
    assert TIKTOK.read_notification(product) is None
    with pytest.raises(WebhookRejected) as not_json:
        TIKTOK.read_notification(b"{not json")
    assert not_json.value.reason == "not_json"
    with pytest.raises(WebhookRejected) as schema:
        TIKTOK.read_notification(json.dumps({"type": 1, "tts_notification_id": "1", "shop_id": "9"}).encode())
    assert schema.value.reason == "schema" and "data" in str(schema.value)


def test_our_tiktok_request_signature_matches_the_simulators_reading_of_the_guide():
    query = {"app_key": "k", "timestamp": "1700000000", "ids": "1,2", "shop_cipher": "c", "access_token": "t"}
    assert TIKTOK.sign_request("s", "/order/202507/orders", query) == tiktok_sign("s", "/order/202507/orders", query)


# -- the direct channel: Standard Webhooks ----------------------------------------------------------------------
def test_standard_webhooks_signature_verifies_and_returns_the_webhook_id():
    secret = new_secret()
    body = b'{"shop_id":"shop-1"}'
    now = int(time.time())
    headers = direct_channel.sign(body, secret=secret, msg_id="msg_2Kx", timestamp=now)
    assert direct_channel.verify(headers, body, secrets=[new_secret(), secret], now=now, tolerance_s=300) == "msg_2Kx"


def test_standard_webhooks_matches_the_reference_library():
    from standardwebhooks import Webhook

    secret = new_secret()
    body = b'{"shop_id":"shop-1","order_id":"A1"}'
    headers = direct_channel.sign(body, secret=secret, msg_id="msg_1", timestamp=int(time.time()))
    assert Webhook(secret).verify(body, headers) == json.loads(body)


@pytest.mark.parametrize("case", ["missing", "invalid", "tampered", "old", "malformed"])
def test_standard_webhooks_bad_signatures_are_refused(case):
    secret = new_secret()
    body = b'{"shop_id":"shop-1"}'
    now = int(time.time())
    headers = direct_channel.sign(body, secret=secret, msg_id="msg_1", timestamp=now)
    if case == "missing":
        headers.pop("webhook-signature")
    elif case == "invalid":
        headers = direct_channel.sign(body, secret=new_secret(), msg_id="msg_1", timestamp=now)
    elif case == "tampered":
        body = b'{"shop_id":"shop-2"}'
    elif case == "old":
        headers = direct_channel.sign(body, secret=secret, msg_id="msg_1", timestamp=now - 3600)
    else:
        headers["webhook-signature"] = "v1 nonsense"
    with pytest.raises(SignatureError):
        direct_channel.verify(headers, body, secrets=[secret], now=now, tolerance_s=300)


# -- normalisation ----------------------------------------------------------------------------------------------
def test_amounts_from_platform_strings_are_whole_vnd():
    assert (
        vnd("290000.00", field="x") == 290000
        and vnd("65000", field="x") == 65000
        and vnd(120000.0, field="x") == 120000
    )
    for bad in ("12.5", "-1", "abc", None, True):
        with pytest.raises(ShapeError):
            vnd(bad, field="x")


def test_per_unit_lines_fold_into_quantities():
    units = [("a", {"sku": "A"}, 100), ("b", {"sku": "B"}, 50), ("a", {"sku": "A"}, 100), ("a", {"sku": "A"}, 90)]
    assert fold_units(units) == [
        {"sku": "A", "unit_price_vnd": 100, "quantity": 2},
        {"sku": "B", "unit_price_vnd": 50, "quantity": 1},
        {"sku": "A", "unit_price_vnd": 90, "quantity": 1},
    ]


def test_a_tiktok_order_detail_normalises_to_the_canonical_order():
    sim = MarketplaceSimulator()
    order = sim.new_order([("MIEN-DONG-500", "1729001", 65000, 3), ("CHE-200", "1729002", 120000, 1)], at=1765689439)
    order.address = ("Tỉnh Lai Châu", "Huyện Tam Đường", "Xã Bình Lư")
    detail = order.detail()
    assert len(detail["line_items"]) == 4  # one per unit, as TikTok sends them

    received = TIKTOK.normalise(detail, shop_id="shop-9")

    assert received.channel == "tiktok_shop" and received.status == "to_ship"
    assert [(i.sku, i.quantity, i.unit_price_vnd, i.platform_sku_id) for i in received.items] == [
        ("MIEN-DONG-500", 3, 65000, "1729001"),
        ("CHE-200", 1, 120000, "1729002"),
    ]
    assert received.total_vnd == 315000 and received.payment_method == "cod"
    assert received.placed_at.isoformat() == "2025-12-14T05:17:19+00:00"
    address = received.buyer.address
    assert (address.province_code, address.ward_code, address.legacy_district) == ("12", "03390", "Huyện Tam Đường")


def test_an_unpaid_tiktok_order_has_no_address_and_cancel_is_spelled_two_ways():
    sim = MarketplaceSimulator()
    order = sim.new_order([("CHE-200", "1729002", 120000, 1)], at=1765689439, status="unpaid")
    received = TIKTOK.normalise(order.detail(), shop_id="s")
    assert received.status == "unpaid" and received.buyer is None
    assert TIKTOK.status_map["CANCEL"] == TIKTOK.status_map["CANCELLED"] == "cancelled"


def test_a_tiktok_answer_that_breaks_the_documented_shape_is_a_shape_error():
    sim = MarketplaceSimulator()
    detail = sim.new_order([("CHE-200", "1729002", 120000, 1)], at=1765689439).detail()
    for broken in (
        {**detail, "status": "TELEPORTED"},
        {**detail, "line_items": []},
        {**detail, "payment": {**detail["payment"], "currency": "USD"}},
        {**detail, "line_items": [{**detail["line_items"][0], "sale_price": "12.50"}]},
    ):
        with pytest.raises(ShapeError):
            TIKTOK.normalise(broken, shop_id="s")
