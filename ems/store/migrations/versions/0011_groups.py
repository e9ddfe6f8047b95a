"""groups: site groups (territories), their nodes and sites, limits from outside

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-20 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ems.store.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "site_group",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", ems.store.base.UtcDateTime(), nullable=False),
        sa.Column("updated_at", ems.store.base.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_group")),
    )
    op.create_table(
        "group_node",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("root_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["root_id"], ["site_group.id"], name=op.f("fk_group_node_root_id_site_group"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_node")),
    )
    op.create_index(op.f("ix_group_node_root_id"), "group_node", ["root_id"], unique=False)
    op.create_table(
        "group_site",
        sa.Column("site_id", sa.String(length=255), nullable=False),
        sa.Column("root_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["root_id"], ["site_group.id"], name=op.f("fk_group_site_root_id_site_group"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_group_site")),
    )
    op.create_index(op.f("ix_group_site_root_id"), "group_site", ["root_id"], unique=False)
    op.create_table(
        "group_limit",
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("limit_id", sa.String(length=255), nullable=False),
        sa.Column("root_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("received_at", ems.store.base.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["root_id"], ["site_group.id"], name=op.f("fk_group_limit_root_id_site_group"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("group_id", "limit_id", name=op.f("pk_group_limit")),
    )
    op.create_index(op.f("ix_group_limit_root_id"), "group_limit", ["root_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_group_limit_root_id"), table_name="group_limit")
    op.drop_table("group_limit")
    op.drop_index(op.f("ix_group_site_root_id"), table_name="group_site")
    op.drop_table("group_site")
    op.drop_index(op.f("ix_group_node_root_id"), table_name="group_node")
    op.drop_table("group_node")
    op.drop_table("site_group")
