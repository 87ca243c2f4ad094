"""Who is calling: roles, scopes, bearer tokens and API keys, verified inside each service.

Every route declares who may call it:

    @router.get("/v1/orders")
    async def list_orders(caller: Annotated[Caller, Depends(require(Role.seller, Role.platform))]): ...

and filters what it reads by `caller` (an object outside the caller's scope answers 404).

Two kinds of credential arrive as `Authorization: Bearer <credential>`:

- **Tokens**: JWTs signed with Ed25519 (`EdDSA`), carrying the role and scope as claims. Each
  service verifies them with the public keys in VUONMINH_TOKEN_VERIFY_KEYS (`kid:key`, several
  during a rotation); only the issuer (the `vuonminh tokens` command, the embedded run) holds the
  private VUONMINH_TOKEN_SIGNING_KEY. Tokens expire; one can also be revoked by its id (`jti`).
- **API keys** for machines: `vmk_<key id>_<secret>`, long-lived, shown once. Services keep
  only the SHA-256 of the secret (the secret is 32 random bytes: a slow hash adds nothing) in
  their `credentials` table, with the role, scope and revocation.

Browsers cannot set that header on a link, so a person signs in once on a page (the dashboard's
`/dashboard/login`) and the credential rides in an HttpOnly, SameSite=Strict cookie
(`SESSION_COOKIE`). The cookie is read only for GET and HEAD: it can show a person what their
credential may read, never write anything (no cross-site request forgery of writes).

Where the records live: every service's own database holds a `credentials` table, and
`vuonminh keys`/`vuonminh tokens` write each record to every service's database (idempotent:
a repeated create or revoke converges). A service never calls another to check a credential.
The API part keeps the table in memory (reloaded every VUONMINH_CREDENTIALS_REFRESH_S, and at
once, at most once a second, when an unknown key id arrives), so checking a credential costs
no database round trip on the request's path.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import JSON, Column, DateTime, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vuonminh.shared.ratelimit import rate_limits_of
from vuonminh.shared.settings import Settings
from vuonminh.shared.timeutil import as_utc, utc_now

log = structlog.get_logger(__name__)

TOKEN_ISSUER = "vuonminh"
TOKEN_AUDIENCE = "vuonminh-api"
TOKEN_ALGORITHM = "EdDSA"
API_KEY_PREFIX = "vmk_"
_KEY_ID_LENGTH = 12
# Clocks of issuer and services may differ a little.
_LEEWAY_S = 30
# An unknown API key id makes the registry reload at most this often (a key just created is
# accepted at once; a flood of made-up keys costs one query a second).
_ON_DEMAND_RELOAD_EVERY_S = 1.0


class Role(StrEnum):
    operator = "operator"  # runs the platform: everything
    platform = "platform"  # a shop integration: its shops' orders
    seller = "seller"  # a household, cooperative or aggregator: its sellers' things
    commune_official = "commune_official"  # reads its communes (2025 ward codes)
    province_official = "province_official"  # reads its provinces
    carrier = "carrier"  # a carrier partner: its own shipments


# The scope field each role is confined by (the operator has none: it sees everything).
SCOPE_OF_ROLE: Mapping[Role, str] = {
    Role.platform: "shop_ids",
    Role.seller: "seller_ids",
    Role.commune_official: "ward_codes",
    Role.province_official: "province_codes",
    Role.carrier: "carrier",
}


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: its role, who it is, and what it may see."""

    role: Role
    subject: str
    seller_ids: frozenset[str] = frozenset()
    shop_ids: frozenset[str] = frozenset()
    ward_codes: frozenset[str] = frozenset()
    province_codes: frozenset[str] = frozenset()
    carrier: str | None = None
    # The API key id or token id that authenticated it: for audit trails and rate limits.
    credential_id: str = ""

    @property
    def is_operator(self) -> bool:
        return self.role is Role.operator

    def may_see_seller(self, seller_id: str | None) -> bool:
        return self.is_operator or (self.role is Role.seller and seller_id in self.seller_ids)

    def may_see_shop(self, shop_id: str | None) -> bool:
        return self.is_operator or (self.role is Role.platform and shop_id in self.shop_ids)

    def may_see_ward(self, ward_code: str | None) -> bool:
        return self.is_operator or (self.role is Role.commune_official and ward_code in self.ward_codes)

    def may_see_province(self, province_code: str | None) -> bool:
        return self.is_operator or (self.role is Role.province_official and province_code in self.province_codes)

    def may_see_place(self, *, ward_code: str | None, province_code: str | None) -> bool:
        """An official's view: a commune official its wards, a province official its provinces."""
        return self.may_see_ward(ward_code) or self.may_see_province(province_code)

    def may_see_carrier(self, carrier: str | None) -> bool:
        return self.is_operator or (self.role is Role.carrier and carrier is not None and carrier == self.carrier)

    def scope_claims(self) -> dict[str, Any]:
        """The scope as JSON (token claims, credential records); empty fields left out."""
        claims: dict[str, Any] = {}
        for name in ("seller_ids", "shop_ids", "ward_codes", "province_codes"):
            values = getattr(self, name)
            if values:
                claims[name] = sorted(values)
        if self.carrier:
            claims["carrier"] = self.carrier
        return claims

    def problems(self) -> list[str]:
        """What is missing for this role's scope ([] = complete); issuers refuse incomplete callers."""
        needed = SCOPE_OF_ROLE.get(self.role)
        if needed and not getattr(self, needed):
            return [f"role {self.role.value} needs a scope: {needed}"]
        return []


