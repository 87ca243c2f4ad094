"""Each shop signs with its own secret; order keys cannot collide; on the embedded platform."""

import json
import sqlite3
import uuid

import pytest
from sqlalchemy import text

from vuonminh.orders import shops
from vuonminh.wiring.testing import (
    TEST_SECRET,
    embedded_client,
    encode,
    eventually,
    metric_value,
    order_body,
    register_shop,
    seed_catalog,
    signed_headers,
)


async def _post(client, body: dict, secret: str, **dumps):
    raw = json.dumps(body, ensure_ascii=False, **dumps).encode() if dumps else encode(body)
    return await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw, secret))


@pytest.fixture
async def platform_without_fallback(tmp_path):
    """No VUONMINH_DIRECT_SECRET: only registered shops get in."""
    async with embedded_client(tmp_path, direct_secret=None) as (client, platform):
        await seed_catalog(client, platform)
        yield client, platform


async def test_a_shop_signs_with_its_own_secret_and_not_with_another_shops(platform_without_fallback):
    client, platform = platform_without_fallback
    binh_lu = await register_shop(platform, "tts-binh-lu", seller_id="co-ba-hong")
    thai_nguyen = await register_shop(platform, "tts-thai-nguyen")

    own = await _post(client, order_body("S-1", shop_id="tts-binh-lu"), binh_lu)
    borrowed = await _post(client, order_body("S-2", shop_id="tts-binh-lu"), thai_nguyen)

    assert own.status_code == 202
    assert borrowed.status_code == 401 and "shop's secret" in borrowed.json()["detail"]
    assert binh_lu.startswith("whsec_") and binh_lu != thai_nguyen
    with pytest.raises(shops.ShopError, match="exists already"):
        await register_shop(platform, "tts-binh-lu")


async def test_an_unknown_shop_is_refused_with_a_clear_message(platform_without_fallback):
    client, _platform = platform_without_fallback

    response = await _post(client, order_body("S-3", shop_id="nobody"), "whatever")

    assert response.status_code == 401
    assert (
        response.json()["detail"]
        == "unknown shop 'nobody': it is not registered for the direct channel (vuonminh shops add)"
    )
    not_json = await client.post("/v1/webhooks/direct", content=b"{", headers=signed_headers(b"{", "x"))
    assert not_json.status_code == 401 and "names no shop_id" in not_json.json()["detail"]


async def test_the_deprecated_global_secret_never_signs_for_a_registered_shop(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):  # VUONMINH_DIRECT_SECRET set
        await seed_catalog(client, platform)
        own = await register_shop(platform, "tts-binh-lu")
        fallback_uses = metric_value((await client.get("/metrics")).text, "vuonminh_webhook_fallback_secret_total")
        unregistered = await _post(client, order_body("S-4", shop_id="legacy-shop"), TEST_SECRET)
        impersonated = await _post(client, order_body("S-5", shop_id="tts-binh-lu"), TEST_SECRET)
        registered = await _post(client, order_body("S-6", shop_id="tts-binh-lu"), own)

        assert (unregistered.status_code, impersonated.status_code, registered.status_code) == (202, 401, 202)
        metrics = (await client.get("/metrics")).text
        assert metric_value(metrics, "vuonminh_webhook_fallback_secret_total") == fallback_uses + 1


async def test_rotation_keeps_two_secrets_until_the_old_one_is_revoked(platform_without_fallback):
    client, platform = platform_without_fallback
    orders = platform.service("orders")
    box = shops.SecretBox(orders.settings.secrets_key)
    old = await register_shop(platform, "tts-binh-lu")
    async with orders.unit_of_work() as uow:
        new = await shops.rotate_secret(uow.session, box, shop_id="tts-binh-lu")
    await shops.registry_of(orders).reload()

    assert (await _post(client, order_body("R-1", shop_id="tts-binh-lu"), old)).status_code == 202
    assert (await _post(client, order_body("R-2", shop_id="tts-binh-lu"), new)).status_code == 202

    async with orders.unit_of_work() as uow:
        assert await shops.revoke_secret(uow.session, shop_id="tts-binh-lu") == 1
    await shops.registry_of(orders).reload()
    assert (await _post(client, order_body("R-3", shop_id="tts-binh-lu"), old)).status_code == 401
    assert (await _post(client, order_body("R-4", shop_id="tts-binh-lu"), new)).status_code == 202

    async with orders.unit_of_work() as uow:
        with pytest.raises(shops.ShopError, match="no previous secret"):
            await shops.revoke_secret(uow.session, shop_id="tts-binh-lu")
        assert await shops.revoke_secret(uow.session, shop_id="tts-binh-lu", every_secret=True) == 1
    await shops.registry_of(orders).reload()
    refused = await _post(client, order_body("R-5", shop_id="tts-binh-lu"), new)
    assert refused.status_code == 401 and "no active secret" in refused.json()["detail"]


