"""The `vuonminh` command: run the platform embedded, serve one service, send demo orders."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from vuonminh.orders.operator import add_shops_command
from vuonminh.shared import ops_cli
from vuonminh.shared.app import create_app
from vuonminh.shared.logging import configure_logging
from vuonminh.shared.runtime import ROLES, SERVICE_NAMES, Platform, embedded_platform, kafka_platform
from vuonminh.shared.settings import Settings, get_settings
from vuonminh.wiring.access_cli import add_access_commands
from vuonminh.wiring.marketplace_simulator import MarketplaceSimulator
from vuonminh.wiring.simulate_cli import (
    DEMO_SKUS,
    ProgressLines,
    add_simulate_command,
    connect_shop,
    simulated_platform_settings,
)


def _this_command() -> str:
    """How the user started us (e.g. .venv/bin/vuonminh), to print commands they can paste."""
    return sys.argv[0] if Path(sys.argv[0]).name == "vuonminh" else "vuonminh"


def _serve(app: object, host: str, port: int) -> None:
    # Our structlog setup stays in charge: uvicorn's own logging config is not applied.
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=20)


def cmd_run(args: argparse.Namespace) -> None:
    from vuonminh.orders.shops import secrets_key_for
    from vuonminh.shared.auth import signing_key_for

    settings = get_settings()
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
    # The key that encrypts shops' webhook secrets: VUONMINH_SECRETS_KEY, else kept in the data dir.
    settings.secrets_key = secrets_key_for(settings, data_dir)
    # The key that signs callers' tokens: VUONMINH_TOKEN_SIGNING_KEY, else kept in the data dir.
    settings.token_signing_key = signing_key_for(settings, data_dir)
    platform = embedded_platform(settings, data_dir)
    base_url = f"http://{args.host}:{args.port}"
    command = _this_command()
    if args.livestream and not args.demo:
        raise SystemExit("vuonminh run: --livestream plays a shop of the demo catalog; add --demo")
    marketplace = _simulated_marketplace(platform, args.livestream, base_url) if args.livestream else None

    async def on_started(started: Platform) -> None:
        await started.wait_connected()
        shop_secrets: dict[str, str] = {}
        keys = await _start_keys(started, demo=args.demo)
        if args.demo:
            from vuonminh.wiring.demo import load_demo_catalog, register_demo_shops

            sellers, products = await load_demo_catalog(started)
            print(f"Demo catalog loaded: {sellers} new sellers, {products} new products.", file=sys.stderr)
            # With the deprecated global secret set, the demo shops stay unregistered and sign with it.
            if not settings.direct_secret:
                shop_secrets = await register_demo_shops(started)
            if not args.no_carrier_simulator:
                _start_carrier_simulator(started, app)
            if marketplace is not None:
                await _start_livestream(started, app, marketplace, keys["operator"], args)
        lines = [
            "",
            f"VươnMình is running (embedded: one process, SQLite files and a local log in {data_dir.resolve()})",
            f"  API docs      {base_url}/docs (operator only; VUONMINH_PUBLIC_API_DOCS=true opens them)",
            f"  Webhook       POST {base_url}/v1/webhooks/direct",
            f"  Orders        {base_url}/v1/orders",
            f"  Sellers       {base_url}/v1/sellers",
            f"  Shipments     {base_url}/v1/shipments?order_id=<id>",
            f"  KPIs          {base_url}/v1/kpis/communes/03390?from=2026-01-01&to=2026-12-31",
            f"  Dashboard     {base_url}/dashboard/communes/03390  (pages take the same Authorization header)",
            f"  Readiness     {base_url}/readyz",
        ]
        lines += ["  API keys made for this run (shown once; `vuonminh keys list|revoke` manage them):"]
        lines += [f"    {who:<26}{key}" for who, key in keys.items()]
        first_key = next(iter(keys.values()))
        lines += ["  Call the API with one:", f"    curl -H 'Authorization: Bearer {first_key}' {base_url}/v1/orders"]
        if shop_secrets:
            lines += ["  Demo shops and their webhook secrets:"]
            lines += [f"    {shop}  {secret}" for shop, secret in shop_secrets.items()]
            shop_flags = " ".join(f"--shop {shop}={secret}" for shop, secret in shop_secrets.items())
            lines += [
                "  Send signed demo orders from another terminal:",
                f"    {command} send-orders --url {base_url} {shop_flags} --count 20",
            ]
        if settings.direct_secret:
            lines += [
                "  VUONMINH_DIRECT_SECRET is set (deprecated): it signs for every shop that is not registered.",
                f"    {command} send-orders --url {base_url} --secret <VUONMINH_DIRECT_SECRET> --count 20",
            ]
        if not shop_secrets:
            lines += [
                "  Register a shop (prints its webhook secret once):",
                f"    {command} shops add <shop_id> --data-dir {data_dir}",
            ]
        print("\n".join([*lines, ""]), file=sys.stderr, flush=True)

    app = create_app(platform, on_started=on_started)
    _serve(app, args.host, args.port)


def _start_carrier_simulator(platform: Platform, app: FastAPI) -> None:
    """The demo's carriers: they read the dispatch topics of the local log and call this app back, so
    shipments move (picked up, in transit, delivered...) without anything else running."""
    import os

    from vuonminh.logistics.settings import CarrierSettings
    from vuonminh.wiring.carrier_simulator import CarrierSimulator
    from vuonminh.wiring.simulate_cli import carrier_secrets_from_env

    secrets = carrier_secrets_from_env()
    platform.service("logistics").state["carrier_settings"] = CarrierSettings(**secrets.env())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vuonminh.demo")
    step_s = float(os.environ.get("VUONMINH_DEMO_CARRIER_STEP_S", "5"))  # seconds between a parcel's reports
    simulator = CarrierSimulator(client, secrets=secrets, step_s=step_s)
    task = asyncio.get_running_loop().create_task(simulator.consume(platform.transport))
    platform.service("logistics").state["carrier_simulator"] = (simulator, task)  # kept alive with the platform
    print(
        "Carrier simulator: GHN, GHTK, Viettel Post and VNPost take the demo's parcels "
        f"(a report every ~{step_s:g} s).",
        file=sys.stderr,
    )


def _simulated_marketplace(platform: Platform, name: str, base_url: str) -> MarketplaceSimulator:
    """The marketplace simulator playing `name` inside this process: orders' platform client calls
    its API through an in-process transport, with the simulator's app key and secret."""
    simulator = MarketplaceSimulator(platform=name.replace("-", "_"), callback_url=f"{base_url}/v1/webhooks/shopee")
    orders = platform.service("orders")
    orders.state["platform_settings"] = simulated_platform_settings(base_url)
    orders.state["platform_http_transport"] = httpx.ASGITransport(app=simulator.app())
    return simulator


