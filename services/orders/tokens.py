"""Keeps marketplace shops' access tokens fresh: before one expires (VUONMINH_TOKEN_REFRESH_MARGIN_S), the
worker asks the platform for new tokens with the refresh token and stores them encrypted. Tokens are
never logged."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from sqlmodel import col, select

from vuonminh.orders.channels import MARKETPLACES
from vuonminh.orders.fetcher import client_of
from vuonminh.orders.metrics import TOKEN_REFRESHES
from vuonminh.orders.models import Shop
from vuonminh.orders.settings import platform_settings
from vuonminh.orders.shops import SecretBox
from vuonminh.shared.runtime import ServiceRuntime
from vuonminh.shared.timeutil import utc_now

log = structlog.get_logger(__name__)


async def refresh_due_tokens(runtime: ServiceRuntime) -> int:
    """One pass: refreshes every token expiring within the margin; returns how many were refreshed."""
    settings = platform_settings(runtime)
    box = SecretBox(runtime.settings.secrets_key)
    soon = utc_now() + timedelta(seconds=settings.token_refresh_margin_s)
    async with runtime.sessions() as session:
        due = (
            await session.exec(
                select(Shop).where(
                    col(Shop.channel).in_(list(MARKETPLACES)),
                    col(Shop.refresh_token_encrypted).is_not(None),
                    col(Shop.access_expires_at) < soon,
                )
            )
        ).all()
    refreshed = 0
    for shop in due:
        channel = MARKETPLACES[shop.channel]
        try:
            grant = await channel.refresh(
                client_of(runtime), shop.shop_id, box.decrypt(shop.refresh_token_encrypted or "")
            )
        except Exception as error:  # tried again at the next pass; the old token works until it expires
            TOKEN_REFRESHES.labels(shop.channel, "failed").inc()
            log.warning("orders.token_refresh_failed", channel=shop.channel, shop_id=shop.shop_id, error=repr(error))
            continue
        async with runtime.unit_of_work() as uow:
            row = await uow.session.get(Shop, (shop.channel, shop.shop_id))
            if row is None:
                continue
            row.access_token_encrypted = box.encrypt(grant.access_token)
            row.refresh_token_encrypted = box.encrypt(grant.refresh_token)
            row.access_expires_at = grant.access_expires_at
            row.refresh_expires_at = grant.refresh_expires_at or row.refresh_expires_at
            row.rotated_at = utc_now()
            uow.session.add(row)
        TOKEN_REFRESHES.labels(shop.channel, "refreshed").inc()
        log.info(
            "orders.token_refreshed", channel=shop.channel, shop_id=shop.shop_id, expires_at=grant.access_expires_at
        )
        refreshed += 1
    return refreshed


async def refresh_platform_tokens(runtime: ServiceRuntime) -> None:
    """Background job of the worker: every VUONMINH_TOKEN_CHECK_S, refresh the tokens that expire soon."""
    while True:
        try:
            await refresh_due_tokens(runtime)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the database may be away: next pass
            log.warning("orders.token_refresh_pass_failed", error=repr(error))
        await asyncio.sleep(platform_settings(runtime).token_check_s)
