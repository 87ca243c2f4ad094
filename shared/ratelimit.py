"""Request rates per API credential and per client IP, on every route that declares its callers.

Counted in this process's memory (the `limits` library, moving window): no database or lock
round trip on a request, at the price of each replica counting on its own (N replicas allow N
times the rate; set the limits per replica). Signed webhook routes declare no callers and are
never counted here: their intake path stays as cheap as it was.
"""

from __future__ import annotations

import math
import time

from fastapi import HTTPException, Request, status
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from vuonminh.shared.settings import Settings


def _parse(setting: str, value: str | None) -> RateLimitItem | None:
    if not value or value.strip().lower() in ("", "off", "none"):
        return None
    try:
        return parse(value)
    except ValueError:
        raise ValueError(f"{setting} must be a rate such as '600/minute' or 'off', got {value!r}") from None


class RateLimits:
    def __init__(self, *, per_key: str | None, per_ip: str | None) -> None:
        self.per_key = _parse("VUONMINH_RATE_LIMIT_PER_KEY", per_key)
        self.per_ip = _parse("VUONMINH_RATE_LIMIT_PER_IP", per_ip)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        return cls(per_key=settings.rate_limit_per_key, per_ip=settings.rate_limit_per_ip)

    def check_ip(self, request: Request) -> None:
        if self.per_ip is not None:
            self._hit(self.per_ip, "ip", request.client.host if request.client else "unknown", "this address")

    def check_credential(self, credential_id: str) -> None:
        if self.per_key is not None:
            self._hit(self.per_key, "key", credential_id, "this credential")

    def _hit(self, item: RateLimitItem, kind: str, identifier: str, whose: str) -> None:
        if self._limiter.hit(item, kind, identifier):
            return
        reset_at = self._limiter.get_window_stats(item, kind, identifier).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many requests from {whose} (limit {item}); retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


def rate_limits_of(request: Request) -> RateLimits | None:
    return getattr(request.app.state, "rate_limits", None)
