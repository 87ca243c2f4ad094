"""Shops and their webhook secrets: each shop signs with its own, stored encrypted at rest.

Intake checks a webhook against the secrets of the shop named in its body. It reads them from
an in-memory copy, loaded at start and reloaded every VUONMINH_SHOP_REFRESH_S (and at once after
a change made in this process, or when an unknown shop posts), so taking an order never waits
for the database. A shop has at most two active secrets: after `rotate-secret` the new one and
the one before it both verify, until `revoke-secret` drops the old one.

Secrets look like Standard Webhooks' (`whsec_` + base64 of 32 random bytes). Today the HMAC key
is the whole string, as X-VuonMinh-Signature always used it.
"""

from __future__ import annotations

import asyncio
import base64
import secrets as random_secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog
from cryptography.fernet import Fernet
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.orders import webhooks
from vuonminh.orders.channels import direct
from vuonminh.orders.metrics import FALLBACK_SECRET_USED, LEGACY_SIGNATURE_USED
from vuonminh.orders.models import Shop
from vuonminh.shared import db
from vuonminh.shared.runtime import ServiceRuntime
from vuonminh.shared.secret_box import SecretBox, SecretsKeyMissing
from vuonminh.shared.settings import Settings
from vuonminh.shared.timeutil import utc_now

log = structlog.get_logger(__name__)

SECRET_PREFIX = "whsec_"
# An unknown shop makes intake reload the secrets at most this often (a shop just added with
# the CLI is accepted at once; a flood of made-up shop ids costs one query a second).
_ON_DEMAND_RELOAD_EVERY_S = 1.0


