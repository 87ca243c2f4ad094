"""The order's life as pure rules: stale platform statuses, forward-only moves, cancellation before dispatch;
and the fetcher's rate limiter and circuit breaker."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from vuonminh.orders import domain
from vuonminh.orders.platform_api import CircuitBreaker, CircuitOpen, RateLimiter

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def test_an_older_or_earlier_platform_status_is_stale():
    assert domain.is_stale_platform_state("shipped", T0, "to_ship", T0 + timedelta(minutes=1))  # earlier in life
    assert domain.is_stale_platform_state("to_ship", T0, "shipped", T0 - timedelta(minutes=1))  # older
    assert domain.is_stale_platform_state("cancelled", T0, "delivered", T0 + timedelta(days=1))  # after the end
    assert not domain.is_stale_platform_state("to_ship", T0, "shipped", T0 + timedelta(minutes=1))
    assert not domain.is_stale_platform_state(None, None, "unpaid", T0)


def test_orders_only_move_forward_and_are_cancelled_only_before_dispatch():
    assert domain.moves_forward("confirmed", "shipped") and domain.moves_forward("placed", "delivered")
    assert not domain.moves_forward("delivered", "shipped")
    assert not domain.moves_forward("cancelled", "shipped") and not domain.moves_forward("rejected", "placed")
    assert domain.may_cancel("confirmed") and domain.may_cancel("awaiting_payment")
    assert not domain.may_cancel("shipped")


async def test_the_rate_limiter_spaces_requests_per_shop():
    limiter = RateLimiter(20.0)
    started = time.monotonic()
    await asyncio.gather(*(limiter.acquire("shop-a") for _ in range(30)))
    await limiter.acquire("shop-b")  # another shop has its own bucket
    # 20 pass at once (the burst), the next 10 wait for tokens at 20 a second.
    assert limiter.waited_s >= 0.45
    assert time.monotonic() - started >= 0.45


def test_the_circuit_opens_after_repeated_failures_then_half_opens():
    breaker = CircuitBreaker("tiktok_shop", failures=3, open_s=0.05)
    for _ in range(3):
        breaker.before_call()
        breaker.failed()
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    time.sleep(0.06)
    assert breaker.state == "half_open"
    breaker.before_call()
    breaker.failed()  # the trial call failed: open again
    assert breaker.state == "open"
    time.sleep(0.06)
    breaker.succeeded()
    assert breaker.state == "closed"
