"""Analytics' two figures: webhook → commune KPI lag under a steady replay, and rebuild time.

    bench/analytics lag --orders 2000 --rate 100        # small: a minute or two
    bench/analytics lag --orders 100000 --rate 300      # the issue's size (the lead's quiet machine)
    bench/analytics rebuild --events 20000              # small
    bench/analytics rebuild --events 1000000            # the issue's size

`lag` starts `vuonminh run --demo` (embedded, a temporary data dir) and posts signed orders to its
webhook in open loop at `--rate` per second. Every `--watch-every`-th order is placed on a day of its
own (counted from 2001-01-01, so that no other order shares it), and is polled on the commune KPI
endpoint (`GET /v1/kpis/communes/03390?from=<its day>&to=<its day>`) every 0.1 s until it counts
there: its lag runs from its request leaving the client to the first poll that sees it.

`rebuild` writes `--events` events (per order: placed, confirmed, dispatched, picked up, delivered)
to a fresh local log, then times `vuonminh analytics rebuild` on it (the same code path as the CLI).
Nothing here claims figures on a busy machine: run it where nothing else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx

WARD = "03390"  # Xã Bình Lư
FIRST_WATCH_DAY = date(2001, 1, 1)
ITEMS = [{"sku": "MIEN-DONG-500", "quantity": 2, "unit_price_vnd": 65000}]


def percentile(values: list[float], fraction: float) -> float:
    from vuonminh.analytics.domain import percentile as nearest_rank

    return nearest_rank(values, fraction)


async def lag(args: argparse.Namespace) -> dict:
    from vuonminh.wiring.testing import TEST_SECRET, VuonminhProcess, encode, order_body, signed_headers

    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as scratch:
        process = VuonminhProcess(
            ["run", "--demo", "--no-carrier-simulator", "--data-dir", str(Path(scratch) / "data")],
            env={},
            log_path=Path(scratch) / "run.log",
        ).start()
        try:
            await process.wait_ready(timeout_s=120)
            limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
            async with httpx.AsyncClient(base_url=process.url, limits=limits, timeout=30) as client:
                return await _replay(client, process.headers, args, TEST_SECRET, encode, order_body, signed_headers)
        finally:
            process.stop()


async def _replay(client, auth, args, secret, encode, order_body, signed_headers) -> dict:  # noqa: ANN001
    run = f"bench-{int(time.time())}"
    sent_at: dict[int, float] = {}
    seen_at: dict[int, float] = {}
    statuses: dict[int, int] = {}
    watched: dict[int, date] = {}
    start = time.monotonic() + 1.0

    async def send(i: int) -> None:
        await asyncio.sleep(max(0.0, start + i / args.rate - time.monotonic()))
        day = None
        if i % args.watch_every == 0:
            day = FIRST_WATCH_DAY + timedelta(days=len(watched))
            watched[i] = day
        placed = datetime.combine(day or date(2026, 11, 20), datetime.min.time(), UTC) + timedelta(hours=3)
        body = order_body(f"{run}-{i}", shop_id="tts-binh-lu-vuon-minh", items=ITEMS, placed_at=placed.isoformat())
        raw = encode(body)
        for _attempt in range(30):
            sent_at.setdefault(i, time.monotonic())
            response = await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw, secret))
            statuses[i] = response.status_code
            if response.status_code not in (429, 503):
                return
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))

    async def watch(i: int) -> None:
        while i not in sent_at or statuses.get(i) is None:
            await asyncio.sleep(0.05)
        day = watched[i].isoformat()
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            kpis = await client.get(f"/v1/kpis/communes/{WARD}", params={"from": day, "to": day}, headers=auth)
            if kpis.status_code == 200 and kpis.json()["orders"] >= 1:
                seen_at[i] = time.monotonic()
                return
            await asyncio.sleep(0.1)

    senders = [asyncio.create_task(send(i)) for i in range(args.orders)]
    watchers = [asyncio.create_task(watch(i)) for i in range(0, args.orders, args.watch_every)]
    await asyncio.gather(*senders)
    await asyncio.gather(*watchers)
    lags = [seen_at[i] - sent_at[i] for i in seen_at]
    accepted = sum(1 for s in statuses.values() if 200 <= s < 300)
    return {
        "orders": args.orders,
        "rate_per_s": args.rate,
        "accepted": accepted,
        "watched": len(watched),
        "seen": len(lags),
        "lag_p50_s": round(percentile(lags, 0.5), 3) if lags else None,
        "lag_p99_s": round(percentile(lags, 0.99), 3) if lags else None,
        "lag_max_s": round(max(lags), 3) if lags else None,
    }


async def rebuild(args: argparse.Namespace) -> dict:
    from vuonminh.analytics.rebuild import rebuild_embedded
    from vuonminh.analytics.service import SERVICE
    from vuonminh.shared.transport.local import LocalTransport

    with tempfile.TemporaryDirectory(prefix="bench-rebuild-") as scratch:
        data_dir = Path(scratch)
        transport = LocalTransport(data_dir / "log.sqlite3")
        await transport.open()
        written = 0
        try:
            batch = []
            for record in _history(args.events):
                batch.append(record)
                if len(batch) == 5000:
                    await transport.log.append(batch)
                    written += len(batch)
                    batch = []
            if batch:
                await transport.log.append(batch)
                written += len(batch)
        finally:
            await transport.close()
        started = time.monotonic()
        report = await rebuild_embedded(SERVICE, data_dir, progress=not args.quiet)
        seconds = time.monotonic() - started
    return {
        "events": written,
        "applied": report.events,
        "seconds": round(seconds, 1),
        "events_per_s": round(report.events / seconds) if seconds else None,
    }


def _history(events: int):  # noqa: ANN202 - a generator of records
    """Orders of the demo's Bình Lư sellers over 90 days, each with its confirmation and parcel."""
    from vuonminh.shared.events import (
        Envelope,
        OrderConfirmed,
        OrderPlaced,
        ShipmentDispatched,
        ShipmentStatusChanged,
    )
    from vuonminh.wiring.testing import order_body, order_line

    buyer = order_body()["buyer"]
    sellers = ["bl-co-ba-hong", "bl-htx-mien-dong", "bl-ho-lo-thi-mai", "bl-ho-tan-a-chu"]
    first = datetime(2026, 9, 1, 1, tzinfo=UTC)
    for n in range(events // 5):
        seller = sellers[n % len(sellers)]
        at = first + timedelta(minutes=(n * 7) % (90 * 24 * 60))
        line = order_line(seller, WARD, 1 + n % 3, 65000, 500, sku=f"{seller}-sku")
        order = OrderPlaced(
            order_id=f"o-{n}",
            channel="direct",
            shop_id="tts-binh-lu-vuon-minh",
            external_order_id=str(n),
            placed_at=at,
            livestream_id=None,
            payment_method="cod",
            buyer=buyer,
            lines=(line,),
            total_vnd=line.line_total_vnd,
            total_weight_g=line.line_weight_g,
        )
        shipment = dict(shipment_id=f"sh-{n}", order_id=order.order_id, seller_id=seller, carrier="viettel_post")
        payloads = [
            order,
            OrderConfirmed(order_id=order.order_id, confirmed_at=at + timedelta(minutes=1)),
            ShipmentDispatched(
                **shipment,
                origin_province_code="12",
                origin_ward_code=WARD,
                recipient=buyer,
                items=[{"sku": line.sku, "quantity": line.quantity}],
                weight_g=line.line_weight_g,
                cod_amount_vnd=line.line_total_vnd,
                dispatched_at=at + timedelta(hours=1),
            ),
        ]
        for status, hours in (("picked_up", 5), ("delivered", 40)):
            payloads.append(
                ShipmentStatusChanged(
                    **shipment,
                    status=status,
                    previous_status="created",
                    occurred_at=at + timedelta(hours=hours),
                    recorded_at=at + timedelta(hours=hours),
                    shipping_fee_vnd=30000 if status == "delivered" else None,
                )
            )
        for index, payload in enumerate(payloads):
            yield Envelope.new(payload, source="/bench", event_id=f"bench-{n}-{index}").to_record()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/analytics", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    lag_parser = commands.add_parser("lag", help="webhook → commune KPI lag under a steady replay")
    lag_parser.add_argument("--orders", type=int, default=2000)
    lag_parser.add_argument("--rate", type=float, default=100.0, help="orders per second, open loop")
    lag_parser.add_argument("--watch-every", type=int, default=20)
    lag_parser.add_argument("--connections", type=int, default=32)
    lag_parser.add_argument("--timeout", type=float, default=300.0, help="longest wait for one watched order")
    rebuild_parser = commands.add_parser("rebuild", help="time `vuonminh analytics rebuild` on N events")
    rebuild_parser.add_argument("--events", type=int, default=20000)
    rebuild_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    result = asyncio.run(lag(args) if args.command == "lag" else rebuild(args))
    print(json.dumps({"step": args.command, **result}, indent=2))


if __name__ == "__main__":
    main()
