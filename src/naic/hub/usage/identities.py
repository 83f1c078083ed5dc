"""Who is who: a hub user name belongs to one institutional identity, bound on first login."""

from __future__ import annotations

import sqlalchemy as sa

from naic.hub.usage.tables import Book, identities


class IdentityTaken(Exception):
    """A user name or institutional identity is already bound to someone else."""


class Identities(Book):
    """The ledger's identity bindings (`naic_identities`)."""

    def bind_identity(self, username: str, identity: str) -> None:
        """Bind on first login; the same pair again is fine; anything else is IdentityTaken."""
        # Insert first and look only on a conflict: the unique constraints decide races.
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    identities.insert().values(
                        username=username, identity=identity, bound_at=self._clock()
                    )
                )
            return
        except sa.exc.IntegrityError as exc:
            conflict = exc
        by_name = self.identity_of(username)
        with self._engine.connect() as conn:
            query = sa.select(identities.c.username).where(identities.c.identity == identity)
            by_identity = conn.scalar(query)
        if by_name == identity:
            return
        if by_name is not None:
            raise IdentityTaken(
                f"The user name '{username}' already belongs to another account ({by_name}); "
                "sign in with that account, or ask support to give yours a different user name."
            )
        if by_identity is None:
            raise conflict  # not a binding conflict: let the real error show
        raise IdentityTaken(
            f"The account {identity} already has the user name '{by_identity}'; sign in as "
            f"'{by_identity}', or ask support if that name must change."
        )

    def identity_of(self, username: str) -> str | None:
        with self._engine.connect() as conn:
            return conn.scalar(
                sa.select(identities.c.identity).where(identities.c.username == username)
            )