class ShopError(Exception):
    """An operator command cannot be done; the message says why."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(random_secrets.token_bytes(32)).decode()


# -- encryption at rest ---------------------------------------------------------------------------------
def secrets_key_for(settings: Settings, data_dir: Path) -> str:
    """VUONMINH_SECRETS_KEY, else (embedded mode) one generated once into the data dir."""
    if settings.secrets_key:
        return settings.secrets_key
    path = data_dir / "secrets-key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


# -- operator commands (each in the caller's transaction) ----------------------------------------------
@dataclass(frozen=True)
class ShopInfo:
    """A shop as operators see it: never its secrets."""

    channel: str
    shop_id: str
    seller_id: str | None
    active_secrets: int
    created_at: datetime
    rotated_at: datetime | None


async def add_shop(
    session: AsyncSession, box: SecretBox, *, shop_id: str, channel: str = "direct", seller_id: str | None = None
) -> str:
    """Registers a shop with a new secret, returned once (only its encryption is stored)."""
    if not shop_id or len(shop_id) > 100:
        raise ShopError("a shop id has 1 to 100 characters")
    if await session.get(Shop, (channel, shop_id)) is not None:
        raise ShopError(f"shop {shop_id!r} of channel {channel} exists already (rotate-secret gives it a new secret)")
    secret = new_secret()
    session.add(
        Shop(
            channel=channel,
            shop_id=shop_id,
            seller_id=seller_id,
            secret_encrypted=box.encrypt(secret),
            created_at=utc_now(),
        )
    )
    return secret


async def rotate_secret(session: AsyncSession, box: SecretBox, *, shop_id: str, channel: str = "direct") -> str:
    """A new secret for the shop; the current one stays valid (as the previous) until revoked."""
    shop = await _shop(session, channel, shop_id)
    secret = new_secret()
    shop.previous_secret_encrypted = shop.secret_encrypted
    shop.secret_encrypted = box.encrypt(secret)
    shop.rotated_at = utc_now()
    session.add(shop)
    return secret


async def revoke_secret(
    session: AsyncSession, *, shop_id: str, channel: str = "direct", every_secret: bool = False
) -> int:
    """Drops the previous secret (the end of a rotation), or with `every_secret` both: the shop
    is then refused until rotate-secret gives it a new one. Returns how many were revoked."""
    shop = await _shop(session, channel, shop_id)
    revoked = sum(value is not None for value in (shop.previous_secret_encrypted, shop.secret_encrypted))
    if every_secret:
        shop.secret_encrypted = shop.previous_secret_encrypted = None
    else:
        if shop.previous_secret_encrypted is None:
            raise ShopError(
                f"shop {shop_id!r} has no previous secret to revoke (use --all to revoke its current secret too)"
            )
        shop.previous_secret_encrypted = None
        revoked = 1
    session.add(shop)
    return revoked


async def list_shops(session: AsyncSession) -> list[ShopInfo]:
    shops = (await session.exec(select(Shop).order_by(Shop.channel, Shop.shop_id))).all()
    return [
        ShopInfo(
            channel=shop.channel,
            shop_id=shop.shop_id,
            seller_id=shop.seller_id,
            active_secrets=sum(v is not None for v in (shop.secret_encrypted, shop.previous_secret_encrypted)),
            created_at=shop.created_at,
            rotated_at=shop.rotated_at,
        )
        for shop in shops
    ]


async def current_secret(session: AsyncSession, box: SecretBox, *, shop_id: str, channel: str = "direct") -> str | None:
    """The shop's current secret in clear: only for the demo, which prints its own shops' secrets."""
    shop = await session.get(Shop, (channel, shop_id))
    if shop is None or shop.secret_encrypted is None:
        return None
    return box.decrypt(shop.secret_encrypted)


async def _shop(session: AsyncSession, channel: str, shop_id: str) -> Shop:
    shop = await session.get(Shop, (channel, shop_id))
    if shop is None:
        raise ShopError(f"no shop {shop_id!r} in channel {channel} (vuonminh shops list shows them)")
    return shop


# -- the in-memory copy intake reads --------------------------------------------------------------------
@dataclass(frozen=True)
class ShopSecrets:
    # None when they are stored but cannot be decrypted here (VUONMINH_SECRETS_KEY missing or wrong).
    secrets: tuple[str, ...] | None


class ShopRegistry:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self._runtime = runtime
        try:
            self._box = SecretBox(runtime.settings.secrets_key)
        except SecretsKeyMissing as error:  # `serve` refuses to start so; tests may build one anyway
            log.error("orders.secrets_key_invalid", error=str(error))
            self._box = SecretBox(None)
        self._shops: dict[tuple[str, str], ShopSecrets] = {}
        self.loaded = False
        self._last_attempt_monotonic = float("-inf")
        self._lock = asyncio.Lock()

    def get(self, channel: str, shop_id: str) -> ShopSecrets | None:
        return self._shops.get((channel, shop_id))

    async def reload(self) -> None:
        async with self._lock:
            async with db.read_only_session(self._runtime.engine) as session:
                rows = (await session.exec(select(Shop))).all()
            shops: dict[tuple[str, str], ShopSecrets] = {}
            undecryptable = []
            for row in rows:
                stored = [token for token in (row.secret_encrypted, row.previous_secret_encrypted) if token]
                try:
                    shops[(row.channel, row.shop_id)] = ShopSecrets(tuple(self._box.decrypt(t) for t in stored))
                except SecretsKeyMissing:
                    shops[(row.channel, row.shop_id)] = ShopSecrets(None)
                    undecryptable.append(row.shop_id)
            if undecryptable:
                log.error(
                    "orders.shop_secrets_unreadable",
                    shops=undecryptable[:20],
                    count=len(undecryptable),
                    hint="set VUONMINH_SECRETS_KEY to the key the secrets were stored with",
                )
            self._shops = shops  # one assignment: readers see the old copy or the new one
            self.loaded = True

    async def reload_within(self, timeout_s: float, *, at_most_every_s: float = 0.0) -> bool:
        """Reload, giving up after `timeout_s`; skipped when tried within `at_most_every_s`.

        Returns whether the copy is fresh from this call. The attempts are spaced, not only the
        successes, so that a database that is down does not slow every request.
        """
        now = time.monotonic()
        if now - self._last_attempt_monotonic < at_most_every_s:
            return False
        self._last_attempt_monotonic = now
        try:
            async with asyncio.timeout(timeout_s):
                await self.reload()
            return True
        except Exception as error:
            log.warning("orders.shop_reload_failed", error=repr(error))
            return False


def registry_of(runtime: ServiceRuntime) -> ShopRegistry:
    registry = runtime.state.get("shop_registry")
    if registry is None:
        registry = runtime.state["shop_registry"] = ShopRegistry(runtime)
    return registry


async def refresh_shop_secrets(runtime: ServiceRuntime) -> None:
    """Background loop: keeps the in-memory copy of the shops' secrets fresh."""
    registry = registry_of(runtime)
    if runtime.settings.direct_secret:
        log.warning(
            "orders.deprecated_direct_secret",
            hint="VUONMINH_DIRECT_SECRET signs for every unregistered shop; register shops (vuonminh shops add) "
            "and unset it",
        )
    while True:
        try:
            await registry.reload()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the database is away: keep serving the copy we have
            log.warning("orders.shop_reload_failed", error=repr(error))
        await asyncio.sleep(runtime.settings.shop_refresh_s)