async def _start_livestream(
    platform: Platform, app: FastAPI, simulator: MarketplaceSimulator, operator_key: str, args: argparse.Namespace
) -> None:
    """Connects the simulated shop to a demo seller, then replays a livestream's webhooks in the
    background, a progress line every 10 s."""
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://vuonminh.demo",
        headers={"authorization": f"Bearer {operator_key}"},
        timeout=30,
    )
    await connect_shop(client, simulator, seller_id=LIVESTREAM_SELLER_ID)
    start = int(time.time()) - int(args.livestream_minutes * 60)
    script = simulator.script(
        orders=args.livestream_orders, minutes=args.livestream_minutes, skus=DEMO_SKUS, start=start
    )
    label = f"Livestream on {args.livestream} (shop {simulator.shop_id})"
    progress = ProgressLines(label, len(script))
    speed = args.livestream_speed or None

    async def replay() -> None:
        began = time.monotonic()
        await simulator.play(
            client, f"/v1/webhooks/{args.livestream}", script, start=start, speed=speed, progress=progress
        )
        while not simulator.all_fetched():
            await asyncio.sleep(0.5)
        print(
            f"{label}: {args.livestream_orders:,} orders, every one's last state fetched after "
            f"{time.monotonic() - began:.1f} s; {simulator.api_calls:,} platform API calls",
            file=sys.stderr,
            flush=True,
        )

    task = asyncio.get_running_loop().create_task(replay())
    platform.service("orders").state["livestream_simulator"] = (simulator, client, task)  # alive with the platform
    print(
        f"{label}: {args.livestream_orders:,} orders over {args.livestream_minutes:g} min, replayed "
        + (f"{args.livestream_speed:g}x faster than real time" if speed else "at full speed"),
        file=sys.stderr,
        flush=True,
    )


