"""Operator commands of orders: `vuonminh shops add|list|rotate-secret|revoke-secret`.

They work on orders' own database: its schema on the PostgreSQL server when DATABASE_URL is
set, else the embedded `orders.sqlite3` in the data dir. A new secret is printed once, on
standard output (explanations go to standard error), and only its encryption is stored. A running
orders service picks the change up within VUONMINH_SHOP_REFRESH_S, or at once when the shop is new.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from vuonminh.orders import shops
from vuonminh.shared import db
from vuonminh.shared.settings import Settings, get_settings
from vuonminh.shared.timeutil import utc_now


def add_shops_command(commands: Any) -> None:
    """Adds `shops` and its actions to the `vuonminh` command's subparsers."""
    parser = commands.add_parser("shops", help="shops allowed to post orders, and their webhook secrets")
    actions = parser.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="embedded mode: where orders.sqlite3 lives (default: VUONMINH_DATA_DIR)")

    add = actions.add_parser("add", parents=[common], help="register a shop; prints its new webhook secret once")
    add.add_argument("shop_id")
    add.add_argument("--seller", dest="seller_id", help="the seller or cooperative the shop belongs to")

    actions.add_parser("list", parents=[common], help="the registered shops (never their secrets)")

    rotate = actions.add_parser(
        "rotate-secret",
        parents=[common],
        help="a new secret (printed once); the current one keeps working until revoked",
    )
    rotate.add_argument("shop_id")

    revoke = actions.add_parser(
        "revoke-secret", parents=[common], help="revoke the previous secret (the end of a rotation)"
    )
    revoke.add_argument("shop_id")
    revoke.add_argument(
        "--all", dest="every_secret", action="store_true", help="revoke the current secret too: the shop is refused"
    )
    add.add_argument("--access-token", help="marketplace shops: the Open API access token (stored encrypted)")
    add.add_argument("--refresh-token", help="marketplace shops: the refresh token (stored encrypted)")
    add.add_argument("--expires-in", type=int, help="marketplace shops: seconds until the access token expires")
    add.add_argument("--shop-cipher", help="TikTok Shop: the shop's cipher")
    add.add_argument(
        "--channel", default="direct", choices=("direct", "tiktok_shop", "shopee", "lazada"), help="default: direct"
    )
    for action in (rotate, revoke):
        action.add_argument("--channel", default="direct", choices=("direct",))
    parser.set_defaults(func=cmd_shops)


def cmd_shops(args: argparse.Namespace) -> None:
    # The migration run before each command is routine here: only its warnings are worth showing.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = get_settings()
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
    try:
        asyncio.run(_run(args, settings, data_dir))
    except (shops.ShopError, shops.SecretsKeyMissing) as error:
        raise SystemExit(f"vuonminh shops {args.action}: {error}") from None


async def _run(args: argparse.Namespace, settings: Settings, data_dir: Path) -> None:
    if settings.database_url:
        engine = db.postgres_engine(settings.database_url, schema="orders")
        key = settings.secrets_key
    else:
        engine = db.sqlite_engine(data_dir / "orders.sqlite3")
        key = shops.secrets_key_for(settings, data_dir)  # the one `vuonminh run` uses
    try:
        await _migrated(engine)
        await ACTIONS[args.action](engine, shops.SecretBox(key), args)
    finally:
        await engine.dispose()


async def _migrated(engine: AsyncEngine) -> None:
    from vuonminh.shared.runtime import load_service

    spec = load_service("orders")
    await db.migrate(engine, spec.metadata, service=spec.name)


def _print_secret(message: str, secret: str) -> None:
    print(message, file=sys.stderr)
    print(secret, flush=True)


async def _add(engine: AsyncEngine, box: shops.SecretBox, args: argparse.Namespace) -> None:
    if args.channel != "direct":
        if not args.access_token:
            raise shops.ShopError(f"a {args.channel} shop needs --access-token (and --refresh-token, --expires-in)")
        expires = utc_now() + timedelta(seconds=args.expires_in) if args.expires_in else None
        async with db.session_factory(engine)() as session, session.begin():
            new = await shops.connect_platform_shop(
                session,
                box,
                channel=args.channel,
                shop_id=args.shop_id,
                seller_id=args.seller_id,
                access_token=args.access_token,
                refresh_token=args.refresh_token,
                access_expires_at=expires,
                shop_cipher=args.shop_cipher,
            )
        verb = "connected" if new else "reconnected (tokens replaced)"
        print(f"Shop {args.shop_id} of {args.channel} {verb}; its tokens are stored encrypted.", file=sys.stderr)
        return
    async with db.session_factory(engine)() as session, session.begin():
        secret = await shops.add_shop(
            session, box, shop_id=args.shop_id, channel=args.channel, seller_id=args.seller_id
        )
    _print_secret(f"Shop {args.shop_id} registered. Its webhook secret, shown this once:", secret)


async def _list(engine: AsyncEngine, _box: shops.SecretBox, _args: argparse.Namespace) -> None:
    async with db.session_factory(engine)() as session:
        found = await shops.list_shops(session)
    if not found:
        print("No shops registered (vuonminh shops add <shop_id>).", file=sys.stderr)
        return
    rows = [("CHANNEL", "SHOP", "SELLER", "ACTIVE SECRETS", "CREATED", "ROTATED")]
    for shop in found:
        rows.append(
            (
                shop.channel,
                shop.shop_id,
                shop.seller_id or "-",
                str(shop.active_secrets),
                shop.created_at.isoformat(timespec="seconds"),
                shop.rotated_at.isoformat(timespec="seconds") if shop.rotated_at else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


async def _rotate(engine: AsyncEngine, box: shops.SecretBox, args: argparse.Namespace) -> None:
    async with db.session_factory(engine)() as session, session.begin():
        secret = await shops.rotate_secret(session, box, shop_id=args.shop_id, channel=args.channel)
    _print_secret(
        f"Shop {args.shop_id} has a new webhook secret, shown this once. The one before it keeps working "
        f"until `vuonminh shops revoke-secret {args.shop_id}`:",
        secret,
    )


async def _revoke(engine: AsyncEngine, _box: shops.SecretBox, args: argparse.Namespace) -> None:
    async with db.session_factory(engine)() as session, session.begin():
        revoked = await shops.revoke_secret(
            session, shop_id=args.shop_id, channel=args.channel, every_secret=args.every_secret
        )
    what = "every secret" if args.every_secret else "the previous secret"
    print(f"Revoked {what} of shop {args.shop_id} ({revoked} in all).", file=sys.stderr)


ACTIONS: dict[str, Callable[[AsyncEngine, shops.SecretBox, argparse.Namespace], Awaitable[None]]] = {
    "add": _add,
    "list": _list,
    "rotate-secret": _rotate,
    "revoke-secret": _revoke,
}
