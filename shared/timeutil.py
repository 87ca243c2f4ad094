"""Time helpers: everything is stored and sent in UTC; Vietnam days only for reporting."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

VIETNAM_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Aware datetime in UTC; a naive one is taken to be UTC already (as SQLite returns it)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def vietnam_day(moment: datetime) -> date:
    """The calendar day in Vietnam (UTC+7) on which a moment falls: officials count by it."""
    return as_utc(moment).astimezone(VIETNAM_TZ).date()
