"""a session need's PV-only extra energy

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 11:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("session_need", schema=None) as batch_op:
        batch_op.add_column(sa.Column("energy_extra_kwh", sa.Float(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("session_need", schema=None) as batch_op:
        batch_op.drop_column("energy_extra_kwh")
