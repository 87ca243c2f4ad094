import pytest

from vuonminh.orders.domain import (
    AwaitingCatalog,
    CatalogProduct,
    CatalogSeller,
    decide,
    differences,
    limit_problems,
    order_content,
    order_id_for,
)
from vuonminh.shared.events import OrderItem, OrderPlaced, OrderReceived, OrderRejectedV2
from vuonminh.shared.events.orders import order_key
from vuonminh.shared.events.types import MAX_GRAMS, MAX_ORDER_ITEMS, MAX_QUANTITY, MAX_VND
from vuonminh.shared.timeutil import utc_now
from vuonminh.wiring.testing import order_body

PRODUCTS = {
    "MIEN-DONG-500": CatalogProduct(sku="MIEN-DONG-500", name="Miến dong 500 g", seller_id="s1", unit_weight_g=500),
    "CHE-200": CatalogProduct(sku="CHE-200", name="Chè 200 g", seller_id="s2", unit_weight_g=250),
}
SELLERS = {
    "s1": CatalogSeller(seller_id="s1", province_code="12", ward_code="03390"),
    "s2": CatalogSeller(seller_id="s2", province_code="19", ward_code="05503"),
}
ORDER_ID = "o-1"


def _received(items, **overrides) -> OrderReceived:
    body = order_body(items=items)
    return OrderReceived(
        channel="direct",
        shop_id=body["shop_id"],
        order_id=body["order_id"],
        placed_at=body["placed_at"],
        buyer=body["buyer"],
        items=body["items"],
        payment_method="cod",
        received_at=utc_now(),
        **overrides,
    )


def test_an_order_of_known_products_is_placed_with_totals_in_vnd_and_grams():
    received = _received(
        [
            {"sku": "MIEN-DONG-500", "quantity": 3, "unit_price_vnd": 65000},
            {"sku": "CHE-200", "quantity": 2, "unit_price_vnd": 180000},
        ]
    )

    outcome = decide(received, order_id=ORDER_ID, products=PRODUCTS, sellers=SELLERS)

    assert isinstance(outcome, OrderPlaced)
    assert outcome.order_id == ORDER_ID
    assert outcome.total_vnd == 3 * 65000 + 2 * 180000
    assert outcome.total_weight_g == 3 * 500 + 2 * 250
    assert [(line.seller_id, line.seller_ward_code) for line in outcome.lines] == [("s1", "03390"), ("s2", "05503")]


def test_an_unknown_sku_parks_the_order_naming_it():
    received = _received(
        [
            {"sku": "MIEN-DONG-500", "quantity": 1, "unit_price_vnd": 1},
            {"sku": "FAKE-1", "quantity": 1, "unit_price_vnd": 1},
            {"sku": "FAKE-1", "quantity": 2, "unit_price_vnd": 1},
        ]
    )

    outcome = decide(received, order_id=ORDER_ID, products=PRODUCTS, sellers=SELLERS)

    assert outcome == AwaitingCatalog(missing_skus=("FAKE-1",), missing_seller_ids=())


def test_a_product_whose_seller_is_unknown_parks_the_order_naming_the_seller():
    outcome = decide(
        _received([{"sku": "CHE-200", "quantity": 1, "unit_price_vnd": 1}]),
        order_id=ORDER_ID,
        products=PRODUCTS,
        sellers={"s1": SELLERS["s1"]},
    )

    assert outcome == AwaitingCatalog(missing_skus=(), missing_seller_ids=("s2",))


def test_once_the_wait_is_over_missing_skus_and_sellers_reject_the_order_with_reasons():
    received = _received(
        [
            {"sku": "FAKE-1", "quantity": 1, "unit_price_vnd": 1},
            {"sku": "CHE-200", "quantity": 1, "unit_price_vnd": 1},
            {"sku": "MIEN-DONG-500", "quantity": 1, "unit_price_vnd": 1},
        ]
    )

    outcome = decide(received, order_id=ORDER_ID, products=PRODUCTS, sellers={"s1": SELLERS["s1"]}, waited_s=3600)

    assert isinstance(outcome, OrderRejectedV2)
    assert [(r.code, r.sku) for r in outcome.reasons] == [("unknown_sku", "FAKE-1"), ("unknown_seller", "CHE-200")]
    assert "after waiting 3600 s" in outcome.reasons[0].message


def test_an_empty_order_is_rejected_at_once():
    outcome = decide(_received([]), order_id=ORDER_ID, products=PRODUCTS, sellers=SELLERS)
    assert isinstance(outcome, OrderRejectedV2) and outcome.reasons[0].code == "empty_order"


def test_an_over_limit_order_already_in_the_log_is_rejected_not_crashed():
    # Intake accepted this before it checked line totals: 10,000 units at 10^10 VND.
    received = _received([{"sku": "MIEN-DONG-500", "quantity": MAX_QUANTITY, "unit_price_vnd": MAX_VND}])

    outcome = decide(received, order_id=ORDER_ID, products=PRODUCTS, sellers=SELLERS)

    assert isinstance(outcome, OrderRejectedV2)
    assert {(r.code, r.sku) for r in outcome.reasons} == {("over_limit", "MIEN-DONG-500"), ("over_limit", None)}
    assert "items.0.unit_price_vnd" in outcome.reasons[0].message


