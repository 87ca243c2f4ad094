"""Page parameters of every list route: sizes and depths are capped (an unbounded page or offset
lets one request read a whole table; an offset past 64 bits crashes the database driver)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

MAX_PAGE_SIZE = 500
# Deeper than this, filter instead (by shop, seller, day...): an offset scan costs every row before it.
MAX_OFFSET = 100_000

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"page size, at most {MAX_PAGE_SIZE}")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"rows to skip, at most {MAX_OFFSET}")]
