"""Workshops and their seats, kept durably in the hub's database (its own `naic_` tables).

As the ledger, SQLAlchemy Core over the hub's `db_url`, so SQLite and PostgreSQL alike; the
database's unique constraints decide races: two students taking the last seat at once get
seat numbers that collide, and one of them is told the workshop is full.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from naic.hub.usage.ledger import UTCDateTime, utcnow
from naic.hub.workshops.rules import (
    MAX_SEATS,
    WorkshopSpec,
    code_digest,
    guest_login_refusal,
    is_code_digest,
    join_refusal,
    needs_reset,
)

metadata = sa.MetaData()

workshops_table = sa.Table(
    "naic_workshops",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("title", sa.String(120), nullable=False),
    sa.Column("instructor", sa.String(255), nullable=False, index=True),
    sa.Column("seats", sa.Integer, nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Column("site", sa.String(40), nullable=False),
    sa.Column("resource", sa.String(40), nullable=False),
    sa.Column("gpus", sa.Integer, nullable=False),
    sa.Column("hours", sa.Float, nullable=False),
    sa.Column("project", sa.String(40)),
    sa.Column("material", sa.String(500), nullable=False),
    # The join code's keyed hash (naic.hub.workshops.rules.code_digest), never the code itself:
    # a copy of the database gives no usable code. Hubs before kept codes here in clear;
    # the store hashes them at start (`_hash_clear_codes`).
    sa.Column("code", sa.String(64), nullable=False, unique=True),
    sa.Column("reservation", sa.String(64)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    # Why it waits for an admin (the catalogue's `workshops` policy); None: it does not.
    sa.Column("awaiting_approval", sa.String(1000)),
    sa.Column("approved_by", sa.String(255)),
)

seats_table = sa.Table(
    "naic_workshop_seats",
    metadata,
    sa.Column("workshop", sa.String(40), primary_key=True),
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("seat", sa.Integer, nullable=False),
    sa.Column("joined_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("workshop", "seat", name="naic_one_student_per_seat"),
)

#: Temporary accounts: who holds which guest account, until when, with which password.
guests_table = sa.Table(
    "naic_guest_accounts",
    metadata,
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("workshop", sa.String(40), nullable=False, index=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    # One login per password: when it was used (None: not yet).
    sa.Column("password_used_at", UTCDateTime),
    # When the account was last reset (its hub tokens, jobs, home) after its window passed.
    sa.Column("reset_at", UTCDateTime),
)
#: Columns added after the table first shipped: a hub's existing table gets them at start.
_ADDED_COLUMNS = {
    guests_table.name: ("password_used_at", "reset_at"),
    workshops_table.name: ("awaiting_approval", "approved_by"),
}


def hash_password(password: str, salt: bytes | None = None) -> str:
    """scrypt, as the standard library has it; `salt$hash` in hex."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"{salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    salt, _, _ = stored.partition("$")
    return hmac.compare_digest(hash_password(password, bytes.fromhex(salt)), stored)


@dataclass(frozen=True)
class Workshop:
    name: str
    title: str
    instructor: str
    seats: int
    starts_at: datetime
    ends_at: datetime
    site: str
    resource: str
    gpus: int
    hours: float
    project: str | None
    material: str
    code_digest: str
    reservation: str | None
    created_at: datetime
    ended_at: datetime | None
    awaiting_approval: str | None = None
    approved_by: str | None = None

    def is_open(self, now: datetime) -> bool:
        return self.ended_at is None and self.starts_at <= now < self.ends_at


@dataclass(frozen=True)
class Seat:
    workshop: str
    username: str
    seat: int
    joined_at: datetime


@dataclass(frozen=True)
class GuestAccount:
    """One issue of a temporary account: to whom (the workshop), until when."""

    username: str
    workshop: str
    issued_at: datetime
    expires_at: datetime
    reset_at: datetime | None


class WorkshopExists(ValueError):
    pass


def _workshop(row) -> Workshop:
    fields = dict(row._mapping)
    fields["code_digest"] = fields.pop("code")
    return Workshop(**fields)


class WorkshopStore:
    """`code_key` (naic.hub.workshops.rules.code_key) hashes join codes; a store without one
    (the spawn router's, the hub's timer) does not make or look up codes."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = utcnow,
        code_key: bytes | None = None,
    ):
        self._engine = sa.create_engine(url, future=True)
        self._clock = clock
        self._code_key = code_key
        metadata.create_all(self._engine)
        self._add_missing_columns()
        if code_key is not None:
            self._hash_clear_codes()

    def _digest(self, code: str) -> str:
        if self._code_key is None:
            raise RuntimeError("this workshop store was made without the key for join codes")
        return code_digest(code, self._code_key)

    def _hash_clear_codes(self) -> None:
        """Join codes an older hub kept in clear become their hash, in place (the column
        widened first where the database enforces its length). Repeatable; another hub
        doing it at once hashes nothing twice (a digest is left as it is)."""
        w = workshops_table.c
        if self._engine.dialect.name == "postgresql":
            length = next(
                c["type"].length
                for c in sa.inspect(self._engine).get_columns(workshops_table.name)
                if c["name"] == "code"
            )
            if length is not None and length < 64:
                with self._engine.begin() as conn:
                    conn.execute(
                        sa.text(
                            f"ALTER TABLE {workshops_table.name} ALTER COLUMN code TYPE VARCHAR(64)"
                        )
                    )
        with self._engine.begin() as conn:
            rows = conn.execute(sa.select(w.name, w.code)).all()
            for name, code in rows:
                if not is_code_digest(code):
                    conn.execute(
                        workshops_table.update()
                        .where(w.name == name, w.code == code)
                        .values(code=self._digest(code))
                    )

    def _add_missing_columns(self) -> None:
        """`create_all` makes missing tables only; columns added since come here (nullable,
        so every backend adds them in place). Another hub adding them at once is harmless."""
        inspector = sa.inspect(self._engine)
        for table_name, names in _ADDED_COLUMNS.items():
            have = {c["name"] for c in inspector.get_columns(table_name)}
            for name in names:
                if name in have:
                    continue
                column = metadata.tables[table_name].c[name]
                kind = column.type.compile(dialect=self._engine.dialect)
                try:
                    with self._engine.begin() as conn:
                        conn.execute(sa.text(f"ALTER TABLE {table_name} ADD COLUMN {name} {kind}"))
                except sa.exc.DBAPIError:
                    if name not in {
                        c["name"] for c in sa.inspect(self._engine).get_columns(table_name)
                    }:
                        raise

    def close(self) -> None:
        self._engine.dispose()

    def create(
        self,
        spec: WorkshopSpec,
        *,
        instructor: str,
        code: str,
        awaiting_approval: str | None = None,
    ) -> Workshop:
        """`awaiting_approval`: why an admin must approve it first (None: no need)."""
        row = dict(
            awaiting_approval=awaiting_approval,
            name=spec.name,
            title=spec.title or spec.name,
            instructor=instructor,
            seats=spec.seats,
            starts_at=spec.start,
            ends_at=spec.end,
            site=spec.site,
            resource=spec.resource_name,
            gpus=spec.gpus,
            hours=spec.hours,
            project=spec.project,
            material=spec.material,
            code=self._digest(code),
            created_at=self._clock(),
        )
        try:
            with self._engine.begin() as conn:
                conn.execute(workshops_table.insert().values(**row))
        except sa.exc.IntegrityError:
            raise WorkshopExists(
                f"There is already a workshop named {spec.name}; choose another name."
            ) from None
        return self.get(spec.name)

    def approve(self, name: str, admin: str) -> Workshop:
        w = workshops_table.c
        with self._engine.begin() as conn:
            conn.execute(
                workshops_table.update()
                .where(w.name == name)
                .values(awaiting_approval=None, approved_by=admin)
            )
        return self.get(name)

    def active_of(self, instructor: str) -> list[Workshop]:
        """The instructor's workshops not ended and whose window has not passed."""
        w = workshops_table.c
        now = self._clock()
        return self._workshops(w.instructor == instructor, w.ended_at.is_(None), w.ends_at > now)

    def set_reservation(self, name: str, reservation: str | None) -> None:
        w = workshops_table.c
        with self._engine.begin() as conn:
            conn.execute(
                workshops_table.update().where(w.name == name).values(reservation=reservation)
            )

    def delete(self, name: str) -> None:
        """Undo a create that could not be completed (its reservation failed)."""
        with self._engine.begin() as conn:
            conn.execute(seats_table.delete().where(seats_table.c.workshop == name))
            conn.execute(workshops_table.delete().where(workshops_table.c.name == name))

    def get(self, name: str) -> Workshop | None:
        found = self._workshops(workshops_table.c.name == name)
        return found[0] if found else None

    def by_code(self, code: str) -> Workshop | None:
        found = self._workshops(workshops_table.c.code == self._digest(code))
        return found[0] if found else None

    def set_code(self, name: str, code: str) -> None:
        """A new join code for workshop `name`; the old one stops working."""
        w = workshops_table.c
        with self._engine.begin() as conn:
            conn.execute(
                workshops_table.update().where(w.name == name).values(code=self._digest(code))
            )

    def list(self, instructor: str | None = None) -> list[Workshop]:
        """Soonest first."""
        w = workshops_table.c
        return self._workshops(*([] if instructor is None else [w.instructor == instructor]))

    def join(self, name: str, user: str, *, guest: bool = False) -> Seat:
        """Take a seat (the same one again for a second redemption), or ValueError with the
        sentence why not. Guest accounts are seated when issued, before the window opens."""
        # A collision on the seat number means another student just took that seat: each try
        # either succeeds or sees one more seat taken, so this ends by the seat limit.
        for _ in range(MAX_SEATS + 2):
            ws = self.get(name)
            if ws is None:
                raise ValueError("That code belongs to no workshop.")
            taken = self.seats(name)
            mine = next((s for s in taken if s.username == user), None)
            refusal = join_refusal(
                title=ws.title,
                start=ws.starts_at,
                end=ws.ends_at,
                ended=ws.ended_at is not None,
                seats=ws.seats,
                taken=len(taken),
                already_in=mine is not None,
                now=max(self._clock(), ws.starts_at) if guest else self._clock(),
                awaiting_approval=ws.awaiting_approval is not None,
            )
            if refusal:
                raise ValueError(refusal)
            if mine is not None:
                return mine
            seat = max((s.seat for s in taken), default=0) + 1
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        seats_table.insert().values(
                            workshop=name, username=user, seat=seat, joined_at=self._clock()
                        )
                    )
            except sa.exc.IntegrityError:
                continue
            return Seat(name, user, seat, self._clock())
        raise ValueError("Many students are joining at this moment; please try again.")

    def leave(self, name: str, user: str) -> None:
        """Give a seat back (a join that could not be completed)."""
        s = seats_table.c
        with self._engine.begin() as conn:
            conn.execute(seats_table.delete().where(s.workshop == name, s.username == user))

    def seats(self, name: str) -> list[Seat]:
        s = seats_table.c
        query = sa.select(seats_table).where(s.workshop == name).order_by(s.seat)
        with self._engine.connect() as conn:
            return [Seat(r.workshop, r.username, r.seat, r.joined_at) for r in conn.execute(query)]

    def open_seats_of(self, user: str) -> list[Workshop]:
        """Workshops in which `user` holds a seat and whose window is open now."""
        s, w = seats_table.c, workshops_table.c
        now = self._clock()
        query = (
            sa.select(workshops_table)
            .join(seats_table, s.workshop == w.name)
            .where(
                s.username == user,
                w.ended_at.is_(None),
                w.awaiting_approval.is_(None),
                w.starts_at <= now,
                w.ends_at > now,
            )
        )
        with self._engine.connect() as conn:
            return [_workshop(row) for row in conn.execute(query)]

    def end(self, name: str) -> Workshop:
        """Idempotent: the first end stands."""
        w = workshops_table.c
        with self._engine.begin() as conn:
            conn.execute(
                workshops_table.update()
                .where(w.name == name, w.ended_at.is_(None))
                .values(ended_at=self._clock())
            )
        return self.get(name)

    # -- temporary accounts ------------------------------------------------------------------

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

    def _workshops(self, *filters) -> list[Workshop]:
        w = workshops_table.c
        query = sa.select(workshops_table).where(*filters).order_by(w.starts_at, w.name)
        with self._engine.connect() as conn:
            return [_workshop(row) for row in conn.execute(query)]