# -- checking a webhook ---------------------------------------------------------------------------------
class ShopsUnavailable(Exception):
    """The shop's secrets cannot be read right now: answer 503, the shop retries."""


async def verify_webhook(
    runtime: ServiceRuntime,
    *,
    channel: str,
    shop_id: str | None,
    headers: Mapping[str, str],
    body: bytes,
    now: int,
) -> str | None:
    """Raises webhooks.SignatureError (401) unless `body` is signed with a secret of `shop_id`.

    Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`) are checked when
    present, and the `webhook-id` returned (the dedupe key); otherwise the deprecated
    X-VuonMinh-Signature is checked and None returned. A registered shop is checked against its own
    secrets only. A shop that is not registered is refused, except while the deprecated
    VUONMINH_DIRECT_SECRET is configured: then that one secret verifies it, as before shops had their own.
    """
    settings = runtime.settings
    registry = registry_of(runtime)
    timeout_s = settings.intake_lookup_timeout_s
    if not registry.loaded:
        await registry.reload_within(timeout_s, at_most_every_s=_ON_DEMAND_RELOAD_EVERY_S)
        if not registry.loaded:
            raise ShopsUnavailable("the shops' secrets are not loaded yet (database unreachable since start)")
    shop = registry.get(channel, shop_id) if shop_id is not None else None
    # Perhaps added a moment ago from another process: look once more (rate-limited).
    if (
        shop is None
        and shop_id is not None
        and await registry.reload_within(timeout_s, at_most_every_s=_ON_DEMAND_RELOAD_EVERY_S)
    ):
        shop = registry.get(channel, shop_id)
    candidates: Sequence[str]
    if shop is not None:
        if shop.secrets is None:
            raise ShopsUnavailable(f"shop {shop_id!r}'s secrets cannot be read by this server (VUONMINH_SECRETS_KEY)")
        if not shop.secrets:
            raise webhooks.SignatureError(f"shop {shop_id!r} has no active secret (revoked): refused")
        candidates = shop.secrets
    elif settings.direct_secret:
        candidates = (settings.direct_secret,)
    elif shop_id is None:
        raise webhooks.SignatureError("the body names no shop_id, so there is no secret to check its signature with")
    else:
        raise webhooks.SignatureError(
            f"unknown shop {shop_id!r}: it is not registered for the {channel} channel (vuonminh shops add)"
        )
    tolerance_s = settings.signature_tolerance_s
    if direct.uses_standard_webhooks(headers):
        webhook_id: str | None = direct.verify(headers, body, secrets=candidates, now=now, tolerance_s=tolerance_s)
    else:
        header = headers.get(webhooks.SIGNATURE_HEADER)
        webhooks.verify(header, body, secrets=candidates, now=now, tolerance_s=tolerance_s)
        webhook_id = None
        LEGACY_SIGNATURE_USED.labels(channel).inc()
    if shop is None:
        FALLBACK_SECRET_USED.labels(channel).inc()
    return webhook_id


# -- marketplace shops: API tokens ---------------------------------------------------------------------------
async def connect_platform_shop(
    session: AsyncSession,
    box: SecretBox,
    *,
    channel: str,
    shop_id: str,
    seller_id: str | None,
    access_token: str,
    refresh_token: str | None,
    access_expires_at: datetime | None,
    refresh_expires_at: datetime | None = None,
    shop_cipher: str | None = None,
) -> bool:
    """Connects (or reconnects) a marketplace shop: its Open API tokens, stored encrypted. Returns
    True when the shop is new."""
    if not shop_id or len(shop_id) > 100:
        raise ShopError("a shop id has 1 to 100 characters")
    if not access_token:
        raise ShopError("a marketplace shop needs its access token")
    shop = await session.get(Shop, (channel, shop_id))
    new = shop is None
    if shop is None:
        shop = Shop(channel=channel, shop_id=shop_id, created_at=utc_now())
    shop.seller_id = seller_id or shop.seller_id
    shop.access_token_encrypted = box.encrypt(access_token)
    shop.refresh_token_encrypted = box.encrypt(refresh_token) if refresh_token else None
    shop.access_expires_at = access_expires_at
    shop.refresh_expires_at = refresh_expires_at
    shop.shop_cipher = shop_cipher
    shop.rotated_at = None if new else utc_now()
    session.add(shop)
    return new
