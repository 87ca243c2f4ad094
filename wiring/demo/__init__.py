"""Demo data kept in the repo: sellers and products of real programme communes, and orders."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta
from functools import lru_cache
from importlib import resources
from typing import Any

from vuonminh.shared.timeutil import utc_now


@lru_cache
def demo_catalog() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("catalog.json").read_text(encoding="utf-8"))


def demo_listings() -> list[dict[str, Any]]:
    """The demo products as catalog takes them (the price is the shops', not catalog's)."""
    return [{k: v for k, v in product.items() if k != "price_vnd"} for product in demo_catalog()["products"]]


async def load_demo_catalog(platform: Any) -> tuple[int, int]:
    """Registers the demo sellers and products through catalog's own commands (idempotent).

    Returns how many were newly created.
    """
    # The composition root may know the services; the services never import this module.
    from vuonminh.catalog import commands
    from vuonminh.catalog.models import ProductIn, SellerIn

    catalog = platform.service("catalog")
    data = demo_catalog()
    sellers = products = 0
    for seller in data["sellers"]:
        async with catalog.unit_of_work() as uow:
            _, created = await commands.register_seller(uow, SellerIn(**seller))
            sellers += created
    for listing in demo_listings():
        async with catalog.unit_of_work() as uow:
            _, created = await commands.list_product(uow, ProductIn(**listing))
            products += created
    await wait_until_orders_know_products(platform, len(data["products"]))
    return sellers, products


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
    products = rng.sample(data["products"], k=rng.choice((1, 1, 1, 2, 3)))
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
