"""asyncio helpers."""

from __future__ import annotations

import asyncio


async def wait_for_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Whether `event` was set within the timeout.

    Not `asyncio.wait_for`: on Python 3.11 it can swallow a cancellation that lands while its
    timeout fires, leaving a stopping task running forever. `asyncio.timeout` cannot.
    """
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True
