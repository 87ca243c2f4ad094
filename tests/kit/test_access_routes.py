"""Every route of every service refuses a caller without credentials, except the ones listed
public on purpose (vuonminh.wiring.access.PUBLIC_ROUTES), and the API docs and /metrics answer
only the operator."""

from __future__ import annotations

import re
from pathlib import Path

from vuonminh.shared.auth import Role
from vuonminh.wiring.access import PUBLIC_ROUTES
from vuonminh.wiring.testing import auth_headers, embedded_client

METHODS = ("get", "post", "put", "patch", "delete")


def _concrete(path: str) -> str:
    # Any value will do for a path parameter: the credential is checked before the object is looked up.
    return re.sub(r"\{[^}]+\}", "x", path)


async def test_every_route_refuses_a_caller_without_credentials(tmp_path: Path) -> None:
    async with embedded_client(tmp_path) as (client, _platform):
        schema = (await client.get("/openapi.json")).json()
        routes = [
            (method.upper(), path) for path, item in schema["paths"].items() for method in item if method in METHODS
        ]
        assert len(routes) >= 10, routes  # the walk covers every service's routes
        answered = {}
        for method, path in routes:
            response = await client.request(method, _concrete(path), headers={"Authorization": ""})
            answered[(method, path)] = response.status_code
            if (method, path) not in PUBLIC_ROUTES:
                assert response.status_code == 401, (
                    f"{method} {path} answered {response.status_code} without credentials"
                )
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json()["detail"].startswith("missing credentials")
    # The public list names only routes that exist (a stale entry would hide nothing, but mislead).
    assert set(PUBLIC_ROUTES) <= set(answered), set(PUBLIC_ROUTES) - set(answered)
    assert answered[("GET", "/healthz")] == 200


async def test_docs_and_metrics_answer_only_the_operator(tmp_path: Path) -> None:
    async with embedded_client(tmp_path, headers={}) as (client, _platform):
        seller = auth_headers(Role.seller, seller_ids={"co-ba-hong"})
        for path in ("/openapi.json", "/docs", "/redoc", "/metrics", "/static-offline-docs/swagger-ui.css"):
            anonymous = await client.get(path)
            assert anonymous.status_code == 401, path
            assert "missing credentials" in anonymous.json()["detail"]
            assert (await client.get(path, headers=seller)).status_code == 403, path
            assert (await client.get(path, headers=auth_headers(Role.operator))).status_code == 200, path
        assert (await client.get("/readyz")).status_code in (200, 503)


async def test_docs_and_metrics_can_be_made_public(tmp_path: Path) -> None:
    async with embedded_client(tmp_path, headers={}, public_api_docs=True, public_metrics=True) as (client, _):
        for path in ("/openapi.json", "/docs", "/metrics"):
            assert (await client.get(path)).status_code == 200, path