def test_line_and_order_totals_are_checked_against_the_money_limit():
    at_limit = [OrderItem(sku="A", quantity=MAX_QUANTITY, unit_price_vnd=MAX_VND // MAX_QUANTITY)]
    assert limit_problems(at_limit) == []

    line_over = [
        OrderItem(sku="A", quantity=1, unit_price_vnd=1),
        OrderItem(sku="B", quantity=2, unit_price_vnd=MAX_VND // 2 + 1),
    ]
    assert [p.loc for p in limit_problems(line_over)] == [("items", 1, "unit_price_vnd"), ("items",)]

    total_over = [OrderItem(sku=f"S{i}", quantity=1, unit_price_vnd=MAX_VND // 2) for i in range(3)]
    assert [p.loc for p in limit_problems(total_over)] == [("items",)]


def test_the_largest_acceptable_order_fits_the_order_events():
    """200 lines of 10,000 units, at the money limit and the weight limit."""
    sachet = {"CHE-GOI-5G": CatalogProduct(sku="CHE-GOI-5G", name="Chè gói 5 g", seller_id="s1", unit_weight_g=5)}
    unit_price = MAX_VND // (MAX_ORDER_ITEMS * MAX_QUANTITY)
    items = [{"sku": "CHE-GOI-5G", "quantity": MAX_QUANTITY, "unit_price_vnd": unit_price}] * MAX_ORDER_ITEMS
    received = _received(items)
    assert limit_problems(received.items) == []

    outcome = decide(received, order_id=ORDER_ID, products=sachet, sellers=SELLERS)

    assert isinstance(outcome, OrderPlaced)
    assert (outcome.total_vnd, outcome.total_weight_g) == (MAX_VND, MAX_GRAMS)
    assert OrderPlaced.model_validate_json(outcome.model_dump_json()) == outcome


def test_an_order_heavier_than_the_weight_limit_is_rejected_with_a_reason():
    # 2,001 bags of 5 kg: 10,005 kg, which no event or shipment of one order may carry.
    bags = {"KHOAI-5KG": CatalogProduct(sku="KHOAI-5KG", name="Khoai 5 kg", seller_id="s1", unit_weight_g=5000)}
    received = _received([{"sku": "KHOAI-5KG", "quantity": 2001, "unit_price_vnd": 175000}])

    outcome = decide(received, order_id=ORDER_ID, products=bags, sellers=SELLERS)

    assert isinstance(outcome, OrderRejectedV2)
    assert [(r.code, r.sku) for r in outcome.reasons] == [("over_limit", "KHOAI-5KG")]
    assert "10,005,000 g, over the 10,000,000 g" in outcome.reasons[0].message


def test_order_keys_cannot_collide_across_the_separator():
    assert order_key("direct", "a:b", "c") != order_key("direct", "a", "b:c")
    assert order_id_for("direct", "a:b", "c") != order_id_for("direct", "a", "b:c")
    assert order_key("direct", "a%3Ab", "c") != order_key("direct", "a:b", "c")
    assert order_key("direct", "shop-7", "A1001") == "direct:shop-7:A1001"  # plain ids read as before


def test_our_order_id_is_stable_per_shop_order_and_unchanged_for_plain_ids():
    import uuid

    assert order_id_for("direct", "a", "1") == order_id_for("direct", "a", "1")
    assert order_id_for("direct", "a", "1") != order_id_for("direct", "b", "1")
    legacy = uuid.uuid5(uuid.UUID("6f1c2b1e-3f7a-4d55-9a8e-2b0d7c5e9a41"), "direct:shop-1:TT-0001")
    assert order_id_for("direct", "shop-1", "TT-0001") == str(legacy)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"placed_at": "2026-11-20T02:15:00Z"}, []),  # the same instant, written in UTC
        ({"placed_at": "2026-11-20T09:16:00+07:00"}, ["placed_at"]),
        ({"payment_method": "prepaid"}, ["payment_method"]),
        ({"buyer": {**order_body()["buyer"], "phone": "0987654321"}}, ["buyer.phone"]),
        ({"items": [{"sku": "MIEN-DONG-500", "quantity": 3, "unit_price_vnd": 65000}]}, ["items[0].quantity"]),
        ({"items": [{"sku": "MIEN-DONG-500", "quantity": 2, "unit_price_vnd": 65000}] * 2}, ["items"]),
        ({"received_at": "2030-01-01T00:00:00Z"}, []),  # when we received it is not the shop's content
    ],
)
def test_differences_name_the_fields_that_changed(change, expected):
    first = _received([{"sku": "MIEN-DONG-500", "quantity": 2, "unit_price_vnd": 65000}])
    second = OrderReceived.model_validate({**first.model_dump(), **change})

    assert differences(order_content(first), order_content(second)) == expected
