"""bigint money and weights

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:48:16.451402

On PostgreSQL INTEGER stops at 2,147,483,647: money and weight columns become BIGINT. SQLite's
INTEGER is 64-bit already, so the models keep it there and nothing changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY_AND_WEIGHTS = {"products": ("unit_weight_g",)}


def upgrade() -> None:
    _retype(sa.INTEGER(), sa.BigInteger())


def downgrade() -> None:
    _retype(sa.BigInteger(), sa.INTEGER())


def _retype(existing: sa.types.TypeEngine, new: sa.types.TypeEngine) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in MONEY_AND_WEIGHTS.items():
        for column in columns:
            op.alter_column(table, column, existing_type=existing, type_=new, existing_nullable=False)
