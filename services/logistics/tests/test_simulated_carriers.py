"""The carrier simulator drives shipments on the embedded platform: it reads the dispatch topics as the
carriers' partners would, and tells each parcel's life back as the carriers' own callbacks, with
repeated and swapped ones. Every shipment ends where its carrier says, each move applied once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from sqlmodel import select

from vuonminh.logistics.models import CarrierCallbackRecord, Shipment
from vuonminh.logistics.settings import CarrierSettings
from vuonminh.wiring.carrier_simulator import CarrierSecrets, CarrierSimulator, Noise
from vuonminh.wiring.testing import embedded_client, encode, eventually, order_body, seed_catalog, signed_headers

FINAL = {"delivered": "delivered", "returned": "returned"}
# Buyers in Lai Châu (GHTK from Bình Lư), Hà Nội (Viettel Post) and Thái Nguyên; htx-che prefers GHN
# (it picks up there), co-ba-hong takes the cheapest.
BUYERS = [("12", "03478"), ("01", "00004"), ("19", "05503"), ("79", "26740")]


async def test_simulated_carriers_take_every_parcel_to_its_end_once(tmp_path):
    secrets = CarrierSecrets()
    async with embedded_client(tmp_path) as (client, platform):
        platform.service("logistics").state["carrier_settings"] = CarrierSettings(**secrets.env())
        await seed_catalog(client, platform)
        put = await client.put("/v1/sellers/htx-che/carrier-preference", json={"carrier": "ghn"})
        assert put.status_code == 200
        simulator = CarrierSimulator(client, secrets=secrets, noise=Noise(0.3, 0.4, 0.4), step_s=0.02, seed=3)
        consuming = asyncio.create_task(simulator.consume(platform.transport))
        try:
            for n in range(24):
                province, ward = BUYERS[n % len(BUYERS)]
                items = [{"sku": "MIEN-DONG-500", "quantity": 2, "unit_price_vnd": 65000}]
                if n % 3 == 0:
                    items.append({"sku": "CHE-200", "quantity": 1, "unit_price_vnd": 180000})
                body = order_body(f"SIM-{n:02d}", items=items)
                body["buyer"]["address"].update(province_code=province, ward_code=ward)
                raw = encode(body)
                answer = await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))
                assert answer.status_code == 202, answer.text

            async def all_taken() -> bool:
                return len(simulator.parcels) == 32  # 24 orders, 8 of them from two sellers

            await eventually(all_taken, timeout_s=60)
            await simulator.settle(timeout_s=60)
        finally:
            consuming.cancel()
            await asyncio.gather(consuming, return_exceptions=True)
            await simulator.close()

        async with platform.service("logistics").sessions() as session:
            shipments = {s.reference: s for s in (await session.exec(select(Shipment))).all()}
            kept = (await session.exec(select(CarrierCallbackRecord))).all()
            outbox = platform.service("logistics").spec.outbox
            changes = (
                await session.exec(
                    select(outbox.c.payload).where(
                        outbox.c.event_type == "vuonminh.logistics.shipment_status_changed.v1"
                    )
                )
            ).all()

    assert set(shipments) == set(simulator.parcels)
    assert {s.carrier for s in shipments.values()} == {"ghtk", "viettel_post", "ghn"}
    for reference, parcel in simulator.parcels.items():
        shipment = shipments[reference]
        assert shipment.status == FINAL[parcel.final_step], (reference, parcel.sent)
        assert shipment.tracking_code == parcel.tracking_code
        assert shipment.cod_collected_vnd == (parcel.cod_vnd if parcel.final_step == "delivered" else 0)
    # Every callback was answered 200 (none refused, none unknown) and kept.
    assert set(simulator.answers) == {200}
    assert len(kept) == simulator.callbacks_sent
    outcomes = Counter(record.outcome for record in kept)
    assert outcomes["duplicate"] > 0 and outcomes["stale"] > 0  # the noise was there...
    # ...and changed nothing: one status change per state a shipment actually entered, in order.
    moves = Counter(json.loads(payload)["shipment_id"] for payload in changes)
    for shipment in shipments.values():
        entered = [r for r in kept if r.shipment_id == shipment.id and r.outcome == "applied"]
        assert moves[shipment.id] == len(entered)
    assert any(p.final_step == "returned" for p in simulator.parcels.values())
