"""A workshop's shared course folder: an absolute folder on its site, one read-only copy of
the course's data that every student's session links as ~/<workshop>/shared (None: none),
set with `naic workshop create --shared`.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("naic_workshops") as table:
        table.add_column(sa.Column("shared", sa.String(500)))


def downgrade() -> None:
    with op.batch_alter_table("naic_workshops") as table:
        table.drop_column("shared")
