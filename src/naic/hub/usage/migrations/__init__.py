"""Migrations of the hub's own tables (every ``naic_*`` table: the ledger's and the workshop
store's), with Alembic, in the hub's database beside JupyterHub's tables. Alembic keeps its
place in ``naic_alembic_version``, never in JupyterHub's own ``alembic_version``.

Nobody needs an ``alembic.ini``: `naic.hub.usage.migrate` drives them (``naic db upgrade``,
``naic up``, and every ledger and workshop store at start). ``versions/0001_baseline`` is the
schema as of commit 4bc6e89, frozen in `baseline`; each later change of
``naic.hub.usage.tables`` or ``naic.hub.workshops.tables`` comes with a migration here
(tests/unit/test_migrations.py fails until it does). To draft one from the difference::

    from alembic import command
    from naic.hub.usage import migrate
    command.revision(migrate.config(url="sqlite:///draft.sqlite"), "what changed",
                     autogenerate=True, rev_id="0002")

on a database at the newest revision, then read and edit what it wrote.
"""
