"""SIP trunk features: `sip_trunks.register` (keep our Contact registered with the trunk) and `sip_trunks.srtp`
(offer SRTP with SDES keys on its calls).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 21:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sip_trunks") as batch:
        batch.add_column(sa.Column("register", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("srtp", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("sip_trunks") as batch:
        batch.drop_column("srtp")
        batch.drop_column("register")
