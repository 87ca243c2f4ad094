"""Carriers: every callback kept, tracking codes, references, COD collected and remitted

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 03:23:31.524272
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "carrier_callbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("carrier", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("dedupe_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("shipment_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("raw_status", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("occurred_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("content_type", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("query", sa.JSON(), nullable=False),
        sa.Column("body", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("carrier", "dedupe_key", name="uq_carrier_callbacks_dedupe"),
    )
    with op.batch_alter_table("carrier_callbacks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_carrier_callbacks_carrier"), ["carrier"], unique=False)
        batch_op.create_index(batch_op.f("ix_carrier_callbacks_received_at"), ["received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_carrier_callbacks_shipment_id"), ["shipment_id"], unique=False)

    op.create_table(
        "cod_remittances",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("carrier", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("seller_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("amount_vnd", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shipment_ids", sa.JSON(), nullable=False),
        sa.Column("remitted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("cod_remittances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cod_remittances_seller_id"), ["seller_id"], unique=False)

    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("tracking_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("status_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("shipping_fee_vnd", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "cod_collected_vnd",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=False,
                server_default=sa.text("0"),
            )
        )
        batch_op.add_column(
            sa.Column(
                "cod_remitted_vnd",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=False,
                server_default=sa.text("0"),
            )
        )
        batch_op.add_column(sa.Column("cod_remitted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_shipments_tracking_code"), ["tracking_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_shipments_reference"), ["reference"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shipments_reference"))
        batch_op.drop_index(batch_op.f("ix_shipments_tracking_code"))
        batch_op.drop_column("cod_remitted_at")
        batch_op.drop_column("cod_remitted_vnd")
        batch_op.drop_column("cod_collected_vnd")
        batch_op.drop_column("shipping_fee_vnd")
        batch_op.drop_column("status_at")
        batch_op.drop_column("tracking_code")
        batch_op.drop_column("reference")

    with op.batch_alter_table("cod_remittances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cod_remittances_seller_id"))

    op.drop_table("cod_remittances")
    with op.batch_alter_table("carrier_callbacks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_carrier_callbacks_shipment_id"))
        batch_op.drop_index(batch_op.f("ix_carrier_callbacks_received_at"))
        batch_op.drop_index(batch_op.f("ix_carrier_callbacks_carrier"))

    op.drop_table("carrier_callbacks")
