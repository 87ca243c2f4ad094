"""The HTTP application: the services' routers plus health, readiness and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vuonminh.shared.auth import Authenticator, CredentialRegistry, Role, authorize, read_credentials
from vuonminh.shared.backpressure import InFlightLimit
from vuonminh.shared.ratelimit import RateLimits
from vuonminh.shared.runtime import Platform, ServiceRuntime
from vuonminh.shared.tracing import ServiceOnSpan, configure_tracing, fastapi_telemetry, shutdown_tracing

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 256 * 1024


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """413 for bodies over the limit, checked on Content-Length and while streaming.

    uvicorn has no body limit of its own; a chunked upload must not be able to fill memory.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body exceeds {self.max_bytes // 1024} KiB"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


DOCS_PATHS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
DOCS_STATIC_PREFIX = "/static-offline-docs"


class OperatorOnlyPaths:
    """The API docs and /metrics answer only the operator, unless made public by settings.

    A path check per request; credentials are checked (the same way routes check them) only on
    these paths, so other routes, signed webhooks included, pay nothing more.
    """

    def __init__(self, app: ASGIApp, *, paths: frozenset[str], prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.paths = paths
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path in self.paths or (self.prefixes and path.startswith(self.prefixes))):
            request = Request(scope)
            try:
                await authorize(request, frozenset({Role.operator}), (Role.operator,))
            except HTTPException as error:
                response = JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class ErrorOut(BaseModel):
    detail: str


def error_answer(description: str) -> dict:
    """An entry of a route's `responses`: an error status with its `detail` sentence."""
    return {"model": ErrorOut, "description": description}


NOT_FOUND_OR_NOT_YOURS = error_answer("no such object, or one outside the caller's scope")


def runtime_of(name: str) -> Callable[[Request], Awaitable[ServiceRuntime]]:
    # async: a plain `def` dependency would hop to a worker thread on every request.
    async def dependency(request: Request) -> ServiceRuntime:
        return request.app.state.platform.service(name)

    return dependency


def session_of(name: str) -> Callable[[Request], AsyncIterator[AsyncSession]]:
    async def dependency(request: Request) -> AsyncIterator[AsyncSession]:
        async with request.app.state.platform.service(name).sessions() as session:
            yield session

    return dependency


def _ops_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get(
        "/healthz",
        summary="Liveness: the process and its background loops are running",
        responses={503: {"description": "a background loop died: restart the process"}},
    )
    async def healthz(request: Request) -> JSONResponse:
        platform: Platform = request.app.state.platform
        dead = platform.dead_loops()
        if dead:
            return JSONResponse({"status": "failing", "dead_loops_in": dead}, status_code=503)
        return JSONResponse({"status": "ok"})

    @router.get(
        "/readyz",
        summary="Readiness of the parts this process runs (api, worker), with every check and what is missing",
        responses={503: {"description": "a part is not ready: `unready` says what it lacks"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        platform: Platform = request.app.state.platform
        checks = {name: await rt.readiness() for name, rt in platform.runtimes.items()}
        parts = {name: rt.parts(checks[name]) for name, rt in platform.runtimes.items()}
        unready = [
            f"{service}.{part} needs {', '.join(missing)}"
            for service, by_part in parts.items()
            for part, missing in by_part.items()
            if missing
        ]
        return JSONResponse(
            {
                "status": "not ready" if unready else "ready",
                "mode": platform.mode,
                "role": platform.role,
                "unready": unready,
                "checks": checks,
            },
            status_code=503 if unready else 200,
        )

    # Operator only unless VUONMINH_PUBLIC_METRICS (OperatorOnlyPaths); VUONMINH_METRICS_PORT
    # serves it on a port of its own as well.
    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def create_app(platform: Platform, *, on_started: Callable[[Platform], Awaitable[None]] | None = None) -> FastAPI:
    authenticator = _authenticator_for(platform)
    settings = platform.settings
    configure_tracing(settings, "+".join(platform.runtimes))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await platform.start()
        # Revocations are known before the first request is served (unless the database is down:
        # then the refresh loop keeps trying).
        with contextlib.suppress(Exception):
            await authenticator.registry.reload()
        refresh = asyncio.create_task(_refresh_credentials(platform, authenticator), name="credentials-refresh")
        if settings.metrics_port:
            _serve_metrics_port(settings.metrics_port)
        try:
            if on_started:
                await on_started(platform)
            yield
        finally:
            refresh.cancel()
            await asyncio.gather(refresh, return_exceptions=True)
            await platform.stop()
            shutdown_tracing()

    # The docs pages' scripts are served by the app itself: a laptop or a cluster without
    # internet access still has working /docs and /redoc.
    app = FastAPIOffline(
        title="VươnMình",
        summary="Order backbone for commune e-commerce",
        version="0.1.0",
        lifespan=lifespan,
        telemetry=fastapi_telemetry(),
    )
    app.state.platform = platform
    app.state.authenticator = authenticator
    app.state.rate_limits = RateLimits.from_settings(settings)
    guarded = set() if settings.public_api_docs else set(DOCS_PATHS)
    if not settings.public_metrics:
        guarded.add("/metrics")
    if guarded:
        prefixes = () if settings.public_api_docs else (DOCS_STATIC_PREFIX,)
        app.add_middleware(OperatorOnlyPaths, paths=frozenset(guarded), prefixes=prefixes)
    app.add_middleware(BodySizeLimit)
    app.add_middleware(ServiceOnSpan, service="+".join(platform.runtimes))
    # Added last, so it runs first: a shed request costs no body read.
    app.add_middleware(InFlightLimit, max_in_flight=settings.max_in_flight)
    for runtime in platform.runtimes.values():
        if runtime.runs_api:
            app.include_router(runtime.spec.router)
    app.include_router(_ops_router())
    _document_raw_bodies(app, [model for rt in platform.runtimes.values() for model in rt.spec.raw_body_models])
    return app


_metrics_ports: set[int] = set()


def _serve_metrics_port(port: int) -> None:
    """/metrics without credentials on its own port (a thread of prometheus_client), once per process."""
    from prometheus_client import start_http_server

    if port not in _metrics_ports:
        start_http_server(port)
        _metrics_ports.add(port)


def _authenticator_for(platform: Platform) -> Authenticator:
    """Checks callers with the token keys from settings and the credential records of the
    databases of the services whose API this process serves (each holds the same records)."""
    runtimes = list(platform.runtimes.values())
    engines = [rt.engine for rt in runtimes if rt.runs_api]
    registry = CredentialRegistry(source=lambda: read_credentials(engines))
    return Authenticator.from_settings(runtimes[0].settings, registry)


async def _refresh_credentials(platform: Platform, authenticator: Authenticator) -> None:
    """Keeps the API's copy of the credential records fresh (new keys, revocations)."""
    interval = next(iter(platform.runtimes.values())).settings.credentials_refresh_s
    while True:
        try:
            await authenticator.registry.reload()
        except Exception as error:  # the database may be down: keep the last copy, try again
            log.warning("credentials.reload_failed", error=repr(error))
        await asyncio.sleep(interval)


def _document_raw_bodies(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Adds the schemas of bodies that routes read raw (signed webhooks) to the OpenAPI document."""
    default_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = default_openapi()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(model_schema.pop("$defs", {}))
                components[model.__name__] = model_schema
            _document_access_answers(schema)
            _document_rule_errors(components)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string", "description": "what is wrong"}},
    "required": ["detail"],
}
_ACCESS_ANSWERS = {
    "401": "no credential, or a bad one (missing, malformed, expired, bad signature, revoked): `detail` says which",
    "403": "the caller's role may not call this route: `detail` names the roles allowed",
    "429": "too many requests from this credential or address: retry after `Retry-After` seconds",
}


_BODY_ANSWERS = {
    "400": "the body is not JSON",
    "413": f"the body is over {MAX_BODY_BYTES // 1024} KiB",
}


def _document_access_answers(schema: dict) -> None:
    """Every operation that takes credentials (`security` set by shared.auth.require) documents the
    401, 403 and 429 it may answer."""
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or not operation.get("security"):
                continue
            responses = operation.setdefault("responses", {})
            # An object outside the caller's scope answers as one that does not exist; a write may
            # name one (404) or collide with what is stored (409: a changed retry, a stale version).
            content = {"application/json": {"schema": _ERROR_SCHEMA}}
            if "{" in path or method in ("post", "put", "patch", "delete"):
                responses.setdefault("404", {"description": "no such object, or one outside the caller's scope"})
                responses["404"].setdefault("content", content)
            if method in ("post", "put", "patch", "delete"):
                responses.setdefault("409", {"description": "conflicts with what is stored", "content": content})
            for status_code, description in _ACCESS_ANSWERS.items():
                answer = {"description": description, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
                if status_code == "429":
                    answer["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
                responses.setdefault(status_code, answer)
            if "requestBody" in operation:
                for status_code, description in _BODY_ANSWERS.items():
                    content = {"application/json": {"schema": _ERROR_SCHEMA}}
                    responses.setdefault(status_code, {"description": description, "content": content})


def _document_rule_errors(components: dict) -> None:
    """A 422 carries FastAPI's list of field errors, or, when a domain rule refuses the request
    (an unknown ward code, a date range that ends before it starts), one sentence."""
    validation = components.get("HTTPValidationError")
    if validation is None:
        return
    listed = validation["properties"]["detail"]
    validation["properties"]["detail"] = {
        "title": "Detail",
        "anyOf": [{k: v for k, v in listed.items() if k != "title"}, {"type": "string"}],
        "description": "the fields in error, or one sentence naming the rule the request breaks",
    }
