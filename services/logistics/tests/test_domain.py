from vuonminh.logistics.domain import plan_shipments, shipment_id_for
from vuonminh.wiring.testing import order_line, placed_order


def test_one_shipment_per_seller_with_its_weight_and_cod():
    order = placed_order(
        [
            order_line("s1", "03390", 2, 65000, 500, sku="A"),
            order_line("s2", "05503", 1, 180000, 250, sku="B", seller_province_code="19"),
            order_line("s1", "03390", 1, 175000, 5000, sku="C"),
        ]
    )

    plans = {p.seller_id: p for p in plan_shipments(order)}

    assert set(plans) == {"s1", "s2"}
    assert (plans["s1"].weight_g, plans["s1"].cod_amount_vnd) == (6000, 305000)
    assert [(i.sku, i.quantity) for i in plans["s1"].items] == [("A", 2), ("C", 1)]
    assert (plans["s2"].origin_ward_code, plans["s2"].cod_amount_vnd) == ("05503", 180000)
    assert plans["s1"].shipment_id == shipment_id_for(order.order_id, "s1") != plans["s2"].shipment_id


def test_prepaid_orders_collect_nothing_on_delivery():
    plans = plan_shipments(placed_order([order_line("s1", "03390", 2, 65000, 500)], payment_method="prepaid"))
    assert plans[0].cod_amount_vnd == 0
