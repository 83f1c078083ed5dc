"""Temporary accounts for a workshop: the site's guest accounts, handed out for a workshop's
window with one-time passwords (scrypt-hashed in the database) and reset after it."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa

from naic.hub.workshops.rules import guest_login_refusal, needs_reset
from naic.hub.workshops.tables import GuestAccount, guests_table


def hash_password(password: str, salt: bytes | None = None) -> str:
    """scrypt, as the standard library has it; `salt$hash` in hex."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"{salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    salt, _, _ = stored.partition("$")
    return hmac.compare_digest(hash_password(password, bytes.fromhex(salt)), stored)


class Guests:
    """The workshop store's temporary accounts (`naic_guest_accounts`). `WorkshopStore`
    combines it with the workshops and seats it gives out (`get`, `join`)."""

    _engine: sa.Engine
    _clock: Callable[[], datetime]

    def free_guests(self, pool: list[str], count: int) -> list[str]:
        """The first `count` accounts of `pool` nobody holds now, or ValueError with the
        sentence how many are free."""
        g = guests_table.c
        with self._engine.connect() as conn:
            held = set(conn.scalars(sa.select(g.username).where(g.expires_at > self._clock())))
        free = [u for u in pool if u not in held]
        if count > len(free):
            raise ValueError(
                f"Only {len(free)} workshop accounts are free now (the site has {len(pool)}); "
                f"ask for at most {len(free)}."
            )
        return free[:count]

    def issue_guests(self, name: str, pool: list[str], count: int) -> list[tuple[str, str]]:
        """Hand out `count` free accounts of `pool` to workshop `name` until its end, each
        with a new one-time password, and seat them; [(username, password)]. A pool account
        is free when nobody holds it now; ValueError when too few are. All or none: an
        account another workshop takes at the same moment fails the whole issue. The caller
        resets the accounts first (naic.hub.workshops.api.reset_guest)."""
        ws = self.get(name)
        now = self._clock()
        g = guests_table.c
        issued, chosen = [], self.free_guests(pool, count)
        try:
            with self._engine.begin() as conn:
                for username in chosen:
                    password = "-".join(secrets.token_hex(3) for _ in range(3))
                    row = dict(
                        workshop=name,
                        password_hash=hash_password(password),
                        issued_at=now,
                        expires_at=ws.ends_at,
                        password_used_at=None,
                        reset_at=None,
                    )
                    # Only a row whose holder's time is over is taken over; a new one is an
                    # insert, which the primary key refuses if somebody just made it.
                    taken = conn.execute(
                        guests_table.update()
                        .where(g.username == username, g.expires_at <= now)
                        .values(**row)
                    ).rowcount
                    if not taken:
                        conn.execute(guests_table.insert().values(username=username, **row))
                    issued.append((username, password))
        except sa.exc.IntegrityError:
            raise ValueError(
                "Another workshop was given some of these accounts at the same moment; "
                "please ask again."
            ) from None
        for username, _ in issued:
            self.join(name, username, guest=True)
        return issued

    def guest_login(self, username: str, password: str) -> str:
        """The workshop a guest account belongs to, or ValueError with the sentence why not.
        A password logs in once: the first login marks it used, atomically."""
        g = guests_table.c
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(guests_table).where(g.username == username)).first()
        now = self._clock()
        facts = dict(
            known=row is not None,
            password_ok=row is not None and password_matches(password, row.password_hash),
            expires_at=row.expires_at if row else None,
            now=now,
        )
        refusal = guest_login_refusal(used_at=row.password_used_at if row else None, **facts)
        if refusal:
            raise ValueError(refusal)
        with self._engine.begin() as conn:
            first = conn.execute(
                guests_table.update()
                .where(
                    g.username == username,
                    g.password_hash == row.password_hash,
                    g.password_used_at.is_(None),
                )
                .values(password_used_at=now)
            ).rowcount
        if not first:  # another login with the same password came first
            raise ValueError(guest_login_refusal(used_at=now, **facts))
        return row.workshop

    def expire_guests(self, name: str) -> list[str]:
        """End every account of workshop `name` now; the usernames."""
        g = guests_table.c
        now = self._clock()
        with self._engine.begin() as conn:
            names = list(conn.scalars(sa.select(g.username).where(g.workshop == name)))
            conn.execute(
                guests_table.update()
                .where(g.workshop == name, g.expires_at > now)
                .values(expires_at=now)
            )
        return names

    def guests_due(self) -> list[GuestAccount]:
        """Issued accounts whose window has passed and that were not reset since."""
        g = guests_table.c
        now = self._clock()
        with self._engine.connect() as conn:
            query = sa.select(guests_table).where(g.expires_at <= now).order_by(g.username)
            rows = conn.execute(query).all()
        return [
            GuestAccount(r.username, r.workshop, r.issued_at, r.expires_at, r.reset_at)
            for r in rows
            if needs_reset(expires_at=r.expires_at, reset_at=r.reset_at, now=now)
        ]

    def mark_reset(self, username: str, issued_at: datetime) -> None:
        """Record the reset of this issue of the account (not of a newer one)."""
        g = guests_table.c
        with self._engine.begin() as conn:
            conn.execute(
                guests_table.update()
                .where(g.username == username, g.issued_at == issued_at)
                .values(reset_at=self._clock())
            )

    def guests(self, name: str) -> list[str]:
        g = guests_table.c
        with self._engine.connect() as conn:
            return list(conn.scalars(sa.select(g.username).where(g.workshop == name)))
