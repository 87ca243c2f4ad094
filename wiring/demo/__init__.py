"""Demo data kept in the repo: sellers, products, stock, listings and lots of real programme communes, and orders."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import date, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any

from vuonminh.shared.timeutil import utc_now


def vietnam_today() -> date:
    return (utc_now() + timedelta(hours=7)).date()


@lru_cache
def demo_catalog() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("catalog.json").read_text(encoding="utf-8"))


def demo_listings() -> list[dict[str, Any]]:
    """The demo products as catalog's `POST /v1/products` takes them."""
    return list(demo_catalog()["products"])


def in_season_products(on_day: date) -> list[dict[str, Any]]:
    """The demo products orderable on that day: Tết flowers and fruit have seasons."""
    return [
        product
        for product in demo_catalog()["products"]
        if not product.get("season_starts_on")
        or product["season_starts_on"] <= on_day.isoformat() <= product["season_ends_on"]
    ]


async def seed_demo_catalog(unit_of_work: Callable[[], AbstractAsyncContextManager[Any]]) -> dict[str, int]:
    """Writes the demo catalog through catalog's own commands, one unit of work each (idempotent: a
    second run creates nothing). Their events wait in catalog's outbox for its relay. Returns how many
    of each were newly created."""
    # The composition root may know the services; the services never import this module.
    from vuonminh.catalog import commands
    from vuonminh.catalog.models import ListingIn, LotIn, ProductIn, ProvincialShopIn, SellerIn

    data = demo_catalog()
    created = {"provincial_shops": 0, "sellers": 0, "products": 0, "listings": 0, "lots": 0}
    steps = (
        (
            "provincial_shops",
            data["provincial_shops"],
            lambda uow, d: commands.register_provincial_shop(uow, ProvincialShopIn(**d)),
        ),
        ("sellers", data["sellers"], lambda uow, d: commands.register_seller(uow, SellerIn(**d))),
        ("products", data["products"], lambda uow, d: commands.list_product(uow, ProductIn(**d))),
        (
            "listings",
            data["listings"],
            lambda uow, d: commands.publish_listing(
                uow, d["sku"], ListingIn(**{k: v for k, v in d.items() if k != "sku"})
            ),
        ),
        (
            "lots",
            data["lots"],
            lambda uow, d: commands.record_lot(uow, d["sku"], LotIn(**{k: v for k, v in d.items() if k != "sku"})),
        ),
    )
    for what, entries, command in steps:
        for entry in entries:
            async with unit_of_work() as uow:
                _, new = await command(uow, entry)
                created[what] += new
    return created


async def load_demo_catalog(platform: Any) -> tuple[int, int]:
    """Loads the demo catalog into the embedded platform and waits until orders knows its products.

    Returns how many sellers and products were newly created.
    """
    created = await seed_demo_catalog(platform.service("catalog").unit_of_work)
    await wait_until_orders_know_products(platform, len(demo_catalog()["products"]))
    return created["sellers"], created["products"]


async def register_demo_shops(platform: Any) -> dict[str, str]:
    """Registers the demo shops with orders, each with its own webhook secret; returns them.

    A shop registered by an earlier run keeps its secret (the demo reads it back to print it).
    """
    from vuonminh.orders import shops

    orders = platform.service("orders")
    box = shops.SecretBox(orders.settings.secrets_key)
    secrets_by_shop = {}
    for shop_id in demo_catalog()["shops"]:
        async with orders.unit_of_work() as uow:
            secret = await shops.current_secret(uow.session, box, shop_id=shop_id)
            if secret is None:
                try:
                    secret = await shops.add_shop(uow.session, box, shop_id=shop_id)
                except shops.ShopError:  # registered, its secrets revoked: give it a new one
                    secret = await shops.rotate_secret(uow.session, box, shop_id=shop_id)
        secrets_by_shop[shop_id] = secret
    await shops.registry_of(orders).reload()  # accepted at once, not at the next refresh
    return secrets_by_shop


async def wait_until_orders_know_products(platform: Any, count: int, *, timeout_s: float = 30) -> None:
    """Catalog's events reach orders asynchronously; a demo order sent before they arrive
    would be rejected as an unknown SKU, so the demo waits for them."""
    from sqlalchemy import func, select

    from vuonminh.orders.models import KnownProduct

    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        async with platform.service("orders").sessions() as session:
            known = await session.scalar(select(func.count()).select_from(KnownProduct))
        if known >= count:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"orders knows {known} of {count} products after {timeout_s} s")
        await asyncio.sleep(0.05)


def demo_order(
    sequence: int,
    *,
    rng: random.Random,
    run_id: str,
    livestream_id: str | None = None,
    shops: list[str] | None = None,
) -> dict[str, Any]:
    """A realistic direct-channel order body from one of `shops` (default: the demo shops);
    ids are unique per (run_id, sequence)."""
    data = demo_catalog()
    orderable = in_season_products(vietnam_today())
    products = rng.sample(orderable, k=min(len(orderable), rng.choice((1, 1, 1, 2, 3))))
    address = rng.choice(data["buyer_addresses"])
    return {
        "shop_id": rng.choice(shops or data["shops"]),
        "order_id": f"{run_id}-{sequence:07d}",
        "placed_at": (utc_now() - timedelta(seconds=rng.randint(0, 600))).isoformat(),
        "livestream_id": livestream_id,
        "buyer": {
            "name": rng.choice(data["buyer_names"]),
            "phone": f"09{rng.randint(10_000_000, 99_999_999)}",
            "address": address,
        },
        "items": [
            {"sku": p["sku"], "quantity": rng.choice((1, 1, 2, 3)), "unit_price_vnd": p["price_vnd"]} for p in products
        ],
        "payment": {"method": rng.choice(("cod", "cod", "prepaid"))},
    }
