"""`vuonminh simulate livestream`: the marketplace simulator beside a running platform.

It serves the chosen platform's Open API on --api-port (point the platform's `*_API_BASE` at it: e.g.
TIKTOK_SHOP_API_BASE=http://127.0.0.1:8800, SHOPEE_API_BASE=http://127.0.0.1:8800,
LAZADA_API_BASE=http://127.0.0.1:8800/rest, with the same app key and secret in both), connects its shop
through `POST /v1/shops` with an operator key, replays a livestream's webhooks with a progress bar, then
waits until the platform has fetched every order's last state, and prints how long it took and how many
API calls the platform made.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from tqdm import tqdm

from vuonminh.wiring.carrier_simulator import CarrierSecrets, CarrierSimulator
from vuonminh.wiring.carrier_simulator import Noise as CarrierNoise
from vuonminh.wiring.marketplace_simulator import (
    DEFAULT_APP_KEY,
    DEFAULT_APP_SECRET,
    DEFAULT_PARTNER_ID,
    PLATFORMS,
    MarketplaceSimulator,
    Noise,
)

if TYPE_CHECKING:
    from vuonminh.orders.settings import PlatformSettings

# The demo catalog's SKUs (vuonminh run --demo), with made-up platform SKU ids and prices.
DEMO_SKUS = [
    ("MIEN-DONG-500", "1729001", 65000),
    ("MIEN-DONG-1KG", "1729002", 120000),
    ("MIEN-DONG-TET-2KG", "1729003", 260000),
    ("HOA-DAO-CANH", "1729004", 350000),
]


def add_simulate_command(commands: Any) -> None:
    parser = commands.add_parser(
        "simulate", help="play a marketplace (TikTok Shop, Shopee, Lazada) or the carriers beside the platform"
    )
    actions = parser.add_subparsers(dest="action", required=True)
    live = actions.add_parser("livestream", help="replay a livestream's orders as the platform's signed webhooks")
    live.add_argument("--platform", default="tiktok-shop", choices=[p.replace("_", "-") for p in PLATFORMS])
    live.add_argument("--orders", type=int, default=1200)
    live.add_argument("--minutes", type=float, default=240.0, help="the session's length")
    live.add_argument("--speed", type=float, default=60.0, help="times faster than real time; 0: full speed")
    live.add_argument("--url", default="http://127.0.0.1:8000", help="the platform (orders' API)")
    live.add_argument("--api-port", type=int, default=8800, help="where the simulated Open API listens")
    live.add_argument("--key", default=os.environ.get("VUONMINH_API_KEY"), help="an operator key (or VUONMINH_API_KEY)")
    live.add_argument("--shop-id", default="7495001")
    live.add_argument("--seller", default="bl-htx-mien-dong", help="the seller the shop belongs to")
    live.add_argument("--repeat-rate", type=float, default=0.1)
    live.add_argument("--cancel-rate", type=float, default=0.05)
    live.add_argument("--out-of-order-rate", type=float, default=0.05)
    live.add_argument("--throttle-rate", type=float, default=0.0)
    live.add_argument("--error-rate", type=float, default=0.0)
    live.add_argument("--seed", type=int, default=7)
    live.add_argument("--timeout", type=float, default=1800.0, help="give up waiting for the fetches after this long")
    live.set_defaults(func=cmd_simulate)

    carriers = actions.add_parser(
        "carriers", help="play GHN, GHTK, Viettel Post and VNPost: take dispatch requests, send status callbacks"
    )
    carriers.add_argument(
        "--url",
        default=os.environ.get("VUONMINH_LOGISTICS_URL", "http://127.0.0.1:8000"),
        help="logistics' API, where the callbacks go (or VUONMINH_LOGISTICS_URL)",
    )
    carriers.add_argument("--port", type=int, default=8900, help="where the carriers' create-order endpoints listen")
    carriers.add_argument("--step-s", type=float, default=5.0, help="seconds between two reports of a parcel")
    carriers.add_argument("--fail-rate", type=float, default=0.1, help="share of deliveries that fail and return")
    carriers.add_argument("--duplicate-rate", type=float, default=0.1)
    carriers.add_argument("--swap-rate", type=float, default=0.1)
    carriers.add_argument("--seed", type=int, default=7)
    carriers.set_defaults(func=cmd_simulate_carriers)


def cmd_simulate(args: argparse.Namespace) -> None:
    try:
        asyncio.run(_livestream(args))
    except (RuntimeError, httpx.HTTPError) as error:
        raise SystemExit(f"vuonminh simulate livestream: {error}") from None


async def _livestream(args: argparse.Namespace) -> None:
    from vuonminh.orders.settings import PlatformSettings

    platform = args.platform.replace("-", "_")
    settings = PlatformSettings()
    key = settings.shopee_partner_key if platform == "shopee" else settings.tiktok_shop_app_secret
    if platform == "lazada":
        key = settings.lazada_app_secret
    app_key = settings.lazada_app_key if platform == "lazada" else settings.tiktok_shop_app_key
    sim = MarketplaceSimulator(
        platform=platform,
        app_key=app_key or "sim-app-key",
        app_secret=key or "sim-app-secret",
        partner_id=settings.shopee_partner_id or 2_001_234,
        callback_url=settings.shopee_callback_url or f"{args.url}/v1/webhooks/shopee",
        shop_id=args.shop_id,
        noise=Noise(
            repeat_rate=args.repeat_rate,
            out_of_order_rate=args.out_of_order_rate,
            cancel_rate=args.cancel_rate,
            throttle_rate=args.throttle_rate,
            error_rate=args.error_rate,
        ),
        seed=args.seed,
    )
    server = uvicorn.Server(uvicorn.Config(sim.app(), host="127.0.0.1", port=args.api_port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    headers = {"authorization": f"Bearer {args.key}"} if args.key else {}
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=10) as client:
        await connect_shop(client, sim, seller_id=args.seller)
        start = int(time.time()) - int(args.minutes * 60)
        script = sim.script(orders=args.orders, minutes=args.minutes, skus=DEMO_SKUS, start=start)
        began = time.monotonic()
        with tqdm(total=len(script), unit="webhook", desc=f"{args.platform} livestream") as progress:
            await sim.play(
                client,
                f"/v1/webhooks/{args.platform}",
                script,
                start=start,
                speed=args.speed or None,
                progress=progress,
            )
        sent_s = time.monotonic() - began
        print(f"{sim.webhooks_sent} webhooks sent in {sent_s:.1f} s; waiting for the platform to fetch every order...")
        deadline = time.monotonic() + args.timeout
        while not sim.all_fetched() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        total_s = time.monotonic() - began
    server.should_exit = True
    await serving
    fetched = "every order's last state fetched" if sim.all_fetched() else "NOT every order fetched (timeout)"
    print(
        f"{args.orders} orders, {sim.webhooks_sent} webhooks: {fetched} after {total_s:.1f} s; "
        f"{sim.api_calls} platform API calls ({sim.api_refused} refused: throttled, failed or badly signed)",
        file=sys.stdout,
    )


async def connect_shop(client: httpx.AsyncClient, sim: MarketplaceSimulator, *, seller_id: str) -> None:
    """Connects the simulated shop with its tokens (`POST /v1/shops`, an operator's call)."""
    connected = await client.post(
        "/v1/shops",
        json={
            "channel": sim.platform,
            "shop_id": sim.shop_id,
            "seller_id": seller_id,
            "access_token": sim.access_token,
            "refresh_token": sim.refresh_token,
            "access_expires_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
            "shop_cipher": sim.shop_cipher,
        },
    )
    if connected.status_code == 409:  # connected by an earlier run, with the same simulated tokens
        return
    if connected.status_code >= 300:
        raise RuntimeError(f"POST /v1/shops answered {connected.status_code}: {connected.text} (an operator --key?)")


# Where the in-process simulator's API "lives": requests to it never leave the process.
SIMULATED_API_BASE = "http://marketplace.simulated"


def simulated_platform_settings(platform_url: str) -> PlatformSettings:
    """Platform settings whose credentials and API addresses are the in-process simulator's."""
    from vuonminh.orders.settings import PlatformSettings

    return PlatformSettings(
        tiktok_shop_app_key=DEFAULT_APP_KEY,
        tiktok_shop_app_secret=DEFAULT_APP_SECRET,
        tiktok_shop_api_base=SIMULATED_API_BASE,
        tiktok_shop_auth_base=SIMULATED_API_BASE,
        shopee_partner_id=DEFAULT_PARTNER_ID,
        shopee_partner_key=DEFAULT_APP_SECRET,
        shopee_callback_url=f"{platform_url}/v1/webhooks/shopee",
        shopee_api_base=SIMULATED_API_BASE,
        lazada_app_key=DEFAULT_APP_KEY,
        lazada_app_secret=DEFAULT_APP_SECRET,
        lazada_api_base=f"{SIMULATED_API_BASE}/rest",
        lazada_auth_base=f"{SIMULATED_API_BASE}/rest",
    )


class ProgressLines:
    """A progress report for a server's log: one line every `every_s` seconds, and one at the end."""

    def __init__(self, label: str, total: int, *, every_s: float = 10.0) -> None:
        self.label, self.total, self.every_s = label, total, every_s
        self.done = 0
        self._printed_at = time.monotonic()

    def update(self, count: int) -> None:
        self.done += count
        if self.done >= self.total or time.monotonic() - self._printed_at >= self.every_s:
            self._printed_at = time.monotonic()
            print(f"{self.label}: {self.done:,}/{self.total:,} webhooks sent", file=sys.stderr, flush=True)


def cmd_simulate_carriers(args: argparse.Namespace) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_carriers(args))


