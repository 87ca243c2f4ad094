"""Logistics ships only confirmed orders, and a cancellation before pickup cancels the shipments."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from vuonminh.logistics.models import AwaitingConfirmation, Shipment
from vuonminh.shared.events import Envelope, OrderCancelled, OrderConfirmed, OrderPlaced
from vuonminh.shared.timeutil import utc_now
from vuonminh.wiring.testing import embedded_client, eventually, order_line, placed_order

GROUP = "vuonminh.logistics"


def _placed(order_id: str) -> OrderPlaced:
    order = placed_order(
        [
            order_line("s1", "03390", 2, 65000, 500, sku="A"),
            order_line("s2", "05503", 1, 180000, 250, sku="B", seller_province_code="19"),
        ]
    )
    return order.model_copy(update={"order_id": order_id})


def _confirmed(order_id: str) -> OrderConfirmed:
    return OrderConfirmed(order_id=order_id, confirmed_at=utc_now())


def _cancelled(order_id: str) -> OrderCancelled:
    return OrderCancelled(order_id=order_id, cancelled_at=utc_now(), cancelled_by="buyer", reason_code="buyer_request")


@pytest.fixture
async def logistics(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):
        yield platform


async def _feed(platform, *payloads) -> None:
    envelopes = [Envelope.new(payload, source="/test") for payload in payloads]
    await platform.transport.log.append([envelope.to_record() for envelope in envelopes])
    topic = envelopes[-1].to_record().topic
    last = (await platform.transport.log.topics())[topic][1]

    async def consumed():
        return await platform.transport.log.committed(GROUP, topic) > last

    await eventually(consumed)


async def _shipments(platform, order_id: str) -> list[Shipment]:
    async with platform.service("logistics").sessions() as session:
        return list((await session.exec(select(Shipment).where(Shipment.order_id == order_id))).scalars())


async def _published(platform, event_type: str) -> list[str]:
    table = outbox_table_of(platform)
    async with platform.service("logistics").sessions() as session:
        rows = await session.exec(select(table.c.message_key).where(table.c.event_type == event_type))
        return [row.message_key for row in rows]


def outbox_table_of(platform):
    return platform.service("logistics").spec.outbox


async def test_a_placed_order_ships_only_once_confirmed_and_once(logistics):
    await _feed(logistics, _placed("o-ship"))
    assert await _shipments(logistics, "o-ship") == []  # catalog has not reserved its stock yet

    await _feed(logistics, _confirmed("o-ship"), _confirmed("o-ship"))  # a repeated confirmation

    shipments = await _shipments(logistics, "o-ship")
    assert sorted(s.seller_id for s in shipments) == ["s1", "s2"]
    assert {s.status for s in shipments} == {"created"}
    dispatched = await _published(logistics, "vuonminh.logistics.shipment_dispatched.v1")
    assert sorted(dispatched) == sorted(s.id for s in shipments)


async def test_an_order_cancelled_before_confirmation_never_ships(logistics):
    await _feed(logistics, _placed("o-gone"), _cancelled("o-gone"), _confirmed("o-gone"))

    assert await _shipments(logistics, "o-gone") == []
    async with logistics.service("logistics").sessions() as session:
        waiting = await session.get(AwaitingConfirmation, "o-gone")
    assert waiting is not None and waiting.status == "cancelled"


async def test_cancelling_a_confirmed_order_before_pickup_cancels_its_shipments(logistics):
    await _feed(logistics, _placed("o-cancel"), _confirmed("o-cancel"))
    await _feed(logistics, _cancelled("o-cancel"), _cancelled("o-cancel"))

    shipments = await _shipments(logistics, "o-cancel")
    assert len(shipments) == 2 and {s.status for s in shipments} == {"cancelled"}
    changes = await _published(logistics, "vuonminh.logistics.shipment_status_changed.v1")
    assert sorted(changes) == sorted(s.id for s in shipments)  # one change each, the repeat changed nothing


async def test_a_confirmation_for_an_order_never_placed_is_dead_lettered(logistics):
    await _feed(logistics, _confirmed("o-unknown"))

    assert await _shipments(logistics, "o-unknown") == []
    parked = await logistics.transport.log.read("orders.orders.dlq", 0, 10)
    assert [record.header("dlq_consumer_group") for record in parked] == [GROUP]
    assert "never placed here" in parked[0].header("dlq_error")


async def test_orders_placed_in_one_poll_are_kept_once_each_with_their_first_content(logistics):
    first, again = _placed("ORD-BATCH-1"), _placed("ORD-BATCH-1").model_copy(update={"total_vnd": 1})
    # One append: the consumer takes the three in one poll, one call of the batch handler.
    await _feed(logistics, first, _placed("ORD-BATCH-2"), again)
    async with logistics.service("logistics").sessions() as session:
        kept = {row.order_id: row for row in (await session.exec(select(AwaitingConfirmation))).scalars()}
    assert set(kept) == {"ORD-BATCH-1", "ORD-BATCH-2"}
    assert OrderPlaced.model_validate_json(kept["ORD-BATCH-1"].payload).total_vnd == first.total_vnd
    assert {row.status for row in kept.values()} == {"awaiting"}
