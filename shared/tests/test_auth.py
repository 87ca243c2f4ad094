"""Checking callers: tokens, API keys, roles and scopes (shared/auth.py), on a bare app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI

from vuonminh.shared.auth import (
    Authenticator,
    Caller,
    CredentialRegistry,
    Role,
    SigningKey,
    caller_from_claims,
    hash_secret,
    issue_token,
    new_api_key,
    parse_verify_keys,
    require,
    split_api_key,
)
from vuonminh.shared.settings import Settings

SIGNING = SigningKey.generate("k-now")
OLD = SigningKey.generate("k-old")
STRANGER = SigningKey.generate("k-now")  # same kid, another key: a forged token


def token(role: Role = Role.seller, signing: SigningKey = SIGNING, **kwargs) -> str:
    scope = kwargs.pop("scope", {"seller_ids": frozenset({"co-ba-hong"})})
    caller = Caller(role=role, subject=f"test-{role.value}", **scope)
    return issue_token(signing, caller, **kwargs)


def api_key_registry(*, revoked: bool = False, expires_at: datetime | None = None) -> tuple[str, CredentialRegistry]:
    key = new_api_key()
    registry = CredentialRegistry()
    registry.load(
        [
            {
                "id": key.key_id,
                "kind": "api_key",
                "secret_hash": key.secret_hash,
                "role": "seller",
                "subject": "seller:htx-che",
                "scope": {"seller_ids": ["htx-che"]},
                "expires_at": expires_at,
                "revoked_at": datetime(2026, 11, 23, tzinfo=UTC) if revoked else None,
            }
        ]
    )
    return key.plaintext, registry


def app_with(registry: CredentialRegistry | None = None, verify: str | None = None) -> FastAPI:
    app = FastAPI()
    keys = parse_verify_keys(verify if verify is not None else f"{SIGNING.public_text},{OLD.public_text}")
    app.state.authenticator = Authenticator(keys, registry or CredentialRegistry())

    @app.get("/sellers-only")
    async def sellers_only(caller: Annotated[Caller, Depends(require(Role.seller))]) -> dict:
        return {"subject": caller.subject, "sellers": sorted(caller.seller_ids), "credential": caller.credential_id}

    return app


async def call(app: FastAPI, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get("/sellers-only", headers=headers or {})


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


async def test_a_valid_token_gives_the_caller_with_its_scope() -> None:
    response = await call(app_with(), bearer(token(token_id="t-1")))
    assert response.status_code == 200
    assert response.json() == {"subject": "test-seller", "sellers": ["co-ba-hong"], "credential": "t-1"}


async def test_a_token_signed_with_the_previous_key_still_verifies_during_rotation() -> None:
    assert (await call(app_with(), bearer(token(signing=OLD)))).status_code == 200
    # Once the old key is dropped from the verify keys, its tokens are refused.
    response = await call(app_with(verify=SIGNING.public_text), bearer(token(signing=OLD)))
    assert response.status_code == 401 and "unknown key id" in response.json()["detail"]


async def test_the_operator_may_call_every_route() -> None:
    assert (await call(app_with(), bearer(token(Role.operator, scope={})))).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "missing credentials"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "malformed Authorization header"),
        ({"Authorization": "Bearer"}, 401, "malformed Authorization header"),
        (bearer("not-a-token"), 401, "neither a token"),
        (bearer(token(ttl=timedelta(hours=-1))), 401, "token expired"),
        (bearer(token(signing=STRANGER)), 401, "signature is not valid"),
        (bearer(token(Role.carrier, scope={"carrier": "ghn"})), 403, "role carrier may not call this route"),
        (bearer("vmk_short"), 401, "malformed API key"),
        (bearer("vmk_abcdefghijkm_made-up"), 401, "is not valid"),
    ],
    ids=["missing", "basic", "empty", "garbage", "expired", "wrong-signature", "wrong-role", "bad-key", "unknown-key"],
)
async def test_bad_credentials_are_refused_with_a_clear_message(headers: dict, status: int, message: str) -> None:
    response = await call(app_with(), headers)
    assert response.status_code == status
    assert message in response.json()["detail"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_token_with_another_algorithm_is_refused() -> None:
    forged = jwt.encode(
        {"sub": "x", "role": "operator", "iss": "vuonminh", "aud": "vuonminh-api", "exp": 9999999999, "iat": 1},
        "a-guessed-secret-long-enough-for-hs256-0123456789",
        algorithm="HS256",
        headers={"kid": "k-now"},
    )
    response = await call(app_with(), bearer(forged))
    assert response.status_code == 401 and "EdDSA" in response.json()["detail"]


async def test_a_revoked_token_is_refused() -> None:
    registry = CredentialRegistry()
    registry.load([{"id": "t-gone", "kind": "token", "revoked_at": datetime.now(UTC)}])
    response = await call(app_with(registry), bearer(token(token_id="t-gone")))
    assert response.status_code == 401 and "t-gone was revoked" in response.json()["detail"]
    assert (await call(app_with(registry), bearer(token(token_id="t-other")))).status_code == 200


async def test_an_api_key_authenticates_and_a_revoked_or_expired_one_does_not() -> None:
    plaintext, registry = api_key_registry()
    response = await call(app_with(registry), bearer(plaintext))
    assert response.status_code == 200 and response.json()["sellers"] == ["htx-che"]
    # Right id, wrong secret.
    response = await call(app_with(registry), bearer(plaintext[:-4] + "AAAA"))
    assert response.status_code == 401 and "is not valid" in response.json()["detail"]

    plaintext, registry = api_key_registry(revoked=True)
    response = await call(app_with(registry), bearer(plaintext))
    assert response.status_code == 401 and "was revoked at 2026-11-23" in response.json()["detail"]

    plaintext, registry = api_key_registry(expires_at=datetime.now(UTC) - timedelta(days=1))
    response = await call(app_with(registry), bearer(plaintext))
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_api_keys_are_prefix_identified_and_stored_only_hashed() -> None:
    key = new_api_key()
    assert key.plaintext.startswith("vmk_" + key.key_id + "_")
    key_id, secret = split_api_key(key.plaintext)
    assert key_id == key.key_id and hash_secret(secret) == key.secret_hash and secret not in key.secret_hash


def test_scope_helpers_confine_each_role_to_its_own() -> None:
    seller = caller_from_claims("seller", "s", {"seller_ids": ["a"]})
    assert seller.may_see_seller("a") and not seller.may_see_seller("b") and not seller.may_see_ward("03390")
    official = caller_from_claims("commune_official", "o", {"ward_codes": ["03390"]})
    assert official.may_see_place(ward_code="03390", province_code="12")
    assert not official.may_see_place(ward_code="05503", province_code="12")
    province = caller_from_claims("province_official", "p", {"province_codes": ["12"]})
    assert province.may_see_place(ward_code="03390", province_code="12") and not province.may_see_province("19")
    carrier = caller_from_claims("carrier", "c", {"carrier": "ghn"})
    assert carrier.may_see_carrier("ghn") and not carrier.may_see_carrier("ghtk") and not carrier.may_see_seller("a")
    operator = caller_from_claims("operator", "op", {})
    assert operator.may_see_seller("x") and operator.may_see_carrier("ghtk") and operator.may_see_ward("1")
    assert Caller(Role.seller, "s").problems() == ["role seller needs a scope: seller_ids"]
    with pytest.raises(ValueError, match="unknown role"):
        caller_from_claims("admin", "x", {})


def test_the_signing_keys_public_part_is_accepted_without_configuring_it() -> None:
    from vuonminh.shared.auth import verify_keys_of

    keys = verify_keys_of(Settings(token_signing_key=str(SIGNING), token_verify_keys=OLD.public_text))
    assert set(keys) == {"k-now", "k-old"}
    with pytest.raises(ValueError, match="VUONMINH_TOKEN_SIGNING_KEY"):
        SigningKey.parse("no-colon-here")