def caller_from_claims(role: str, subject: str, scope: Mapping[str, Any] | None, *, credential_id: str = "") -> Caller:
    """A Caller from stored or signed claims; ValueError names what is malformed."""
    try:
        parsed_role = Role(role)
    except ValueError:
        raise ValueError(f"unknown role {role!r}") from None
    scope = scope or {}
    if not isinstance(scope, Mapping):
        raise ValueError("scope must be an object")

    def strings(name: str) -> frozenset[str]:
        values = scope.get(name) or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"scope.{name} must be a list of strings")
        return frozenset(values)

    carrier = scope.get("carrier")
    if carrier is not None and not isinstance(carrier, str):
        raise ValueError("scope.carrier must be a string")
    return Caller(
        role=parsed_role,
        subject=subject,
        seller_ids=strings("seller_ids"),
        shop_ids=strings("shop_ids"),
        ward_codes=strings("ward_codes"),
        province_codes=strings("province_codes"),
        carrier=carrier,
        credential_id=credential_id,
    )


# -- errors ---------------------------------------------------------------------------------------------
class Unauthenticated(Exception):
    """No valid credential: the message says what is wrong with it (401)."""


def unauthenticated(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(caller: Caller, roles: Iterable[Role]) -> HTTPException:
    allowed = ", ".join(role.value for role in roles)
    return HTTPException(
        status.HTTP_403_FORBIDDEN, f"role {caller.role.value} may not call this route (allowed: {allowed})"
    )


# -- keys of tokens -------------------------------------------------------------------------------------
def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key and its id (`kid`), written `kid:base64url(32-byte seed)`."""

    kid: str
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        return cls(kid or utc_now().strftime("%Y%m%d") + "-" + secrets.token_hex(3), Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, text: str) -> SigningKey:
        kid, _, seed = text.strip().partition(":")
        try:
            raw = _unb64(seed)
            if not kid or len(raw) != 32:
                raise ValueError
            return cls(kid, Ed25519PrivateKey.from_private_bytes(raw))
        except ValueError:
            raise ValueError(
                "VUONMINH_TOKEN_SIGNING_KEY must be 'kid:<base64url of a 32-byte Ed25519 seed>' "
                "(`vuonminh tokens keygen` makes one)"
            ) from None

    def __str__(self) -> str:
        from cryptography.hazmat.primitives import serialization

        raw = self.private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return f"{self.kid}:{_b64(raw)}"

    @property
    def public_text(self) -> str:
        """`kid:base64url(public key)`, for VUONMINH_TOKEN_VERIFY_KEYS."""
        from cryptography.hazmat.primitives import serialization

        raw = self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"{self.kid}:{_b64(raw)}"


def parse_verify_keys(text: str | None) -> dict[str, Ed25519PublicKey]:
    """`kid:key,kid:key` (VUONMINH_TOKEN_VERIFY_KEYS) as {kid: public key}."""
    keys: dict[str, Ed25519PublicKey] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        kid, _, encoded = item.strip().partition(":")
        try:
            raw = _unb64(encoded)
            if not kid or len(raw) != 32:
                raise ValueError
            keys[kid] = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise ValueError(
                f"VUONMINH_TOKEN_VERIFY_KEYS: {item.strip()[:20]!r}... is not 'kid:<base64url of a 32-byte "
                "Ed25519 public key>'"
            ) from None
    return keys


def verify_keys_of(settings: Settings) -> dict[str, Ed25519PublicKey]:
    """The keys tokens are checked with: VUONMINH_TOKEN_VERIFY_KEYS plus the signing key's own."""
    keys = parse_verify_keys(settings.token_verify_keys)
    if settings.token_signing_key:
        signing = SigningKey.parse(settings.token_signing_key)
        keys.setdefault(signing.kid, signing.private.public_key())
    return keys


def signing_key_for(settings: Settings, data_dir: Path) -> str:
    """VUONMINH_TOKEN_SIGNING_KEY, else (embedded mode) one generated once into the data dir."""
    if settings.token_signing_key:
        return settings.token_signing_key
    path = data_dir / "token-signing-key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = str(SigningKey.generate())
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def issue_token(
    signing_key: SigningKey | str,
    caller: Caller,
    *,
    ttl: timedelta = timedelta(hours=1),
    token_id: str | None = None,
    now: datetime | None = None,
) -> str:
    """A signed token for `caller` (its role, subject and scope), valid for `ttl`."""
    key = SigningKey.parse(signing_key) if isinstance(signing_key, str) else signing_key
    now = now or utc_now()
    claims = {
        "iss": TOKEN_ISSUER,
        "aud": TOKEN_AUDIENCE,
        "sub": caller.subject,
        "role": caller.role.value,
        "scope": caller.scope_claims(),
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": token_id or uuid.uuid4().hex,
    }
    return jwt.encode(claims, key.private, algorithm=TOKEN_ALGORITHM, headers={"kid": key.kid})


# -- API keys -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewApiKey:
    key_id: str
    plaintext: str  # shown once, never stored
    secret_hash: str


def new_api_key() -> NewApiKey:
    key_id = "".join(secrets.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(_KEY_ID_LENGTH))
    secret = secrets.token_urlsafe(32)
    return NewApiKey(key_id, f"{API_KEY_PREFIX}{key_id}_{secret}", hash_secret(secret))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_api_key(credential: str) -> tuple[str, str] | None:
    """(key id, secret) of a `vmk_<id>_<secret>` key, None when it is not shaped like one."""
    if not credential.startswith(API_KEY_PREFIX):
        return None
    rest = credential[len(API_KEY_PREFIX) :]
    key_id, separator, secret = (
        rest[:_KEY_ID_LENGTH],
        rest[_KEY_ID_LENGTH : _KEY_ID_LENGTH + 1],
        rest[_KEY_ID_LENGTH + 1 :],
    )
    if separator != "_" or len(key_id) != _KEY_ID_LENGTH or not secret:
        return None
    return key_id, secret


# -- the credential records (one table in every service's database) ------------------------------------
CREDENTIALS_TABLE = "credentials"


def credentials_table(metadata: MetaData) -> Table:
    return Table(
        CREDENTIALS_TABLE,
        metadata,
        # An API key's id (the part after vmk_) or a token's jti.
        Column("id", String(64), primary_key=True),
        Column("kind", String(16), nullable=False),  # "api_key" or "token"
        Column("secret_hash", String(64), nullable=True),  # API keys only: SHA-256 hex of the secret
        Column("role", String(32), nullable=False),
        Column("subject", String(200), nullable=False),
        Column("scope", JSON, nullable=False),
        Column("label", String(200), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=True),
        Column("revoked_at", DateTime(timezone=True), nullable=True),
    )


@dataclass(frozen=True)
class StoredKey:
    caller: Caller
    secret_hash: str
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass
class CredentialRegistry:
    """The credential records in memory; `load` replaces them from rows of the table."""

    keys: dict[str, StoredKey] = field(default_factory=dict)
    revoked_tokens: frozenset[str] = frozenset()
    # Reads the rows; set by the app to read the databases of the services the process runs.
    source: Callable[[], Awaitable[Sequence[Mapping[str, Any]]]] | None = None
    loaded_at: float = 0.0
    # When an unknown key id last made it reload (kept apart from the periodic reloads, so a key
    # created just after one is still found at once).
    on_demand_at: float = -_ON_DEMAND_RELOAD_EVERY_S
    _reloading: asyncio.Lock = field(default_factory=asyncio.Lock)

    def load(self, rows: Iterable[Mapping[str, Any]]) -> None:
        keys: dict[str, StoredKey] = {}
        revoked: set[str] = set()
        for row in rows:
            if row["kind"] == "token":
                if row["revoked_at"] is not None:
                    revoked.add(row["id"])
                continue
            try:
                caller = caller_from_claims(row["role"], row["subject"], row["scope"], credential_id=row["id"])
            except ValueError as error:
                log.warning("credentials.bad_record", key_id=row["id"], error=str(error))
                continue
            previous = keys.get(row["id"])
            revoked_at = row["revoked_at"] or (previous.revoked_at if previous else None)
            keys[row["id"]] = StoredKey(
                caller,
                row["secret_hash"] or "",
                as_utc(row["expires_at"]) if row["expires_at"] else None,
                as_utc(revoked_at) if revoked_at else None,
            )
        self.keys, self.revoked_tokens = keys, frozenset(revoked)
        self.loaded_at = time.monotonic()

    async def reload(self) -> None:
        if self.source is None:
            return
        async with self._reloading:
            self.load(await self.source())

    async def reload_if_due(self) -> None:
        now = time.monotonic()
        if now - self.on_demand_at >= _ON_DEMAND_RELOAD_EVERY_S:
            self.on_demand_at = now
            try:
                await self.reload()
            except Exception as error:  # a database hiccup must not turn into a 500
                log.warning("credentials.reload_failed", error=repr(error))


async def read_credentials(engines: Sequence[AsyncEngine]) -> list[dict[str, Any]]:
    """Every service's rows; a revocation in any of them wins (rows are merged in `load`)."""
    table = credentials_table(MetaData())
    rows: list[dict[str, Any]] = []
    for engine in engines:
        async with engine.connect() as conn:
            result = await conn.execute(select(table))
            rows.extend(dict(row._mapping) for row in result)
    # A revoked copy of a row must win over an unrevoked one from another database.
    rows.sort(key=lambda row: row["revoked_at"] is not None)
    return rows


# -- verifying a credential -----------------------------------------------------------------------------
class Authenticator:
    """Checks a bearer credential against the token keys and the credential registry."""

    def __init__(self, verify_keys: Mapping[str, Ed25519PublicKey], registry: CredentialRegistry) -> None:
        self.verify_keys = dict(verify_keys)
        self.registry = registry

    @classmethod
    def from_settings(cls, settings: Settings, registry: CredentialRegistry | None = None) -> Authenticator:
        return cls(verify_keys_of(settings), registry or CredentialRegistry())

    async def authenticate(self, credential: str) -> Caller:
        if credential.startswith(API_KEY_PREFIX):
            return await self._api_key(credential)
        return self._token(credential)

    async def _api_key(self, credential: str) -> Caller:
        parts = split_api_key(credential)
        if parts is None:
            raise Unauthenticated("malformed API key: expected vmk_<key id>_<secret>")
        key_id, secret = parts
        stored = self.registry.keys.get(key_id)
        if stored is None:
            await self.registry.reload_if_due()
            stored = self.registry.keys.get(key_id)
        if stored is None or not hmac.compare_digest(stored.secret_hash, hash_secret(secret)):
            raise Unauthenticated(f"API key {API_KEY_PREFIX}{key_id}_... is not valid")
        if stored.revoked_at is not None:
            raise Unauthenticated(
                f"API key {API_KEY_PREFIX}{key_id}_... was revoked at {stored.revoked_at:%Y-%m-%dT%H:%M:%SZ}"
            )
        if stored.expires_at is not None and stored.expires_at <= datetime.now(UTC):
            raise Unauthenticated(
                f"API key {API_KEY_PREFIX}{key_id}_... expired at {stored.expires_at:%Y-%m-%dT%H:%M:%SZ}"
            )
        return stored.caller

    def _token(self, credential: str) -> Caller:
        try:
            header = jwt.get_unverified_header(credential)
        except jwt.PyJWTError:
            raise Unauthenticated(
                "credential is neither a token (JWT) nor an API key (vmk_...): "
                "send 'Authorization: Bearer <credential>'"
            ) from None
        kid = header.get("kid")
        key = self.verify_keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            if not self.verify_keys:
                raise Unauthenticated("this service accepts no tokens (no VUONMINH_TOKEN_VERIFY_KEYS): use an API key")
            raise Unauthenticated(f"token signed with an unknown key id (kid {kid!r})")
        try:
            claims = jwt.decode(
                credential,
                key,
                algorithms=[TOKEN_ALGORITHM],
                audience=TOKEN_AUDIENCE,
                issuer=TOKEN_ISSUER,
                leeway=_LEEWAY_S,
                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired: get a new one") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("token signature is not valid") from None
        except jwt.InvalidAlgorithmError:
            raise Unauthenticated(f"token algorithm must be {TOKEN_ALGORITHM}") from None
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"token is not valid: {error}") from None
        token_id = claims["jti"]
        if token_id in self.registry.revoked_tokens:
            raise Unauthenticated(f"token {token_id} was revoked")
        try:
            return caller_from_claims(
                claims.get("role", ""), claims["sub"], claims.get("scope"), credential_id=token_id
            )
        except ValueError as error:
            raise Unauthenticated(f"token claims are not valid: {error}") from None


# -- the FastAPI dependency -----------------------------------------------------------------------------
# Declares the scheme in the OpenAPI document; the header is read (and explained) below.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A token (JWT, `vuonminh tokens create`) or an API key (`vmk_...`, `vuonminh keys create`).",
)


