"""orders' write use-cases called by the API: connecting shops and scheduling livestreams."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col

from vuonminh.orders import shops
from vuonminh.orders.models import Livestream, LivestreamIn, LivestreamOut, Order, ShopIn, ShopOut
from vuonminh.shared.events import LivestreamScheduled
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.unit_of_work import UnitOfWork


class CommandError(ValueError):
    """Refused input: the message says what is wrong (422)."""


async def connect_shop(uow: UnitOfWork, box: shops.SecretBox, shop: ShopIn) -> ShopOut:
    if shop.channel == "direct":
        if shop.access_token or shop.refresh_token:
            raise CommandError("a direct shop has no platform tokens: it signs its webhooks with the secret made here")
        try:
            secret = await shops.add_shop(uow.session, box, shop_id=shop.shop_id, seller_id=shop.seller_id)
        except (shops.ShopError, shops.SecretsKeyMissing) as error:
            raise CommandError(str(error)) from error
        return ShopOut(
            channel="direct", shop_id=shop.shop_id, seller_id=shop.seller_id, created=True, webhook_secret=secret
        )
    if not shop.access_token:
        raise CommandError(f"a {shop.channel} shop needs access_token (and refresh_token, access_expires_at)")
    if shop.channel == "tiktok_shop" and not shop.shop_cipher:
        raise CommandError("a tiktok_shop shop needs its shop_cipher (from TikTok's authorized shops API)")
    created = await shops.connect_platform_shop(
        uow.session,
        box,
        channel=shop.channel,
        shop_id=shop.shop_id,
        seller_id=shop.seller_id,
        access_token=shop.access_token,
        refresh_token=shop.refresh_token,
        access_expires_at=shop.access_expires_at,
        refresh_expires_at=shop.refresh_expires_at,
        shop_cipher=shop.shop_cipher,
    )
    return ShopOut(
        channel=shop.channel,
        shop_id=shop.shop_id,
        seller_id=shop.seller_id,
        created=created,
        access_expires_at=shop.access_expires_at,
    )


async def schedule_livestream(uow: UnitOfWork, live: LivestreamIn) -> LivestreamOut:
    """Stores (or replaces) the session, tags the orders already placed in its window on its shop, and
    publishes livestream_scheduled."""
    if live.ends_at <= live.starts_at:
        raise CommandError("ends_at must be after starts_at")
    row = await uow.session.get(Livestream, live.livestream_id)
    if row is None:
        row = Livestream(id=live.livestream_id, created_at=utc_now(), **live.model_dump(exclude={"livestream_id"}))
    else:
        for name, value in live.model_dump(exclude={"livestream_id"}).items():
            setattr(row, name, value)
    uow.session.add(row)
    tagged = await uow.session.exec(
        update(Order)
        .where(
            col(Order.channel) == live.channel,
            col(Order.shop_id) == live.shop_id,
            col(Order.placed_at) >= live.starts_at,
            col(Order.placed_at) < live.ends_at,
            col(Order.livestream_id).is_(None),
        )
        .values(livestream_id=live.livestream_id)
    )
    uow.publish(
        LivestreamScheduled(
            livestream_id=live.livestream_id,
            seller_id=live.seller_id,
            channel=live.channel,
            shop_id=live.shop_id,
            title=live.title,
            starts_at=live.starts_at,
            ends_at=live.ends_at,
            featured_skus=tuple(live.featured_skus),
        )
    )
    return LivestreamOut(**live.model_dump(), orders_counted=tagged.rowcount or 0)
