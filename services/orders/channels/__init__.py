"""The sales channels as data: one entry per channel, one module each.

Adding a marketplace is one module (verify its webhook, read its notification, fetch and normalise its
order, its status map, deadline and limits: see base.Marketplace) plus one line in MARKETPLACES.
"""

from __future__ import annotations

from vuonminh.orders.channels.base import Marketplace
from vuonminh.orders.channels.direct import Direct
from vuonminh.orders.channels.lazada import Lazada
from vuonminh.orders.channels.shopee import Shopee
from vuonminh.orders.channels.tiktok_shop import TikTokShop

MARKETPLACES: dict[str, Marketplace] = {channel.name: channel for channel in (TikTokShop(), Shopee(), Lazada())}
BY_SLUG: dict[str, Marketplace] = {channel.slug: channel for channel in MARKETPLACES.values()}
DIRECT = Direct()
CHANNEL_NAMES: tuple[str, ...] = (DIRECT.name, *MARKETPLACES)


def marketplace(name: str) -> Marketplace:
    try:
        return MARKETPLACES[name]
    except KeyError:
        raise KeyError(f"unknown marketplace {name!r}; expected one of {', '.join(MARKETPLACES)}") from None
