"""Calling the platforms' Open APIs: one httpx client, a rate limit per platform and shop, retries with
backoff (shared/retry.py) on timeouts, 5xx and throttling answers, and a circuit breaker per platform.

A platform that keeps failing opens its circuit: the fetcher then stops taking notifications, which
wait in the log (a spike waits in Kafka instead of hammering the platform), and tries again once the
circuit half-opens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson
import structlog
from tenacity import stop_after_attempt

from vuonminh.orders.channels.base import PlatformError, ShapeError
from vuonminh.orders.metrics import PLATFORM_API_CALLS
from vuonminh.orders.settings import PlatformSettings
from vuonminh.shared.retry import retrying

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class TokenGrant:
    """What a platform's token refresh answers."""

    access_token: str
    refresh_token: str
    access_expires_at: datetime
    refresh_expires_at: datetime | None = None


@dataclass(frozen=True)
class ShopConnection:
    """A platform shop we may call the API for (tokens decrypted, in memory only)."""

    channel: str
    shop_id: str
    seller_id: str | None
    access_token: str
    shop_cipher: str | None = None  # TikTok Shop


class RateLimiter:
    """A token bucket per key (platform and shop): `rate` requests a second, bursts up to `rate`."""

    def __init__(self, rate_per_s: float) -> None:
        self.rate = rate_per_s
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = asyncio.Lock()
        self.waited_s = 0.0  # total time callers waited: rate limiting at work

    async def acquire(self, key: str) -> None:
        async with self._lock:  # one waiter at a time keeps the order fair and the count exact
            tokens, last = self._buckets.get(key, (self.rate, time.monotonic()))
            now = time.monotonic()
            tokens = min(self.rate, tokens + (now - last) * self.rate)
            if tokens < 1:
                wait = (1 - tokens) / self.rate
                self.waited_s += wait
                await asyncio.sleep(wait)
                now = time.monotonic()
                tokens = 1.0
            self._buckets[key] = (tokens - 1, now)


class CircuitOpen(Exception):
    def __init__(self, channel: str, retry_in_s: float) -> None:
        super().__init__(f"{channel}: circuit open after repeated failures, next try in {retry_in_s:.1f} s")
        self.retry_in_s = retry_in_s


class CircuitBreaker:
    """Closed: calls pass. After `failures` consecutive failed calls: open for `open_s`, calls refused.
    Then half-open: one call passes; its success closes the circuit, its failure opens it again."""

    def __init__(self, channel: str, *, failures: int, open_s: float) -> None:
        self.channel = channel
        self.threshold = failures
        self.open_s = open_s
        self.consecutive_failures = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "open" if time.monotonic() - self.opened_at < self.open_s else "half_open"

    def before_call(self) -> None:
        if self.state == "open":
            assert self.opened_at is not None
            raise CircuitOpen(self.channel, self.open_s - (time.monotonic() - self.opened_at))

    def succeeded(self) -> None:
        self.consecutive_failures = 0
        self.opened_at = None

    def failed(self) -> None:
        self.consecutive_failures += 1
        if self.state == "half_open" or self.consecutive_failures >= self.threshold:
            if self.opened_at is None or self.state == "half_open":
                log.warning("orders.platform_circuit_opened", channel=self.channel, open_s=self.open_s)
            self.opened_at = time.monotonic()


class Throttled(Exception):
    """HTTP 429 or a throttling code: retried with backoff."""


class ServerFailed(Exception):
    """HTTP 5xx: retried with backoff."""


def _retryable(error: BaseException) -> bool:
    if isinstance(error, PlatformError):
        return error.retryable
    return isinstance(error, Throttled | ServerFailed | httpx.TransportError)


class PlatformClient:
    def __init__(self, settings: PlatformSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.http = httpx.AsyncClient(timeout=settings.api_timeout_s, transport=transport)
        self._limiters: dict[str, RateLimiter] = {}
        self.breakers: dict[str, CircuitBreaker] = {}
        self.calls = 0  # HTTP requests made (every attempt)

    def limiter(self, channel: str, default_rate: float) -> RateLimiter:
        if channel not in self._limiters:
            self._limiters[channel] = RateLimiter(self.settings.api_rate_per_s or default_rate)
        return self._limiters[channel]

    def breaker(self, channel: str) -> CircuitBreaker:
        if channel not in self.breakers:
            self.breakers[channel] = CircuitBreaker(
                channel, failures=self.settings.breaker_failures, open_s=self.settings.breaker_open_s
            )
        return self.breakers[channel]

    async def get_json(
        self,
        channel: str,
        shop_id: str,
        *,
        rate_per_s: float,
        request: Callable[[], tuple[str, Mapping[str, str], Mapping[str, str]]],
        check: Callable[[Any], None],
        method: str = "GET",
        json_body: Mapping[str, Any] | None = None,
    ) -> Any:
        """GETs what `request()` names (url, query, headers: called per attempt, so each attempt is
        signed with a fresh timestamp), checks the body with `check` (raises PlatformError on an error
        code), retrying what may pass later. Raises CircuitOpen, PlatformError, ShapeError or the last
        transport error."""
        breaker = self.breaker(channel)
        limiter = self.limiter(channel, rate_per_s)
        async for attempt in retrying(
            f"{channel} API",
            retry_on=_retryable,
            stop=stop_after_attempt(self.settings.api_attempts),
            initial_s=self.settings.api_backoff_initial_s,
            max_s=self.settings.api_backoff_max_s,
            shop_id=shop_id,
        ):
            with attempt:
                breaker.before_call()
                await limiter.acquire(shop_id)
                url, query, headers = request()
                self.calls += 1
                try:
                    response = await self.http.request(
                        method, url, params=dict(query), headers=dict(headers), json=json_body
                    )
                except httpx.TransportError:
                    PLATFORM_API_CALLS.labels(channel, "transport_error").inc()
                    breaker.failed()
                    raise
                outcome = _classify(response)
                PLATFORM_API_CALLS.labels(channel, outcome).inc()
                if outcome == "throttled":
                    breaker.failed()
                    raise Throttled(f"{channel}: HTTP {response.status_code}, throttled")
                if outcome == "server_error":
                    breaker.failed()
                    raise ServerFailed(f"{channel}: HTTP {response.status_code}")
                try:
                    body = orjson.loads(response.content)
                except orjson.JSONDecodeError as error:
                    breaker.succeeded()  # the platform answered: its answer is the problem
                    raise ShapeError(f"{channel}: HTTP {response.status_code}, body is not JSON") from error
                try:
                    check(body)
                except PlatformError as error:
                    if error.retryable:
                        breaker.failed()
                    else:
                        breaker.succeeded()
                    raise
                if response.status_code >= 400:
                    breaker.succeeded()
                    raise ShapeError(f"{channel}: HTTP {response.status_code} without an error code in the body")
                breaker.succeeded()
                return body
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self.http.aclose()


def _classify(response: httpx.Response) -> str:
    if response.status_code == 429:
        return "throttled"
    if response.status_code >= 500:
        return "server_error"
    return "ok" if response.status_code < 400 else "client_error"


def query_string_for_signing(query: Mapping[str, str], *, leave_out: tuple[str, ...] = ()) -> str:
    """Sorted `k1v1k2v2...` of the query, as TikTok and Lazada sign it."""
    return "".join(f"{k}{query[k]}" for k in sorted(query) if k not in leave_out)
