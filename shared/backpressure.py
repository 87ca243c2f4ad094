"""Load shedding: past what the process can take, answer 503 at once instead of queueing.

Each request in flight holds memory (its body, its task) and a slice of the one event loop that,
in the embedded mode, the consumers share too. Beyond `VUONMINH_MAX_IN_FLIGHT` concurrent requests a
new one gets 503 with `Retry-After` before its body is read: senders retry (webhook platforms do),
nothing already accepted is affected, memory stays bounded, and the consumers keep their turn on
the loop. Health, readiness and metrics are never shed: an overloaded process must still say so.
"""

from __future__ import annotations

import json

from prometheus_client import Counter, Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

UNSHED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

IN_FLIGHT = Gauge("vuonminh_http_in_flight", "HTTP requests being served by this process")
SHED = Counter("vuonminh_http_shed_total", "Requests answered 503 at once because the process was full")


class InFlightLimit:
    """Pure ASGI (no per-request task or body buffering), so its own cost stays near zero."""

    def __init__(self, app: ASGIApp, max_in_flight: int, retry_after_s: int = 1) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._body = json.dumps(
            {
                "detail": (
                    f"the service is at capacity ({max_in_flight} requests in flight); "
                    f"retry after {retry_after_s} s, nothing was accepted"
                )
            }
        ).encode()
        self._headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._body)).encode()),
            (b"retry-after", str(retry_after_s).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNSHED_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            SHED.inc()
            await send({"type": "http.response.start", "status": 503, "headers": self._headers})
            await send({"type": "http.response.body", "body": self._body})
            return
        self.in_flight += 1
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            IN_FLIGHT.dec()
