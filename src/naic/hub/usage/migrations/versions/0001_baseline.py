"""Baseline: the hub's naic_* tables as of commit 4bc6e89 (frozen in ..baseline).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from naic.hub.usage.migrations import baseline

revision = baseline.REVISION
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    baseline.metadata.create_all(op.get_bind(), checkfirst=False)


def downgrade() -> None:
    baseline.metadata.drop_all(op.get_bind(), checkfirst=False)
