"""Credentials on the embedded platform: keys written to every service's database are checked
by the API, revocations reach it, and the embedded run keeps its own token key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import httpx
from fastapi import Depends

from vuonminh.shared.app import create_app
from vuonminh.shared.auth import (
    Caller,
    CredentialRecord,
    Role,
    new_api_key,
    require,
    revoke_credential,
    signing_key_for,
    write_credential,
)
from vuonminh.shared.runtime import embedded_platform
from vuonminh.shared.settings import Settings
from vuonminh.wiring.testing import TEST_SETTINGS, auth_headers


async def test_api_keys_and_revocations_reach_the_api(tmp_path: Path) -> None:
    platform = embedded_platform(Settings(**TEST_SETTINGS), tmp_path)
    app = create_app(platform)

    @app.get("/probe")
    async def probe(caller: Annotated[Caller, Depends(require(Role.seller))]) -> dict:
        return {"sellers": sorted(caller.seller_ids)}

    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        seller = auth_headers(Role.seller, seller_ids={"co-ba-hong"})
        assert (await client.get("/probe", headers=seller)).json() == {"sellers": ["co-ba-hong"]}

        key = new_api_key()
        record = CredentialRecord(
            key.key_id,
            "api_key",
            Caller(Role.seller, "seller:htx-che", seller_ids=frozenset({"htx-che"})),
            secret_hash=key.secret_hash,
        )
        for runtime in platform.runtimes.values():
            await write_credential(runtime.engine, record)
        # A key unknown to the API's copy makes it look again at once.
        headers = {"Authorization": f"Bearer {key.plaintext}"}
        assert (await client.get("/probe", headers=headers)).json() == {"sellers": ["htx-che"]}

        for runtime in platform.runtimes.values():
            assert await revoke_credential(runtime.engine, key.key_id)
        await app.state.authenticator.registry.reload()  # the refresh loop does this every few seconds
        response = await client.get("/probe", headers=headers)
        assert response.status_code == 401 and "revoked" in response.json()["detail"]

        # A token revoked by id (never recorded before) is refused too.
        token = auth_headers(Role.seller, seller_ids={"co-ba-hong"}, token_id="t-stolen")
        caller = Caller(Role.seller, "test-seller")
        for runtime in platform.runtimes.values():
            assert await revoke_credential(runtime.engine, "t-stolen", caller=caller)
        await app.state.authenticator.registry.reload()
        assert (await client.get("/probe", headers=token)).status_code == 401
        await client.aclose()


def test_the_embedded_run_keeps_one_token_key_in_its_data_dir(tmp_path: Path) -> None:
    first = signing_key_for(Settings(), tmp_path)
    assert signing_key_for(Settings(), tmp_path) == first
    assert (tmp_path / "token-signing-key").stat().st_mode & 0o777 == 0o600
    assert signing_key_for(Settings(token_signing_key="k:abc"), tmp_path) == "k:abc"
