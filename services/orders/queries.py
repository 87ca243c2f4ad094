"""orders' read queries: the order list with its filters and cursor, and the livestreams' windows."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.orders.models import Livestream, Order, OrderLineRow


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class OrderFilters:
    shop_id: str | None = None
    seller_id: str | None = None
    channel: str | None = None
    status: str | None = None
    livestream_id: str | None = None
    order_id: str | None = None  # the platform's (or shop's) own id; with `channel`, one order
    placed_from: datetime | None = None
    placed_to: datetime | None = None


def encode_cursor(order: Order) -> str:
    return base64.urlsafe_b64encode(f"{order.placed_at.isoformat()}|{order.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        placed_at, order_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(placed_at), order_id
    except (ValueError, UnicodeDecodeError) as error:
        raise BadCursor("cursor is not one this API gave (pass the X-Next-Cursor of the previous page)") from error


async def order_page(
    session: AsyncSession,
    filters: OrderFilters,
    *,
    scope: ColumnElement[bool] | None,
    limit: int,
    offset: int = 0,
    cursor: str | None = None,
) -> tuple[list[Order], str | None]:
    """Newest first (placed_at, then id); the caller's scope is part of the query. Returns the page and the
    cursor of the next one (None at the end)."""
    query = select(Order).order_by(col(Order.placed_at).desc(), col(Order.id))
    if scope is not None:
        query = query.where(scope)
    equal = {
        Order.shop_id: filters.shop_id,
        Order.channel: filters.channel,
        Order.status: filters.status,
        Order.livestream_id: filters.livestream_id,
        Order.external_order_id: filters.order_id,
    }
    for column, value in equal.items():
        if value is not None:
            query = query.where(column == value)
    if filters.seller_id is not None:
        sold = select(OrderLineRow.order_id).where(OrderLineRow.seller_id == filters.seller_id)
        query = query.where(col(Order.id).in_(sold))
    if filters.placed_from is not None:
        query = query.where(col(Order.placed_at) >= filters.placed_from)
    if filters.placed_to is not None:
        query = query.where(col(Order.placed_at) < filters.placed_to)
    if cursor is not None:
        placed_at, order_id = decode_cursor(cursor)
        query = query.where(
            or_(col(Order.placed_at) < placed_at, and_(col(Order.placed_at) == placed_at, col(Order.id) > order_id))
        )
    rows = list((await session.exec(query.offset(offset).limit(limit + 1))).all())
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def livestream_for(session: AsyncSession, channel: str, shop_id: str, placed_at: datetime) -> str | None:
    """The livestream an order placed on this shop at this moment counts for, if any (the latest started)."""
    query = (
        select(Livestream.id)
        .where(
            Livestream.channel == channel,
            Livestream.shop_id == shop_id,
            col(Livestream.starts_at) <= placed_at,
            col(Livestream.ends_at) > placed_at,
        )
        .order_by(col(Livestream.starts_at).desc())
        .limit(1)
    )
    return (await session.exec(query)).first()
