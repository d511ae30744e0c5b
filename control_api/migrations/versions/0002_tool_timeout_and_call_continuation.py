"""Tools get a result timeout; calls record which web call they continue (session continuity).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:22:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tools", sa.Column("timeout_seconds", sa.Float(), nullable=True))
    op.add_column("calls", sa.Column("continues_call_id", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("continues_call_id")
    with op.batch_alter_table("tools") as batch:
        batch.drop_column("timeout_seconds")
