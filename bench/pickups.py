"""How many first-mile pickups a livestream becomes: the Bình Lư session (1,200 orders in 4 hours) through
logistics on the embedded platform.

    .venv/bin/python -m bench.pickups                       # 1,200 orders, the session's sellers
    .venv/bin/python -m bench.pickups --orders 100          # a quick check

Each order is placed and confirmed as orders and catalog would, from one of the Bình Lư sellers (most
from the two aggregators that run the livestream), to buyers across the country, so that both carriers
the commune uses take parcels. Two couriers each for GHTK and Viettel Post and the commune post office
(VNPost) cover the commune. The report: shipments,
pickups per seller and carrier, parcels per pickup, and couriers used. The orders arrive at full speed,
so they fall in one or two pickup windows, as a 4-hour evening session does (after the afternoon cut-off,
all of it is collected the next morning).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

from sqlmodel import select
from tqdm import tqdm

from vuonminh.logistics.models import Pickup, Shipment
from vuonminh.shared.events import Envelope, OrderConfirmed
from vuonminh.shared.timeutil import utc_now
from vuonminh.wiring.testing import embedded_client, eventually, order_line, placed_order

# (seller, share of the session's orders)
SELLERS = [
    ("bl-co-ba-hong", 0.45),
    ("bl-htx-mien-dong", 0.35),
    ("bl-ho-lo-thi-mai", 0.1),
    ("bl-ho-tan-a-chu", 0.1),
]
# Buyers: Lai Châu itself, Hà Nội, Hồ Chí Minh City, Thái Nguyên
BUYERS = [("12", "03478"), ("01", "00004"), ("79", "26740"), ("19", "05503")]
COURIERS = [
    {"id": "ghtk-binh-lu-1", "name": "Lò Văn Minh", "carrier": "ghtk", "pickups_per_window": 10},
    {"id": "ghtk-binh-lu-2", "name": "Tẩn Văn Sáng", "carrier": "ghtk", "pickups_per_window": 10},
    {"id": "vtp-binh-lu-1", "name": "Bưu cục Tam Đường", "carrier": "viettel_post", "pickups_per_window": 10},
    {"id": "vtp-binh-lu-2", "name": "Điểm thu gom Bình Lư", "carrier": "viettel_post", "pickups_per_window": 10},
    {"id": "vnpost-binh-lu", "name": "Bưu điện văn hoá xã Bình Lư", "carrier": "vnpost", "pickups_per_window": 10},
]


async def main(orders: int, seed: int) -> None:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="vuonminh-pickups-") as data_dir:
        async with embedded_client(Path(data_dir)) as (client, platform):
            for courier in COURIERS:
                response = await client.post("/v1/couriers", json={**courier, "ward_codes": ["03390"]})
                assert response.status_code == 201, response.text
            began = time.monotonic()
            with tqdm(total=orders, unit="order", desc="placing and confirming") as progress:
                for start in range(0, orders, 100):
                    records = []
                    for n in range(start, min(orders, start + 100)):
                        seller = rng.choices([s for s, _ in SELLERS], weights=[w for _, w in SELLERS])[0]
                        province, ward = rng.choice(BUYERS)
                        line = order_line(seller, "03390", rng.randint(1, 4), 65000, 500, sku="MIEN-DONG-500")
                        order = placed_order([line], province_code=province, ward_code=ward)
                        order = order.model_copy(update={"order_id": f"live-{n:05d}"})
                        confirmed = OrderConfirmed(order_id=order.order_id, confirmed_at=utc_now())
                        records += [Envelope.new(e, source="/bench").to_record() for e in (order, confirmed)]
                    await platform.transport.log.append(records)
                    progress.update(len(records) // 2)

            async def shipped() -> list[Shipment] | None:
                async with platform.service("logistics").sessions() as session:
                    found = list((await session.exec(select(Shipment))).all())
                return found if len(found) == orders else None

            shipments = await eventually(shipped, timeout_s=1800, interval_s=1.0)
            seconds = time.monotonic() - began
            async with platform.service("logistics").sessions() as session:
                pickups = list((await session.exec(select(Pickup).where(Pickup.status == "open"))).all())
    per_seller = Counter(p.seller_id for p in pickups)
    carriers = Counter(s.carrier for s in shipments)
    print(f"{orders} orders -> {len(shipments)} shipments in {seconds:.1f} s ({dict(carriers)})")
    print(f"pickups: {len(pickups)} (per seller: {dict(per_seller)})")
    for pickup in sorted(pickups, key=lambda p: (p.seller_id, p.carrier)):
        print(
            f"  {pickup.seller_id:<20} {pickup.carrier:<13} {pickup.window_date} {pickup.window:<9} "
            f"{pickup.parcels:>4} parcels  courier {pickup.courier_id}"
        )
    unassigned = sum(1 for p in pickups if p.courier_id is None)
    print(
        f"couriers used: {len({p.courier_id for p in pickups if p.courier_id})}; pickups waiting for one: {unassigned}"
    )


def run() -> None:
    parser = argparse.ArgumentParser(prog="bench.pickups", description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.orders, args.seed))


if __name__ == "__main__":
    run()
