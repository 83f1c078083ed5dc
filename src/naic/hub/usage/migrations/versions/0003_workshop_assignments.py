"""Workshop assignments: what the staff released (`naic_assignments`) and each student's
latest submission (`naic_submissions`), both as zip archives in the database
(naic.hub.workshops.assignments).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

#: What naic.hub.usage.db.UTCDateTime stores (a migration keeps its own types).
When = sa.DateTime(timezone=True)

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "naic_assignments",
        sa.Column("workshop", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("released_at", When, nullable=False),
        sa.Column("released_by", sa.String(255), nullable=False),
        sa.Column("archive", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "naic_submissions",
        sa.Column("workshop", sa.String(40), primary_key=True),
        sa.Column("assignment", sa.String(40), primary_key=True),
        sa.Column("username", sa.String(255), primary_key=True),
        sa.Column("submitted_at", When, nullable=False),
        sa.Column("archive", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("naic_submissions")
    op.drop_table("naic_assignments")