def authenticator_of(request: Request) -> Authenticator:
    authenticator = getattr(request.app.state, "authenticator", None)
    if authenticator is None:  # an app built without create_app: refuse, never let through
        raise unauthenticated("this application has no authenticator configured")
    return authenticator


# The cookie a signed-in browser sends its credential in (reads only: see the module's docstring).
SESSION_COOKIE = "vuonminh_credential"
READ_METHODS = frozenset({"GET", "HEAD"})


def session_credential(request: Request) -> str | None:
    """The credential of a signed-in browser, for a read."""
    if request.method not in READ_METHODS:
        return None
    return request.cookies.get(SESSION_COOKIE) or None


async def authorize(request: Request, allowed: frozenset[Role], shown: Sequence[Role]) -> Caller:
    """The caller of `request` if it is one of `allowed`, else HTTPException 401/403/429."""
    rate_limits = rate_limits_of(request)
    if rate_limits is not None:
        rate_limits.check_ip(request)
    header = request.headers.get("authorization")
    if not header and (cookie := session_credential(request)):
        header = f"Bearer {cookie}"
    if not header:
        raise unauthenticated("missing credentials: send 'Authorization: Bearer <token or API key>'")
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise unauthenticated("malformed Authorization header: expected 'Bearer <token or API key>'")
    try:
        caller = await authenticator_of(request).authenticate(credential)
    except Unauthenticated as error:
        raise unauthenticated(str(error)) from None
    if rate_limits is not None:
        rate_limits.check_credential(caller.credential_id or caller.subject)
    if caller.role not in allowed:
        raise forbidden(caller, shown)
    request.state.caller = caller  # for audit trails further on
    return caller


