"""Reservations per second for one hot SKU on PostgreSQL: a livestream's orders racing for one product.

    eval "$(scripts/dev-services env)"
    .venv/bin/python -m bench.reservations                     # 1,000 orders, 500 units, both modes
    .venv/bin/python -m bench.reservations --orders 100 --units 40   # a quick check of the script

Two modes, both through the code production runs, each on a scratch database (and its own Kafka topic
namespace) removed afterwards:

- `transactions`: the orders' `order_placed` events are applied by catalog's handler, each in its own
  transaction, `--concurrency` at a time from one process (the pool's size), all on the one hot row.
- `consumers`: the events are published to `orders.orders` (`--partitions` partitions) and `--workers`
  `vuonminh serve catalog --role worker` processes consume them as in production (a poll's records of one
  partition applied in one transaction). The clock runs from the first send until every order is decided.

Each run checks the outcome as the tests do: exactly min(orders, units) reserved, the rest refused as out
of stock, and the stock row left at (units - reserved) free and `reserved` held. Figures only mean
something on a quiet machine: run it where nothing else competes for the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from vuonminh.catalog import commands, handlers
from vuonminh.catalog.models import ProductIn, SellerIn
from vuonminh.shared.runtime import kafka_platform
from vuonminh.shared.settings import Settings
from vuonminh.shared.transport.kafka import KafkaTransport
from vuonminh.wiring.testing import (
    VuonminhProcess,
    eventually,
    fetch_rows,
    order_placed_event,
    reservation_outcomes,
    scratch_database,
)

HOT_SKU = "MIEN-DONG-500"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.reservations", description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1000, help="concurrent orders of one unit each")
    parser.add_argument("--units", type=int, default=500, help="units of the hot SKU in stock")
    parser.add_argument("--modes", default="transactions,consumers", help="comma-separated: transactions, consumers")
    parser.add_argument("--concurrency", type=int, default=20, help="transactions mode: transactions in flight")
    parser.add_argument("--workers", type=int, default=3, help="consumers mode: catalog worker processes")
    parser.add_argument("--partitions", type=int, default=6, help="consumers mode: partitions of orders.orders")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for every decision")
    return parser.parse_args(argv)


async def hot_catalog(database_url: str, bootstrap: str, *, units: int) -> Any:
    """catalog's runtime (API role: no consumer of its own) with one seller and the hot SKU in stock."""
    platform = kafka_platform(
        Settings(database_url=database_url, kafka_bootstrap_servers=bootstrap), ["catalog"], role="api"
    )
    catalog = platform.service("catalog")
    await catalog.migrate()
    seller = SellerIn(
        seller_id="bl-co-ba-hong", name="Miến dong Cô Ba Hồng", kind="trader", province_code="12", ward_code="03390"
    )
    product = ProductIn(
        sku=HOT_SKU, seller_id=seller.seller_id, name="Miến dong Bình Lư 500 g", unit_weight_g=500, initial_stock=units
    )
    async with catalog.unit_of_work() as uow:
        await commands.register_seller(uow, seller)
    async with catalog.unit_of_work() as uow:
        await commands.list_product(uow, product)
    return catalog


def orders_for(run: str, count: int) -> list:
    return [order_placed_event(f"{run}-{n:06d}", [(HOT_SKU, "bl-co-ba-hong", 1)]) for n in range(count)]


async def check(database_url: str, catalog: Any, *, orders: int, units: int) -> dict[str, int]:
    outcomes = list((await reservation_outcomes(catalog)).values())
    reserved, failed = outcomes.count("reserved"), outcomes.count("failed")
    [(available, held)] = await fetch_rows(database_url, "SELECT available, reserved FROM catalog.stock_levels")
    expected = min(orders, units)
    if (reserved, failed, available, held) != (expected, orders - expected, units - expected, expected):
        raise SystemExit(
            f"wrong outcome: {reserved} reserved, {failed} refused, stock {available} free {held} held; "
            f"expected {expected}, {orders - expected}, {units - expected}, {expected}"
        )
    return {"reserved": reserved, "refused": failed}


