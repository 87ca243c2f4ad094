from vuonminh.orders.domain import CatalogProduct, CatalogSeller, decide, order_id_for
from vuonminh.shared.events import OrderPlaced, OrderReceived, OrderRejected
from vuonminh.shared.testing import order_body
from vuonminh.shared.timeutil import utc_now

PRODUCTS = {
    "MIEN-DONG-500": CatalogProduct(sku="MIEN-DONG-500", name="Miến dong 500 g", seller_id="s1", unit_weight_g=500),
    "CHE-200": CatalogProduct(sku="CHE-200", name="Chè 200 g", seller_id="s2", unit_weight_g=250),
}
SELLERS = {
    "s1": CatalogSeller(seller_id="s1", province_code="12", ward_code="03390"),
    "s2": CatalogSeller(seller_id="s2", province_code="19", ward_code="05503"),
}


def _received(items) -> OrderReceived:
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
    )


def test_an_order_of_known_products_is_placed_with_totals_in_vnd_and_grams():
    received = _received(
        [
            {"sku": "MIEN-DONG-500", "quantity": 3, "unit_price_vnd": 65000},
            {"sku": "CHE-200", "quantity": 2, "unit_price_vnd": 180000},
        ]
    )

    outcome = decide(received, products=PRODUCTS, sellers=SELLERS)

    assert isinstance(outcome, OrderPlaced)
    assert outcome.total_vnd == 3 * 65000 + 2 * 180000
    assert outcome.total_weight_g == 3 * 500 + 2 * 250
    assert [(line.seller_id, line.seller_ward_code) for line in outcome.lines] == [("s1", "03390"), ("s2", "05503")]
    assert outcome.order_id == order_id_for("direct", "shop-1", "TT-0001")


def test_an_unknown_sku_rejects_the_order_and_says_which():
    received = _received(
        [
            {"sku": "MIEN-DONG-500", "quantity": 1, "unit_price_vnd": 1},
            {"sku": "FAKE-1", "quantity": 1, "unit_price_vnd": 1},
        ]
    )

    outcome = decide(received, products=PRODUCTS, sellers=SELLERS)

    assert isinstance(outcome, OrderRejected)
    assert [(r.code, r.sku) for r in outcome.reasons] == [("unknown_sku", "FAKE-1")]


def test_a_product_whose_seller_is_unknown_rejects_the_order():
    outcome = decide(
        _received([{"sku": "CHE-200", "quantity": 1, "unit_price_vnd": 1}]),
        products=PRODUCTS,
        sellers={"s1": SELLERS["s1"]},
    )

    assert isinstance(outcome, OrderRejected) and outcome.reasons[0].code == "unknown_seller"


def test_our_order_id_is_stable_per_shop_order():
    assert order_id_for("direct", "a", "1") == order_id_for("direct", "a", "1")
    assert order_id_for("direct", "a", "1") != order_id_for("direct", "b", "1")
