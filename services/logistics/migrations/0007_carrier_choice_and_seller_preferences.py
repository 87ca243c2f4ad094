"""carrier choice and seller preferences

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 03:38:56.752888
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seller_carrier_preferences",
        sa.Column("seller_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("carrier", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seller_id"),
    )
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("quoted_fee_vnd", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
        batch_op.add_column(sa.Column("choice", sa.JSON(), nullable=True))
        batch_op.create_index("ix_shipments_origin_ward_created", ["origin_ward_code", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_index("ix_shipments_origin_ward_created")
        batch_op.drop_column("choice")
        batch_op.drop_column("quoted_fee_vnd")

    op.drop_table("seller_carrier_preferences")
