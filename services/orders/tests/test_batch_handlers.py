"""orders applies a poll's events in one call per run of a batch handler (one lock query, one
catalog read): what it stores and publishes is what it would have done one event at a time, in
offset order.

The tests keep what a call publishes out of the outbox (they read and clear `uow.staged`), so
the rest of the platform never answers and the orders stay where the call left them.
"""

from datetime import UTC, datetime

from sqlmodel import select

from vuonminh.orders.handlers import on_orders_received, on_reservation_results
from vuonminh.orders.intake import intake_envelope, order_received
from vuonminh.orders.models import DirectOrderWebhook, Order
from vuonminh.shared.events import (
    Envelope,
    OrderConfirmed,
    OrderPlaced,
    OrderRejectedV2,
    ReservationProblem,
    ReservedLine,
    StockReservationFailed,
    StockReserved,
)
from vuonminh.wiring.testing import embedded_client, encode, order_body, seed_catalog

MIEN_DONG = [{"sku": "MIEN-DONG-500", "quantity": 2, "unit_price_vnd": 65000}]
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def _envelope(body: dict) -> Envelope:
    return intake_envelope(order_received(DirectOrderWebhook.model_validate(body)), encode(body))


async def _apply(orders, handler, envelopes: list[Envelope]) -> list[Envelope]:
    async with orders.unit_of_work() as uow:
        await handler(uow, envelopes)
        staged = list(uow.staged)
        uow.staged.clear()
    return staged


async def _stored(orders) -> dict[str, Order]:
    async with orders.sessions() as session:
        return {o.external_order_id: o for o in (await session.exec(select(Order))).all()}


async def test_a_batch_of_orders_is_decided_as_one_at_a_time_would_be(tmp_path):
    async with embedded_client(tmp_path, catalog_sweep_s=3600.0) as (client, platform):
        await seed_catalog(client, platform)
        orders = platform.service("orders")
        run = [
            _envelope(order_body("B-1", items=MIEN_DONG)),
            _envelope(order_body("B-2", items=[{"sku": "NOT-LISTED-YET", "quantity": 1, "unit_price_vnd": 1}])),
            _envelope(order_body("B-1", items=MIEN_DONG, payment={"method": "prepaid"})),  # B-1 is placed: a conflict
            _envelope(
                order_body("B-3", items=[*MIEN_DONG, {"sku": "CHE-200", "quantity": 1, "unit_price_vnd": 180000}])
            ),
            _envelope(order_body("B-2", items=MIEN_DONG)),  # the shop's new version of a parked order
        ]
        staged = await _apply(orders, on_orders_received, run)

        stored = await _stored(orders)
        assert {k: o.status for k, o in stored.items()} == {"B-1": "placed", "B-2": "placed", "B-3": "placed"}
        assert [c["differs"] for c in stored["B-1"].conflicts] == [["payment_method"]]
        assert stored["B-1"].payment_method == "cod"  # the placed version stands
        assert stored["B-3"].total_vnd == 2 * 65000 + 180000

        # One order_placed per placed order, each caused by its own webhook's event, in offset order.
        placed = [e for e in staged if isinstance(e.data, OrderPlaced)]
        assert [e.data.order_id for e in placed] == [stored[k].id for k in ("B-1", "B-3", "B-2")]
        assert [e.causation_id for e in placed] == [run[0].id, run[3].id, run[4].id]

        # catalog's answers, reserved and refused mixed in one poll, each applied once, in order.
        ids = {k: o.id for k, o in stored.items()}
        line = ReservedLine(sku="MIEN-DONG-500", quantity=2)
        problem = ReservationProblem(code="out_of_stock", message="Hết hàng", sku="CHE-200", requested=1, available=0)
        answers = [
            Envelope.new(StockReserved(order_id=ids["B-1"], lines=(line,), reserved_at=NOW), source="/test"),
            Envelope.new(
                StockReservationFailed(order_id=ids["B-3"], problems=(problem,), failed_at=NOW), source="/test"
            ),
            Envelope.new(StockReserved(order_id="never-placed", lines=(line,), reserved_at=NOW), source="/test"),
            Envelope.new(StockReserved(order_id=ids["B-1"], lines=(line,), reserved_at=NOW), source="/test"),  # again
            Envelope.new(StockReserved(order_id=ids["B-2"], lines=(line,), reserved_at=NOW), source="/test"),
        ]
        staged = await _apply(orders, on_reservation_results, answers)

        stored = await _stored(orders)
        assert {k: o.status for k, o in stored.items()} == {"B-1": "confirmed", "B-2": "confirmed", "B-3": "rejected"}
        assert stored["B-3"].rejection_reasons[0]["code"] == "out_of_stock"
        assert [(type(e.data), e.data.order_id, e.causation_id) for e in staged] == [
            (OrderConfirmed, ids["B-1"], answers[0].id),
            (OrderRejectedV2, ids["B-3"], answers[1].id),
            (OrderConfirmed, ids["B-2"], answers[4].id),
        ]
