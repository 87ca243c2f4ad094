"""The one retry and backoff helper: exponential waits with jitter (tenacity), for every loop
that must outlast an outage (consumers, relays, dead-letter sends, connecting to the log)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_never, wait_exponential_jitter
from tenacity.stop import stop_base

log = structlog.get_logger(__name__)
T = TypeVar("T")

INITIAL_WAIT_S = 0.1
MAX_WAIT_S = 5.0


def _not_cancelled(error: BaseException) -> bool:
    return not isinstance(error, asyncio.CancelledError)


def retrying(
    what: str,
    *,
    retry_on: Callable[[BaseException], bool] = _not_cancelled,
    stop: stop_base | Callable[[RetryCallState], bool] = stop_never,
    initial_s: float = INITIAL_WAIT_S,
    max_s: float = MAX_WAIT_S,
    **log_fields: object,
) -> AsyncRetrying:
    """`async for attempt in retrying("x"): with attempt: ...` — retries with exponential backoff and
    jitter while `retry_on(error)` holds and `stop` does not; the last error is re-raised."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "retry.waiting",
            what=what,
            attempt=state.attempt_number,
            retry_in_s=round(wait, 3),
            error=repr(error),
            **log_fields,
        )

    return AsyncRetrying(
        retry=retry_if_exception(retry_on),
        stop=stop,
        wait=wait_exponential_jitter(multiplier=initial_s, max=max_s, jitter=initial_s),
        before_sleep=before_sleep,
        reraise=True,
    )


async def until_done(what: str, operation: Callable[[], Awaitable[T]], **log_fields: object) -> T:
    """Runs `operation` until it succeeds, waiting out any error but cancellation."""
    async for attempt in retrying(what, **log_fields):
        with attempt:
            return await operation()
    raise AssertionError("unreachable: retrying never stops without an outcome")


def scheduled_backoff_s(attempt: int, *, initial_s: float, max_s: float) -> float:
    """How long a stored job waits before its `attempt`-th retry (1, 2, ...): doubling from `initial_s`,
    capped at `max_s`. For work kept in a table and picked up when due (not a loop that sleeps)."""
    return min(initial_s * 2 ** max(0, attempt - 1), max_s)