async def test_a_shop_added_by_another_process_is_accepted_without_waiting_for_the_refresh(
    platform_without_fallback,
):
    client, platform = platform_without_fallback
    orders = platform.service("orders")
    assert shops.registry_of(orders).loaded
    # As `vuonminh shops add` from another process: straight into the database, not the cache.
    async with orders.unit_of_work() as uow:
        secret = await shops.add_shop(uow.session, shops.SecretBox(orders.settings.secrets_key), shop_id="new-shop")

    response = await _post(client, order_body("N-1", shop_id="new-shop"), secret)

    assert response.status_code == 202


async def test_secrets_are_stored_encrypted_and_decrypt_only_with_the_key(platform_without_fallback, tmp_path):
    _client, platform = platform_without_fallback
    secret = await register_shop(platform, "tts-binh-lu")
    with sqlite3.connect(tmp_path / "orders.sqlite3") as conn:
        (stored,) = conn.execute("SELECT secret_encrypted FROM shops WHERE shop_id = 'tts-binh-lu'").fetchone()

    assert secret not in stored and stored
    assert shops.SecretBox(platform.service("orders").settings.secrets_key).decrypt(stored) == secret
    other_key = shops.SecretBox("nGdJ7OQ2oM9a8v3f0w4v3Ewh3o8vbq7mN2J3x5k1L6Y=")
    with pytest.raises(shops.SecretsKeyMissing):
        other_key.decrypt(stored)


async def test_secrets_that_do_not_decrypt_answer_503_not_a_wrong_401(tmp_path):
    async with embedded_client(tmp_path, direct_secret=None) as (_client, platform):
        secret = await register_shop(platform, "tts-binh-lu")
    async with embedded_client(tmp_path, direct_secret=None, secrets_key=None) as (client, _platform):
        response = await _post(client, order_body("K-1", shop_id="tts-binh-lu"), secret)

    assert response.status_code == 503 and "VUONMINH_SECRETS_KEY" in response.json()["detail"]


async def test_shops_whose_ids_share_a_joined_key_keep_their_orders_apart(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):  # unregistered shops: global secret
        await seed_catalog(client, platform)
        first = await _post(client, order_body("c", shop_id="a:b"), TEST_SECRET)
        second = await _post(client, order_body("b:c", shop_id="a"), TEST_SECRET)
        assert first.json()["key"] == "direct:a%3Ab:c" and second.json()["key"] == "direct:a:b%3Ac"

        async def both():
            found = (await client.get("/v1/orders")).json()
            # placed, then confirmed once catalog reserved the stock
            return found if len([o for o in found if o["status"] in ("placed", "confirmed")]) == 2 else None

        stored = await eventually(both)
        assert {(o["shop_id"], o["order_id"]) for o in stored} == {("a:b", "c"), ("a", "b:c")}
        assert len({o["id"] for o in stored}) == 2


async def test_an_order_stored_under_the_old_id_derivation_is_found_not_duplicated(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):
        await seed_catalog(client, platform)
        body = order_body("TT 9", shop_id="shop một")  # a space and an accent: the encoding changes the id
        assert (await _post(client, body, TEST_SECRET)).status_code == 202
        (order,) = await eventually(lambda: _stored(client, "TT 9", status="placed"))
        # Give it the id the old derivation made (parts joined with ":" unencoded), as if stored before.
        legacy_id = str(uuid.uuid5(uuid.UUID("6f1c2b1e-3f7a-4d55-9a8e-2b0d7c5e9a41"), "direct:shop một:TT 9"))
        assert legacy_id != order["id"]
        orders = platform.service("orders")
        async with orders.sessions() as session, session.begin():
            await session.exec(text("PRAGMA defer_foreign_keys = ON"))
            for table, column in (("order_lines", "order_id"), ("order_status_history", "order_id"), ("orders", "id")):
                renamed = text(f"UPDATE {table} SET {column} = :new WHERE {column} = :old")
                await session.exec(renamed.bindparams(new=legacy_id, old=order["id"]))

        # The shop sends it again, re-serialised (other bytes, so another event id): found by the
        # shop's identity, it is the same order.
        assert (await _post(client, body, TEST_SECRET, separators=(",", ":"))).status_code == 202
        assert (await _post(client, order_body("after", shop_id="shop một"), TEST_SECRET)).status_code == 202
        await eventually(lambda: _stored(client, "after", status="placed"))

        assert [o["id"] for o in await _stored(client, "TT 9")] == [legacy_id]
        assert (await client.get(f"/v1/orders/{legacy_id}")).json()["conflicts"] == []


async def _stored(client, order_id: str, *, status: str | None = None) -> list | None:
    found = (await client.get("/v1/orders", params={"order_id": order_id})).json()
    # "placed" also matches "confirmed": catalog reserves the stock of a placed order at once.
    wanted = ("placed", "confirmed") if status == "placed" else (status,)
    return found if found and (status is None or found[0]["status"] in wanted) else None
