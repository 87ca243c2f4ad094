"""Every route of every service refuses a caller without credentials, except the ones listed
public on purpose (vuonminh.wiring.access.PUBLIC_ROUTES), and the API docs and /metrics answer
only the operator."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
from fastapi.routing import APIRoute

from vuonminh.shared.app import create_app
from vuonminh.shared.auth import Role
from vuonminh.shared.runtime import embedded_platform
from vuonminh.shared.settings import Settings
from vuonminh.wiring.access import PUBLIC_ROUTES
from vuonminh.wiring.testing import TEST_SETTINGS, auth_headers, embedded_client

METHODS = ("get", "post", "put", "patch", "delete")


def _served_routes(routes: list, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every APIRoute, through included routers (FastAPI keeps them nested)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield from ((method, prefix + route.path) for method in route.methods)
        elif hasattr(route, "original_router"):
            yield from _served_routes(route.original_router.routes, prefix + route.include_context.prefix)


def _concrete(path: str) -> str:
    # Any value will do for a path parameter: the credential is checked before the object is looked up.
    return re.sub(r"\{[^}]+\}", "x", path)


async def test_every_route_refuses_a_caller_without_credentials(tmp_path: Path) -> None:
    app = create_app(embedded_platform(Settings(**TEST_SETTINGS), tmp_path))
    async with app.router.lifespan_context(app):
        schema = app.openapi()
        documented = {(m.upper(), path) for path, item in schema["paths"].items() for m in item if m in METHODS}
        # Every route the app serves, the ones left out of the OpenAPI document (pages) included.
        routes = set(_served_routes(app.routes))
        routes -= {("HEAD", path) for _method, path in routes}
        assert documented <= routes and len(documented) >= 10, documented - routes
        assert any(path.startswith("/dashboard/") for _m, path in routes - documented)  # undocumented pages too
        answered = {}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://vuonminh.test") as client:
            for method, path in sorted(routes):
                response = await client.request(method, _concrete(path))
                answered[(method, path)] = response.status_code
                if (method, path) in PUBLIC_ROUTES:
                    continue
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
