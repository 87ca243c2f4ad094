"""parked orders, order versions, shops, bigint money and weights

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:47:42.108915

- orders keep the items as sent (`items`), the flow of their current version (`correlation_id`),
  since when they wait for the catalog (`awaiting_since`) and conflicting versions (`conflicts`);
  `order_catalog_waits` names what a parked order waits for.
- `shops`: each shop's webhook secrets, encrypted.
- Money and weight columns become BIGINT on PostgreSQL, where INTEGER stops at 2,147,483,647
  (SQLite's INTEGER is 64-bit already: the models keep it there).
- Orders stored before get their items back from their lines (placed orders; a rejected order had
  none stored, and a new version from the shop replaces it anyway).
"""

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY_AND_WEIGHTS = {
    "catalog_products": ("unit_weight_g",),
    "order_lines": ("unit_price_vnd", "unit_weight_g", "line_total_vnd", "line_weight_g"),
    "orders": ("total_vnd", "total_weight_g"),
}


def upgrade() -> None:
    op.create_table(
        "shops",
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("shop_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("seller_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("secret_encrypted", sa.Text(), nullable=True),
        sa.Column("previous_secret_encrypted", sa.Text(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("rotated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("channel", "shop_id"),
    )
    op.create_table(
        "order_catalog_waits",
        sa.Column("order_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("ref", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("order_id", "kind", "ref"),
    )
    op.create_index("ix_order_catalog_waits_ref", "order_catalog_waits", ["kind", "ref"], unique=False)
    # Plain ADD COLUMNs: SQLite does them in place (no copy of the table its lines reference).
    op.add_column("orders", sa.Column("items", sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
    op.add_column("orders", sa.Column("awaiting_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.add_column("orders", sa.Column("correlation_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    op.add_column("orders", sa.Column("conflicts", sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
    _retype(sa.INTEGER(), sa.BigInteger())
    _items_from_lines()


def downgrade() -> None:
    _retype(sa.BigInteger(), sa.INTEGER())
    for column in ("conflicts", "correlation_id", "awaiting_since", "items"):
        op.drop_column("orders", column)
    op.drop_index("ix_order_catalog_waits_ref", table_name="order_catalog_waits")
    op.drop_table("order_catalog_waits")
    op.drop_table("shops")


def _retype(existing: sa.types.TypeEngine, new: sa.types.TypeEngine) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in MONEY_AND_WEIGHTS.items():
        for column in columns:
            op.alter_column(table, column, existing_type=existing, type_=new, existing_nullable=False)


def _items_from_lines() -> None:
    lines = sa.table(
        "order_lines",
        sa.column("order_id"),
        sa.column("line_no"),
        sa.column("sku"),
        sa.column("quantity"),
        sa.column("unit_price_vnd"),
    )
    orders = sa.table("orders", sa.column("id"), sa.column("items", sa.JSON()))
    items_by_order: dict[str, list[dict]] = defaultdict(list)
    connection = op.get_bind()
    query = sa.select(lines.c.order_id, lines.c.sku, lines.c.quantity, lines.c.unit_price_vnd).order_by(
        lines.c.order_id, lines.c.line_no
    )
    for row in connection.execute(query):
        items_by_order[row.order_id].append(
            {"sku": row.sku, "quantity": row.quantity, "unit_price_vnd": row.unit_price_vnd}
        )
    for order_id, items in items_by_order.items():
        connection.execute(orders.update().where(orders.c.id == order_id).values(items=items))
