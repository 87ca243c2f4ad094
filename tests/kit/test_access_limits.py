"""Rate limits per credential and per client IP (429 + Retry-After), never on signed webhooks;
and the `vuonminh keys` commands end to end: a key created, used, listed and revoked."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from vuonminh.shared.auth import Role
from vuonminh.wiring.testing import auth_headers, embedded_client, encode, order_body, process_env, signed_headers


async def test_a_credential_over_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    async with embedded_client(tmp_path, headers={}, rate_limit_per_key="3/minute", rate_limit_per_ip="off") as (
        client,
        _,
    ):
        busy = auth_headers(Role.seller, seller_ids={"a"}, token_id="busy")
        assert [(await client.get("/v1/products", headers=busy)).status_code for _ in range(3)] == [200] * 3
        refused = await client.get("/v1/products", headers=busy)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "too many requests from this credential" in refused.json()["detail"]
        # Another credential has its own allowance.
        other = auth_headers(Role.seller, seller_ids={"a"}, token_id="calm")
        assert (await client.get("/v1/products", headers=other)).status_code == 200


async def test_an_address_over_its_rate_gets_429_even_without_credentials(tmp_path: Path) -> None:
    async with embedded_client(tmp_path, headers={}, rate_limit_per_ip="4/minute") as (client, _):
        statuses = [(await client.get("/v1/orders")).status_code for _ in range(5)]
        assert statuses == [401] * 4 + [429]  # guessing credentials is limited too
        response = await client.get("/v1/orders", headers=auth_headers(Role.operator))
        assert response.status_code == 429 and "this address" in response.json()["detail"]
        # Signed webhooks are not counted: intake stays as cheap as it was.
        for n in range(6):
            raw = encode(order_body(f"RL-{n}"))
            response = await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))
            assert response.status_code == 202
        assert (await client.get("/healthz")).status_code == 200


async def _vuonminh(*args: str) -> subprocess.CompletedProcess[str]:
    # In a thread: the event loop keeps turning, so nothing of this process holds SQLite's lock meanwhile.
    return await asyncio.to_thread(_run_vuonminh, *args)


def _run_vuonminh(*args: str) -> subprocess.CompletedProcess[str]:
    import os

    # Embedded mode (the data dir), never the shared dev server the environment may name.
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    return subprocess.run(
        [sys.executable, "-m", "vuonminh.wiring.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**env, **process_env()},
    )


async def test_keys_created_by_the_command_work_until_revoked(tmp_path: Path) -> None:
    missing = await _vuonminh("keys", "create", "--role", "seller", "--data-dir", str(tmp_path))
    assert missing.returncode != 0 and "role seller needs --seller" in missing.stderr
    created = await _vuonminh(
        "keys", "create", "--role", "seller", "--seller", "co-ba-hong", "--data-dir", str(tmp_path)
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("vmk_") and "shown this once" in created.stderr
    listed = await _vuonminh("keys", "list", "--data-dir", str(tmp_path))
    key_id = key.split("_")[1]
    assert key_id in listed.stdout and "seller:co-ba-hong" in listed.stdout and key not in listed.stdout

    async with embedded_client(tmp_path, headers={"Authorization": f"Bearer {key}"}) as (client, _):
        response = await client.get("/v1/sellers")
        assert response.status_code == 200, response.text
        assert response.json() == []  # its seller is not registered yet
        assert (await client.get("/v1/kpis/communes/03390?from=2026-01-01&to=2026-01-02")).status_code == 403

    revoked = await _vuonminh("keys", "revoke", key, "--data-dir", str(tmp_path))
    assert revoked.returncode == 0, revoked.stderr
    async with embedded_client(tmp_path, headers={"Authorization": f"Bearer {key}"}) as (client, _):
        response = await client.get("/v1/sellers")
        assert response.status_code == 401 and "was revoked" in response.json()["detail"]


async def test_tokens_created_by_the_command_work_until_revoked(tmp_path: Path) -> None:
    created = await _vuonminh("tokens", "create", "--role", "carrier", "--carrier", "ghn", "--data-dir", str(tmp_path))
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    token_id = created.stderr.split("Token ", 1)[1].split(" ", 1)[0]
    headers = {"Authorization": f"Bearer {token}"}
    async with embedded_client(tmp_path, headers=headers) as (client, _):
        assert (await client.get("/v1/shipments")).status_code == 200
    assert (await _vuonminh("tokens", "revoke", token_id, "--data-dir", str(tmp_path))).returncode == 0
    async with embedded_client(tmp_path, headers=headers) as (client, _):
        response = await client.get("/v1/shipments")
        assert response.status_code == 401 and f"token {token_id} was revoked" in response.json()["detail"]