# The demo shop a simulated livestream sells for (Bình Lư's miến dong cooperative).
LIVESTREAM_SELLER_ID = "bl-htx-mien-dong"

# The demo seller whose key `vuonminh run --demo` prints (an aggregator of Bình Lư).
DEMO_SELLER_ID = "bl-co-ba-hong"


async def _start_keys(platform: Platform, *, demo: bool) -> dict[str, str]:
    """An operator key (and with the demo, a seller key) for this run, in every service's database."""
    from vuonminh.shared.auth import Caller, Role, create_api_key

    engines = [runtime.engine for runtime in platform.runtimes.values()]
    label = "printed by vuonminh run"
    keys = {"operator": await create_api_key(engines, Caller(Role.operator, "operator:embedded-run"), label=label)}
    if demo:
        seller = Caller(Role.seller, f"seller:{DEMO_SELLER_ID}", seller_ids=frozenset({DEMO_SELLER_ID}))
        keys[f"seller {DEMO_SELLER_ID}"] = await create_api_key(engines, seller, label=label)
    return keys


def cmd_serve(args: argparse.Namespace) -> None:
    settings = get_settings()
    if args.service == "orders" and args.role != "worker":
        _check_orders_secrets(settings)
    _serve(create_app(kafka_platform(settings, [args.service], role=args.role)), args.host, args.port)


def _check_orders_secrets(settings: Settings) -> None:
    from vuonminh.orders.shops import SecretBox, SecretsKeyMissing

    if not settings.secrets_key and not settings.direct_secret:
        raise SystemExit(
            "orders needs VUONMINH_SECRETS_KEY, the Fernet key that encrypts shops' webhook secrets "
            "(see `vuonminh shops`), or the deprecated VUONMINH_DIRECT_SECRET"
        )
    try:
        SecretBox(settings.secrets_key)
    except SecretsKeyMissing as error:
        raise SystemExit(str(error)) from None


def _shop_secrets(pairs: list[str]) -> dict[str, str]:
    secrets_by_shop = {}
    for pair in pairs:
        shop, separator, secret = pair.partition("=")
        if not separator or not shop or not secret:
            raise SystemExit(f"--shop takes SHOP_ID=SECRET, got {pair!r}")
        secrets_by_shop[shop] = secret
    return secrets_by_shop


def cmd_send_orders(args: argparse.Namespace) -> None:
    from vuonminh.wiring.sender import send_orders

    shop_secrets = _shop_secrets(args.shop or [])
    secret = args.secret or get_settings().direct_secret
    if not shop_secrets and not secret:
        raise SystemExit("send-orders needs --shop SHOP_ID=SECRET (vuonminh shops add prints one), or --secret")
    report = asyncio.run(
        send_orders(
            base_url=args.url,
            secret=secret,
            shop_secrets=shop_secrets,
            count=args.count,
            concurrency=args.concurrency,
            run_id=args.run_id,
            seed=args.seed,
            livestream_id=args.livestream_id,
            retries=args.retries,
        )
    )
    print(report.summary())
    if any(not status.startswith("2") for status in report.statuses):
        sys.exit(1)


