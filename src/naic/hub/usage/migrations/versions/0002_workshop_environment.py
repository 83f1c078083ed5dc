"""A workshop's environment: the catalogue environment its sessions run (None: the
resource's first, as before), chosen with `naic workshop create --environment`.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("naic_workshops") as table:
        table.add_column(sa.Column("environment", sa.String(40)))


def downgrade() -> None:
    with op.batch_alter_table("naic_workshops") as table:
        table.drop_column("environment")
