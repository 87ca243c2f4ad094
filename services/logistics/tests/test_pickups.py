"""First-mile pickups: a seller's parcels batched per carrier and window, a courier with room for each
pickup, rebalancing when a courier cannot come, and a cancelled parcel freeing its slot."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlmodel import select

from vuonminh.logistics.models import Pickup, Shipment
from vuonminh.logistics.pickups import AFTERNOON, MORNING, CourierRoom, Windows, pick_courier, pickup_id_for
from vuonminh.shared.auth import Role
from vuonminh.shared.events import Envelope, OrderCancelled, OrderConfirmed
from vuonminh.shared.timeutil import utc_now
from vuonminh.wiring.testing import auth_headers, embedded_client, eventually, order_line, placed_order


@pytest.mark.parametrize(
    ("utc", "window"),
    [
        ("2026-11-21T02:59:00+00:00", (date(2026, 11, 21), MORNING)),  # 09:59 in Vietnam
        ("2026-11-21T03:00:00+00:00", (date(2026, 11, 21), AFTERNOON)),  # 10:00
        ("2026-11-21T07:59:00+00:00", (date(2026, 11, 21), AFTERNOON)),  # 14:59
        ("2026-11-21T08:00:00+00:00", (date(2026, 11, 22), MORNING)),  # 15:00: tomorrow morning
        ("2026-11-20T18:00:00+00:00", (date(2026, 11, 21), MORNING)),  # 01:00 on the 21st
    ],
)
def test_a_parcel_waits_for_the_next_window_in_vietnam_time(utc, window):
    assert Windows().window_for(datetime.fromisoformat(utc)) == window


def test_one_pickup_per_seller_carrier_and_window():
    day = date(2026, 11, 21)
    one = pickup_id_for("co-ba-hong", "ghtk", day, MORNING)
    assert one == pickup_id_for("co-ba-hong", "ghtk", day, MORNING)
    assert (
        len(
            {
                one,
                pickup_id_for("co-ba-hong", "ghtk", day, AFTERNOON),
                pickup_id_for("htx-che", "ghtk", day, MORNING),
                pickup_id_for("co-ba-hong", "viettel_post", day, MORNING),
            }
        )
        == 4
    )


def test_a_pickup_goes_to_an_available_courier_of_the_commune_with_the_most_room():
    rooms = [
        CourierRoom("a", covers_ward=True, available=True, pickups_per_window=5, pickups_in_window=4),
        CourierRoom("b", covers_ward=True, available=True, pickups_per_window=5, pickups_in_window=1),
        CourierRoom("c", covers_ward=False, available=True, pickups_per_window=50, pickups_in_window=0),
        CourierRoom("d", covers_ward=True, available=False, pickups_per_window=50, pickups_in_window=0),
        CourierRoom("e", covers_ward=True, available=True, pickups_per_window=2, pickups_in_window=2),
    ]
    assert pick_courier(rooms) == "b"
    assert pick_courier(rooms, excluding="b") == "a"
    assert pick_courier(rooms[2:]) is None  # away, elsewhere or full: the pickup waits


async def _ship(platform, order_id: str, seller: str = "co-ba-hong", ward: str = "03390") -> None:
    order = placed_order(
        [order_line(seller, ward, 1, 65000, 500, sku="MIEN-DONG-500")], province_code="12", ward_code="03478"
    )
    order = order.model_copy(update={"order_id": order_id})
    confirmed = OrderConfirmed(order_id=order_id, confirmed_at=utc_now())
    await platform.transport.log.append(
        [Envelope.new(order, source="/test").to_record(), Envelope.new(confirmed, source="/test").to_record()]
    )


async def _shipments(platform) -> list[Shipment]:
    async with platform.service("logistics").sessions() as session:
        return list((await session.exec(select(Shipment))).all())


async def test_a_sellers_parcels_share_one_pickup_and_follow_their_courier(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):
        for courier in (
            {
                "id": "ghtk-binh-lu-1",
                "name": "Lò Văn Minh",
                "carrier": "ghtk",
                "ward_codes": ["03390"],
                "pickups_per_window": 1,
            },
            {
                "id": "ghtk-binh-lu-2",
                "name": "Bưu cục Bình Lư",
                "carrier": "ghtk",
                "ward_codes": ["03390", "03478"],
                "pickups_per_window": 1,
            },
        ):
            assert (await client.post("/v1/couriers", json=courier)).status_code == 201
        bad = {"id": "x", "name": "x", "carrier": "ghtk", "ward_codes": ["99999"], "pickups_per_window": 1}
        assert (await client.post("/v1/couriers", json=bad)).status_code == 422

        for n in range(6):
            await _ship(platform, f"o-{n}")
        await _ship(platform, "o-other", seller="bl-hoa-dao")

        async def all_assigned():
            shipments = await _shipments(platform)
            return shipments if len(shipments) == 7 and {s.status for s in shipments} == {"pickup_assigned"} else None

        shipments = await eventually(all_assigned)
        assert len({s.pickup_id for s in shipments if s.seller_id == "co-ba-hong"}) == 1  # six parcels, one trip
        pickups = (await client.get("/v1/pickups")).json()
        assert sorted(p["parcels"] for p in pickups) == [1, 6]
        # One pickup each: each courier has room for one in the window.
        assert {p["courier_id"] for p in pickups} == {"ghtk-binh-lu-1", "ghtk-binh-lu-2"}
        mine = (await client.get("/v1/pickups", headers=auth_headers(Role.seller, seller_ids={"bl-hoa-dao"}))).json()
        assert [p["parcels"] for p in mine] == [1]

        # Courier 1 cannot come: its pickup has nowhere to go (courier 2 is full), so it waits, flagged.
        first = next(p for p in pickups if p["courier_id"] == "ghtk-binh-lu-1")
        away = await client.post("/v1/couriers/ghtk-binh-lu-1/availability", json={"available": False, "reason": "ốm"})
        assert away.status_code == 200 and away.json()["reassigned"] == {first["id"]: None}
        assert [p["id"] for p in (await client.get("/v1/pickups", params={"unassigned": True})).json()] == [first["id"]]
        # A third courier arrives and courier 1 is back: the waiting pickup is taken again.
        third = {
            "id": "ghtk-3",
            "name": "Điểm thu gom xã",
            "carrier": "ghtk",
            "ward_codes": ["03390"],
            "pickups_per_window": 3,
        }
        assert (await client.post("/v1/couriers", json=third)).status_code == 201
        back = await client.post("/v1/couriers/ghtk-binh-lu-1/availability", json={"available": True})
        assert back.json()["reassigned"] == {first["id"]: "ghtk-3"}  # the most room wins
        # Courier 2 cannot come: its pickup moves to the third courier at once.
        second = next(p for p in pickups if p["courier_id"] == "ghtk-binh-lu-2")
        moved = await client.post("/v1/couriers/ghtk-binh-lu-2/availability", json={"available": False})
        assert moved.json()["reassigned"] == {second["id"]: "ghtk-3"}
        # A carrier manages only its own couriers.
        other = auth_headers(Role.carrier, carrier="ghn")
        assert (
            await client.post("/v1/couriers/ghtk-3/availability", json={"available": False}, headers=other)
        ).status_code == 404


async def test_a_parcel_cancelled_before_pickup_frees_its_slot(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):
        courier = {
            "id": "ghtk-1",
            "name": "Lò Văn Minh",
            "carrier": "ghtk",
            "ward_codes": ["03390"],
            "pickups_per_window": 1,
        }
        assert (await client.post("/v1/couriers", json=courier)).status_code == 201
        await _ship(platform, "o-gone")
        await eventually(lambda: _pickups(platform, open_only=True))
        cancelled = OrderCancelled(order_id="o-gone", cancelled_at=utc_now(), cancelled_by="buyer", reason_code="x")
        await platform.transport.log.append([Envelope.new(cancelled, source="/test").to_record()])

        async def freed():
            found = await _pickups(platform, open_only=False)
            return found if found and found[0].status == "cancelled" else None

        (pickup,) = await eventually(freed)
        assert (pickup.parcels, pickup.courier_id) == (0, None)
        # The courier's slot is free: another seller's parcel gets it.
        await _ship(platform, "o-next", seller="bl-hoa-dao")

        async def taken():
            found = [p for p in await _pickups(platform, open_only=True) if p.seller_id == "bl-hoa-dao"]
            return found if found and found[0].courier_id == "ghtk-1" else None

        await eventually(taken)


async def _pickups(platform, *, open_only: bool) -> list[Pickup]:
    async with platform.service("logistics").sessions() as session:
        query = select(Pickup)
        if open_only:
            query = query.where(Pickup.status == "open")
        return list((await session.exec(query)).all())


def test_windows_are_vietnam_days_whatever_the_clock():
    assert Windows().window_for(datetime(2026, 11, 21, 23, 30, tzinfo=UTC)) == (date(2026, 11, 22), MORNING)