def cmd_db(args: argparse.Namespace) -> None:
    """Schema revisions: against DATABASE_URL when set, else a scratch SQLite database."""
    import tempfile

    from vuonminh.shared import db
    from vuonminh.shared.migrations import write_revision
    from vuonminh.shared.runtime import load_service

    settings = get_settings()
    spec = load_service(args.service)

    async def run(engine) -> None:  # noqa: ANN001
        if args.action == "upgrade":
            await db.migrate(engine, spec.metadata, service=spec.name)
        else:
            async with engine.begin() as conn:
                await conn.run_sync(
                    lambda c: write_revision(c, service=spec.name, metadata=spec.metadata, message=args.message)
                )
        await engine.dispose()

    with tempfile.TemporaryDirectory() as scratch:
        if settings.database_url:
            engine = db.postgres_engine(settings.database_url, schema=spec.name)
        else:
            engine = db.sqlite_engine(Path(scratch) / f"{spec.name}.sqlite3")
        asyncio.run(run(engine))


def cmd_seed(args: argparse.Namespace) -> None:
    """The demo catalog into catalog's schema on PostgreSQL (DATABASE_URL), through catalog's commands.
    Its events wait in catalog's outbox; a running `vuonminh serve catalog` relays them to Kafka."""
    from contextlib import asynccontextmanager

    from vuonminh.shared import db
    from vuonminh.shared.outbox import write_to_outbox
    from vuonminh.shared.runtime import load_service
    from vuonminh.shared.unit_of_work import UnitOfWork
    from vuonminh.wiring.demo import seed_demo_catalog

    settings = get_settings()
    if not settings.database_url:
        raise SystemExit("seed needs DATABASE_URL (PostgreSQL); `vuonminh run --demo` loads the demo embedded")
    spec = load_service("catalog")

    async def seed() -> dict[str, int]:
        engine = db.postgres_engine(settings.database_url, schema=spec.name)
        sessions = db.session_factory(engine)

        @asynccontextmanager
        async def unit_of_work():  # noqa: ANN202 - the same transaction shape as ServiceRuntime.unit_of_work
            async with sessions() as session, session.begin():
                uow = UnitOfWork(session, service=spec.name)
                yield uow
                await write_to_outbox(session, spec.outbox, uow.staged)

        try:
            await db.migrate(engine, spec.metadata, service=spec.name)
            return await seed_demo_catalog(unit_of_work)
        finally:
            await engine.dispose()

    created = asyncio.run(seed())
    print("seeded the demo catalog (newly created): " + ", ".join(f"{k} {v}" for k, v in created.items()))


