from vuonminh.logistics.domain import choose_carrier, plan_shipments, shipment_id_for
from vuonminh.shared.events import OrderLine, OrderPlaced
from vuonminh.shared.testing import order_body


def _line(sku, seller, ward, province, qty, price, grams) -> OrderLine:
    return OrderLine(
        sku=sku,
        product_name=sku,
        seller_id=seller,
        seller_province_code=province,
        seller_ward_code=ward,
        quantity=qty,
        unit_price_vnd=price,
        unit_weight_g=grams,
        line_total_vnd=qty * price,
        line_weight_g=qty * grams,
    )


def _order(lines, payment="cod", province="01", ward="00004") -> OrderPlaced:
    body = order_body()
    body["buyer"]["address"].update(province_code=province, ward_code=ward)
    return OrderPlaced(
        order_id="o-1",
        channel="direct",
        shop_id="shop-1",
        external_order_id="TT-1",
        placed_at=body["placed_at"],
        livestream_id=None,
        payment_method=payment,
        buyer=body["buyer"],
        lines=tuple(lines),
        total_vnd=sum(line.line_total_vnd for line in lines),
        total_weight_g=sum(line.line_weight_g for line in lines),
    )


def test_one_shipment_per_seller_with_its_weight_and_cod():
    order = _order(
        [
            _line("A", "s1", "03390", "12", 2, 65000, 500),
            _line("B", "s2", "05503", "19", 1, 180000, 250),
            _line("C", "s1", "03390", "12", 1, 175000, 5000),
        ]
    )

    plans = {p.seller_id: p for p in plan_shipments(order)}

    assert set(plans) == {"s1", "s2"}
    assert (plans["s1"].weight_g, plans["s1"].cod_amount_vnd) == (6000, 305000)
    assert [(i.sku, i.quantity) for i in plans["s1"].items] == [("A", 2), ("C", 1)]
    assert (plans["s2"].origin_ward_code, plans["s2"].cod_amount_vnd) == ("05503", 180000)
    assert plans["s1"].shipment_id == shipment_id_for("o-1", "s1") != plans["s2"].shipment_id


def test_prepaid_orders_collect_nothing_on_delivery():
    plans = plan_shipments(_order([_line("A", "s1", "03390", "12", 2, 65000, 500)], payment="prepaid"))
    assert plans[0].cod_amount_vnd == 0


def test_carrier_depends_on_whether_the_parcel_leaves_the_province():
    assert choose_carrier(origin_province_code="12", destination_province_code="12") == "ghtk"
    assert choose_carrier(origin_province_code="12", destination_province_code="01") == "viettel_post"
    local = plan_shipments(_order([_line("A", "s1", "03390", "12", 1, 1, 1)], province="12", ward="03478"))
    assert local[0].carrier == "ghtk"
