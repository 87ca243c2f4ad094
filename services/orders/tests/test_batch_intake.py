"""orders decides a poll's direct orders in one call (one lock query, one catalog read): what it
stores and publishes is what it would have done one order at a time, in offset order."""

from sqlmodel import select

from vuonminh.orders.handlers import on_orders_received
from vuonminh.orders.intake import intake_envelope, order_received
from vuonminh.orders.models import DirectOrderWebhook, Order
from vuonminh.shared.events import OrderPlaced
from vuonminh.wiring.testing import embedded_client, encode, order_body, seed_catalog

MIEN_DONG = [{"sku": "MIEN-DONG-500", "quantity": 2, "unit_price_vnd": 65000}]


def _envelope(body: dict):
    return intake_envelope(order_received(DirectOrderWebhook.model_validate(body)), encode(body))


async def test_a_batch_of_orders_is_decided_as_one_at_a_time_would_be(tmp_path):
    async with embedded_client(tmp_path, catalog_sweep_s=3600.0) as (client, platform):
        await seed_catalog(client, platform)
        run = [
            _envelope(order_body("B-1", items=MIEN_DONG)),
            _envelope(order_body("B-2", items=[{"sku": "NOT-LISTED-YET", "quantity": 1, "unit_price_vnd": 1}])),
            _envelope(order_body("B-1", items=MIEN_DONG, payment={"method": "prepaid"})),  # B-1 is placed: a conflict
            _envelope(
                order_body("B-3", items=[*MIEN_DONG, {"sku": "CHE-200", "quantity": 1, "unit_price_vnd": 180000}])
            ),
            _envelope(order_body("B-2", items=MIEN_DONG)),  # the shop's new version of a parked order
        ]
        orders = platform.service("orders")
        async with orders.unit_of_work() as uow:
            await on_orders_received(uow, run)
            staged = list(uow.staged)

        async with orders.sessions() as session:
            stored = {o.external_order_id: o for o in (await session.exec(select(Order))).all()}
        assert {k: o.status for k, o in stored.items() if k.startswith("B-")} == {
            "B-1": "placed",
            "B-2": "placed",
            "B-3": "placed",
        }
        assert [c["differs"] for c in stored["B-1"].conflicts] == [["payment_method"]]
        assert stored["B-1"].payment_method == "cod"  # the placed version stands
        assert stored["B-3"].total_vnd == 2 * 65000 + 180000

        # One order_placed per placed order, each caused by its own webhook's event, in offset order.
        placed = [e for e in staged if isinstance(e.data, OrderPlaced)]
        by_order = {e.data.order_id: e for e in placed}
        assert len(placed) == len(by_order) == 3
        assert [by_order[stored[k].id].causation_id for k in ("B-1", "B-3", "B-2")] == [run[0].id, run[3].id, run[4].id]
        assert [e.data.order_id for e in placed] == [stored[k].id for k in ("B-1", "B-3", "B-2")]