def require(*roles: Role, sign_in: str | None = None) -> Callable[..., Awaitable[Caller]]:
    """A dependency giving the authenticated Caller, refusing other roles (403).

    The operator may call every route, named or not. With `sign_in` (a page's route), a browser
    (asking for HTML) without valid credentials is sent there (303) instead of getting a 401.
    """
    allowed = frozenset(roles) | {Role.operator}
    shown = tuple(roles) if Role.operator in roles else (*roles, Role.operator)

    # async: a plain `def` dependency would hop to a worker thread on every request.
    async def dependency(
        request: Request, _documented: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
    ) -> Caller:
        try:
            return await authorize(request, allowed, shown)
        except HTTPException as error:
            if sign_in and error.status_code == 401 and "text/html" in request.headers.get("accept", ""):
                back = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="")
                raise HTTPException(
                    status.HTTP_303_SEE_OTHER, error.detail, {"Location": f"{sign_in}?next={back}"}
                ) from None
            raise

    dependency.__name__ = "require_" + "_or_".join(role.value for role in shown)
    return dependency


async def public(request: Request) -> None:
    """The dependency of a page that is public on purpose (e.g. a lot's trace page): no
    credentials, but counted by client IP like every other route. List it in
    vuonminh.wiring.access.PUBLIC_ROUTES too (the route-walk test reads it)."""
    rate_limits = rate_limits_of(request)
    if rate_limits is not None:
        rate_limits.check_ip(request)