def cmd_analytics_rebuild(args: argparse.Namespace) -> None:
    """Replays the topics from their start into fresh analytics projections."""
    from vuonminh.analytics.rebuild import ReplayStopped, rebuild_embedded, rebuild_kafka
    from vuonminh.analytics.service import SERVICE
    from vuonminh.shared.transport.local import DataDirInUse

    settings = get_settings()
    started = time.monotonic()
    try:
        if args.kafka:
            report = asyncio.run(rebuild_kafka(SERVICE, settings, swap=args.swap))
        else:
            data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
            report = asyncio.run(rebuild_embedded(SERVICE, data_dir))
    except DataDirInUse as error:
        raise SystemExit(f"{error}: stop `vuonminh run` first, then rebuild") from None
    except ReplayStopped as error:
        raise SystemExit(str(error)) from None
    print(
        f"Rebuilt analytics from {report.events} events in {time.monotonic() - started:.1f} s "
        f"({report.dead_lettered} could not be applied; they are on the dead-letter topics).",
        file=sys.stderr,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vuonminh", description="Order backbone for commune e-commerce.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="all four services in one process, on SQLite and a local log")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--data-dir", help="where the SQLite files live (default: VUONMINH_DATA_DIR or .vuonminh)")
    run.add_argument("--demo", action="store_true", help="load the demo sellers and products")
    run.add_argument(
        "--no-carrier-simulator",
        action="store_true",
        help="with --demo: no simulated carriers (shipments wait for real carriers' callbacks)",
    )
    run.add_argument(
        "--livestream",
        choices=["tiktok-shop", "shopee", "lazada"],
        help="with --demo: a marketplace simulator plays this platform in the process and replays a "
        "livestream's signed webhooks (its order API answers the platform's fetches)",
    )
    run.add_argument("--livestream-orders", type=int, default=1200, help="the livestream's orders")
    run.add_argument("--livestream-minutes", type=float, default=240.0, help="the livestream's length")
    run.add_argument("--livestream-speed", type=float, default=60.0, help="times faster than real time; 0: full speed")
    run.set_defaults(func=cmd_run)

    serve = commands.add_parser("serve", help="one service against Kafka and PostgreSQL")
    serve.add_argument("service", choices=SERVICE_NAMES)
    serve.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container listens on all interfaces
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="api: the HTTP routes; worker: the consumer and outbox relay; all: both "
        "(every role serves /healthz, /readyz and /metrics)",
    )
    serve.set_defaults(func=cmd_serve)

    database = commands.add_parser("db", help="schema migrations of a service (Alembic)")
    database.add_argument("action", choices=("upgrade", "revision"))
    database.add_argument("service", choices=SERVICE_NAMES)
    database.add_argument("-m", "--message", default="schema change", help="the revision's title")
    database.set_defaults(func=cmd_db)

    send = commands.add_parser("send-orders", help="send signed demo orders to a running platform")
    send.add_argument("--url", default="http://127.0.0.1:8000")
    send.add_argument(
        "--shop",
        action="append",
        metavar="SHOP_ID=SECRET",
        help="a shop to send as, with its webhook secret (repeat for several; orders are spread over them)",
    )
    send.add_argument(
        "--secret", help="deprecated: one secret for unregistered shops (default: VUONMINH_DIRECT_SECRET)"
    )
    send.add_argument("--count", type=int, default=20)
    send.add_argument("--concurrency", type=int, default=8)
    send.add_argument("--run-id", help="prefix of the shop order ids (default: demo-<unix time>)")
    send.add_argument("--seed", type=int, default=1)
    send.add_argument("--livestream-id")
    send.add_argument("--retries", type=int, default=3, help="retries per order on a non-2xx reply")
    send.set_defaults(func=cmd_send_orders)

    seed = commands.add_parser("seed", help="load data into PostgreSQL (DATABASE_URL)")
    seed.add_argument(
        "what", choices=("demo",), help="demo: the demo catalog (sellers, products, stock, listings, lots)"
    )
    seed.set_defaults(func=cmd_seed)
    analytics = commands.add_parser("analytics", help="analytics' projections")
    analytics_commands = analytics.add_subparsers(dest="analytics_command", required=True)
    rebuild = analytics_commands.add_parser(
        "rebuild",
        help="replay the topics from their start into fresh projections (embedded: the platform stopped)",
    )
    rebuild.add_argument("--data-dir", help="embedded mode: the data dir (default: VUONMINH_DATA_DIR or .vuonminh)")
    rebuild.add_argument(
        "--kafka",
        action="store_true",
        help="replay Kafka into the PostgreSQL schema analytics_rebuild (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL)",
    )
    rebuild.add_argument("--swap", action="store_true", help="with --kafka: make the rebuilt schema the live one")
    rebuild.set_defaults(func=cmd_analytics_rebuild)

    add_shops_command(commands)
    add_access_commands(commands)  # keys, tokens
    add_simulate_command(commands)  # the marketplace simulator
    ops_cli.register(commands)  # topics, dlq
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    configure_logging(level=settings.log_level, json=settings.log_json)
    args.func(args)


if __name__ == "__main__":
    main()