def carrier_secrets_from_env() -> CarrierSecrets:
    """The secrets logistics checks (the same variables), else the simulator's own defaults."""
    defaults = CarrierSecrets()
    return CarrierSecrets(
        ghn=os.environ.get("GHN_CALLBACK_TOKEN", defaults.ghn),
        ghtk=os.environ.get("GHTK_CALLBACK_HASH", defaults.ghtk),
        viettel_post=os.environ.get("VIETTELPOST_CALLBACK_TOKEN", defaults.viettel_post),
        vnpost=os.environ.get("VNPOST_CALLBACK_TOKEN", defaults.vnpost),
    )


async def _carriers(args: argparse.Namespace) -> None:
    from vuonminh.shared.settings import Settings
    from vuonminh.shared.transport.kafka import KafkaTransport

    settings = Settings()
    noise = CarrierNoise(fail_rate=args.fail_rate, duplicate_rate=args.duplicate_rate, swap_rate=args.swap_rate)
    async with httpx.AsyncClient(base_url=args.url, timeout=10) as client:
        sim = CarrierSimulator(
            client, secrets=carrier_secrets_from_env(), noise=noise, step_s=args.step_s, seed=args.seed
        )
        server = uvicorn.Server(uvicorn.Config(sim.app(), host="0.0.0.0", port=args.port, log_level="warning"))  # noqa: S104 - a container's port
        tasks = [asyncio.create_task(server.serve())]
        where = f"create-order endpoints on :{args.port}"
        if settings.kafka_bootstrap_servers:
            transport = KafkaTransport(settings.kafka_bootstrap_servers, namespace=settings.kafka_namespace)
            tasks.append(asyncio.create_task(sim.consume(transport)))
            where += f" and the dispatch topics on {settings.kafka_bootstrap_servers}"
        print(f"Carrier simulator: {where}; callbacks to {args.url}", file=sys.stderr, flush=True)
        try:
            while True:  # a line of progress every 10 s
                await asyncio.sleep(10)
                finished = sum(1 for p in sim.parcels.values() if len(p.sent) >= len(p.life))
                print(
                    f"parcels {len(sim.parcels)} ({finished} at their end), callbacks {sim.callbacks_sent}, "
                    f"answers {dict(sorted(sim.answers.items()))}",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            server.should_exit = True
            for task in tasks[1:]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await sim.close()
