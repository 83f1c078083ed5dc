"""Alembic's environment for the hub's naic_* tables, driven from code (naic.hub.usage.migrate):
the connection comes in `config.attributes`, already in its transaction (and lock); the
version is kept in ``naic_alembic_version``; autogenerate sees only naic_* tables."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from naic.hub.usage import tables as usage_tables
from naic.hub.usage.migrate import VERSION_TABLE, is_naic_table
from naic.hub.workshops import tables as workshop_tables


def include_name(name: str | None, type_: str, parent_names) -> bool:
    return type_ != "table" or is_naic_table(name or "")


def run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=[usage_tables.metadata, workshop_tables.metadata],
        version_table=VERSION_TABLE,
        include_name=include_name,
        render_as_batch=True,  # ALTERs that SQLite cannot do in place copy the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:  # `alembic` run by hand with sqlalchemy.url set
    engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        run(conn)
    engine.dispose()
