"""The dialer's bookkeeping on campaign candidates, and agents that can be deleted softly.

Each campaign candidate (`campaign_prospects`) records its attempt in flight (who claimed it, with which caller ID,
until when the claim holds), the retries used per outcome, why the last attempt ended and the ids of its calls.
`agents.deleted_at` lets an agent be deleted while its calls stay readable.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 20:45:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PROSPECT_COLUMNS = (
    sa.Column("claim_token", sa.String(length=36), nullable=True),
    sa.Column("dialer_id", sa.String(length=128), nullable=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("from_number", sa.String(length=32), nullable=True),
    sa.Column("attempt_started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_attempt_ended_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_reason", sa.String(length=64), nullable=True),
    sa.Column("retries_busy", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("retries_no_answer", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("retries_failed", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("call_ids", sa.JSON(), nullable=False, server_default="[]"),
)


def upgrade() -> None:
    with op.batch_alter_table("campaign_prospects") as batch:
        for column in PROSPECT_COLUMNS:
            batch.add_column(column._copy())
        batch.create_index("ix_campaign_prospects_campaign_id_status", ["campaign_id", "status"])
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("deleted_at")
    with op.batch_alter_table("campaign_prospects") as batch:
        batch.drop_index("ix_campaign_prospects_campaign_id_status")
        for column in reversed(PROSPECT_COLUMNS):
            batch.drop_column(column.name)