# -- writing records (the `vuonminh keys|tokens` commands, the embedded demo, tests) ----------------------
@dataclass(frozen=True)
class CredentialRecord:
    id: str
    kind: str  # "api_key" or "token"
    caller: Caller
    secret_hash: str | None = None
    label: str | None = None
    created_at: datetime = field(default_factory=utc_now)
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "secret_hash": self.secret_hash,
            "role": self.caller.role.value,
            "subject": self.caller.subject,
            "scope": self.caller.scope_claims(),
            "label": self.label,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
        }


async def write_credential(engine: AsyncEngine, record: CredentialRecord) -> None:
    """Stores the record in one service's database (replacing a row with its id: idempotent)."""
    table = credentials_table(MetaData())
    async with engine.begin() as conn:
        await conn.execute(table.delete().where(table.c.id == record.id))
        await conn.execute(table.insert().values(**record.row()))


async def revoke_credential(
    engine: AsyncEngine, credential_id: str, *, at: datetime | None = None, caller: Caller | None = None
) -> bool:
    """Marks the key or token revoked in one database. A token that was never recorded (or an id
    this database lacks, with `caller` given) gets a revoked row. False: the id is unknown here."""
    table = credentials_table(MetaData())
    at = at or utc_now()
    async with engine.begin() as conn:
        result = await conn.execute(
            table.update().where(table.c.id == credential_id, table.c.revoked_at.is_(None)).values(revoked_at=at)
        )
        if result.rowcount:
            return True
        exists = (await conn.execute(select(table.c.id).where(table.c.id == credential_id))).first()
        if exists:
            return True  # already revoked
        if caller is None:
            return False
        await conn.execute(
            table.insert().values(**CredentialRecord(credential_id, "token", caller, revoked_at=at).row())
        )
        return True


async def list_credentials(engine: AsyncEngine) -> list[dict[str, Any]]:
    table = credentials_table(MetaData())
    async with engine.connect() as conn:
        result = await conn.execute(select(table).order_by(table.c.created_at))
        return [dict(row._mapping) for row in result]


async def create_api_key(
    engines: Sequence[AsyncEngine], caller: Caller, *, label: str | None = None, expires_at: datetime | None = None
) -> str:
    """A new API key for `caller`, recorded in every given database; returns the key (shown once)."""
    problems = caller.problems()
    if problems:
        raise ValueError("; ".join(problems))
    key = new_api_key()
    record = CredentialRecord(
        key.key_id, "api_key", caller, secret_hash=key.secret_hash, label=label, expires_at=expires_at
    )
    for engine in engines:
        await write_credential(engine, record)
    return key.plaintext


def credential_id_of(text: str) -> str:
    """The record id named by a key id, a whole API key (`vmk_<id>_...`) or a token id."""
    parts = split_api_key(text)
    if parts:
        return parts[0]
    if text.startswith(API_KEY_PREFIX):
        return text[len(API_KEY_PREFIX) :].split("_", 1)[0]
    return text