async def run_transactions(args: argparse.Namespace, server_url: str, bootstrap: str) -> dict[str, Any]:
    async with scratch_database(server_url, prefix="vuonminh_bench") as database_url:
        catalog = await hot_catalog(database_url, bootstrap, units=args.units)
        try:
            events = orders_for("tx", args.orders)
            gate = asyncio.Semaphore(args.concurrency)

            async def place(envelope) -> None:  # noqa: ANN001
                async with gate, catalog.unit_of_work(caused_by=envelope) as uow:
                    await handlers.on_order_placed(uow, envelope)

            started = time.perf_counter()
            await asyncio.gather(*(place(event) for event in events))
            elapsed = time.perf_counter() - started
            counts = await check(database_url, catalog, orders=args.orders, units=args.units)
        finally:
            await catalog.stop()
    return {"mode": f"transactions ({args.concurrency} in flight)", "seconds": elapsed, **counts}


async def run_consumers(args: argparse.Namespace, server_url: str, bootstrap: str) -> dict[str, Any]:
    namespace = f"bench-{uuid.uuid4().hex[:8]}."
    workdir = Path(tempfile.mkdtemp(prefix="bench-reservations-"))
    async with scratch_database(server_url, prefix="vuonminh_bench") as database_url:
        catalog = await hot_catalog(database_url, bootstrap, units=args.units)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "DATABASE_URL": database_url,
            "VUONMINH_KAFKA_NAMESPACE": namespace,
            "VUONMINH_TOPIC_PARTITIONS": str(args.partitions),
            "VUONMINH_LOG_LEVEL": "WARNING",
        }
        workers = [
            VuonminhProcess(["serve", "catalog", "--role", "worker"], env=env, log_path=workdir / f"catalog-{n}.log")
            for n in range(args.workers)
        ]
        try:
            for worker in workers:
                worker.start()
            await asyncio.gather(*(worker.wait_ready(timeout_s=180) for worker in workers))
            transport = KafkaTransport(bootstrap, namespace=namespace)
            producer = transport.producer(client_id="bench-reservations")
            await producer.start()
            events = orders_for("kafka", args.orders)
            try:
                started = time.perf_counter()
                await producer.send([event.to_record() for event in events])
            finally:
                await producer.stop()
                await transport.close()

            async def all_decided() -> bool:
                return len(await reservation_outcomes(catalog)) >= args.orders

            await eventually(all_decided, timeout_s=args.timeout, interval_s=0.05)
            elapsed = time.perf_counter() - started
            counts = await check(database_url, catalog, orders=args.orders, units=args.units)
        finally:
            for worker in workers:
                worker.stop()
            await catalog.stop()
            with contextlib.suppress(Exception):
                from vuonminh.wiring.testing import delete_topics

                await delete_topics(bootstrap, namespace)
    return {
        "mode": f"consumers ({args.workers} processes, {args.partitions} partitions)",
        "seconds": elapsed,
        **counts,
    }


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server_url, bootstrap = os.environ.get("DATABASE_URL"), os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not server_url or not bootstrap:
        print('needs DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS: eval "$(scripts/dev-services env)"', file=sys.stderr)
        return 2
    runs = {"transactions": run_transactions, "consumers": run_consumers}
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = set(modes) - set(runs)
    if unknown:
        print(f"unknown modes {sorted(unknown)}; choose among {sorted(runs)}", file=sys.stderr)
        return 2
    print(f"{args.orders} concurrent orders of 1 unit for one SKU with {args.units} units, on PostgreSQL\n")
    print("| mode | orders decided/s | reserved | refused (out of stock) | seconds |")
    print("|---|---:|---:|---:|---:|")
    for mode in modes:
        result = await runs[mode](args, server_url, bootstrap)
        rate = args.orders / result["seconds"]
        print(
            f"| {result['mode']} | {rate:,.0f} | {result['reserved']} | {result['refused']} | {result['seconds']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
