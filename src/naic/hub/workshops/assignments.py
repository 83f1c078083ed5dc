"""Workshop assignments, "collect a copy": the staff release a folder (a zip), each seated
student fetches it into their session, edits it and submits their folder back (a zip), and
the staff collect every student's latest submission. The hub is the exchange: it knows who
is seated and who is staff, so no shared folder every node mounts, no student seeing
another's submission, and no gradebook database beside the hub's own (why not nbgrader:
its exchange is a world-writable directory in which students see each other's submission
names, with its own database and Jupyter extensions to install).

This module is pure rules (names, what an archive may hold) and the store (two tables in
the hub's database, naic.hub.workshops.tables; migration 0003). Who may do what is in
naic.hub.workshops.assignment_api.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

import sqlalchemy as sa

from naic.hub.catalogue import NAME_PATTERN
from naic.hub.usage.db import utcnow
from naic.hub.usage.migrate import upgrade
from naic.hub.workshops.tables import assignments_table, submissions_table

MB = 1_000_000
#: An archive as sent (zip bytes), and what it unpacks to.
MAX_PACKED = 20 * MB
MAX_UNPACKED = 100 * MB
#: Files and folders in one archive.
MAX_ENTRIES = 500
#: Folders a session keeps for itself, never part of an assignment.
LEFT_OUT = (".ipynb_checkpoints",)
NAME_RULE = "a short name: lower-case letters, digits, - and _, starting with a letter"


def name_refusal(name: object) -> str | None:
    """Pure: why `name` is not an assignment name (None: it is one), like workshop names."""
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        shown = f" {name!r:.50}" if isinstance(name, str) else ""
        return f"The assignment's name{shown} is not {NAME_RULE} (at most 40)."
    return None


def decode_archive(value: object) -> bytes:
    """Pure: the zip bytes from the API's base64 `archive`; ValueError with the sentence."""
    if not isinstance(value, str) or not value:
        raise ValueError("`archive` must be the zip file, in base64.")
    if len(value) > (MAX_PACKED + 2) // 3 * 4:
        raise ValueError(f"The archive is over {MAX_PACKED // MB} MB; send at most that.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("`archive` is not base64; send the zip file in base64.") from None


def encode_archive(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def member_refusal(info: zipfile.ZipInfo) -> str | None:
    """Pure: why one member may not be in an archive (None: it may)."""
    name = info.filename
    shown = f"{name!r:.120}"
    if not name or any(ord(c) < 32 for c in name):
        return f"The archive has a member named {shown}; names must be plain text."
    if "\\" in name:
        return f"The archive's member {shown} has a backslash; folders are separated by /."
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return f"The archive's member {shown} is an absolute path; names must be relative."
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return f"The archive's member {shown} goes up a folder (..); names must stay inside."
    if any(p in LEFT_OUT for p in parts):
        return f"The archive's member {shown} is a Jupyter checkpoint; leave those out."
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return f"The archive's member {shown} is a symbolic link; put the file itself in."
    if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return f"The archive's member {shown} is not a file or a folder."
    if info.flag_bits & 0x1:
        return f"The archive's member {shown} is encrypted; send it without a password."
    return None


def archive_refusal(data: bytes) -> str | None:
    """Pure: why `data` is not an archive the hub keeps (None: it is): a zip of at most
    MAX_PACKED bytes, MAX_ENTRIES members, MAX_UNPACKED bytes unpacked, every member a file
    or folder with a relative name inside the archive, none damaged. Reads every member
    (bounded by the sizes it declares) to check it unpacks."""
    if len(data) > MAX_PACKED:
        return f"The archive is {len(data) / MB:.1f} MB; at most {MAX_PACKED // MB} MB."
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError):
        return "The archive is not a zip file."
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ENTRIES:
            return (
                f"The archive has {len(members)} entries; at most {MAX_ENTRIES} files and folders."
            )
        if not any(not m.is_dir() for m in members):
            return "The archive is empty; it has no file."
        unpacked = sum(m.file_size for m in members)
        if unpacked > MAX_UNPACKED:
            return (
                f"The archive unpacks to {unpacked / MB:.1f} MB; at most {MAX_UNPACKED // MB} MB."
            )
        seen: set[str] = set()
        for member in members:
            refusal = member_refusal(member)
            if refusal:
                return refusal
            key = member.filename.rstrip("/")
            if key in seen:
                return f"The archive has {key!r:.120} twice."
            seen.add(key)
        try:
            bad = archive.testzip()
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, OSError, EOFError) as exc:
            return f"The archive is damaged ({str(exc)[:120]})."
        if bad is not None:
            return f"The archive is damaged: {bad!r:.120} does not unpack."
    return None


def files_of(data: bytes) -> list[str]:
    """Pure: the files in a (checked) archive, in its order."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [m.filename for m in archive.infolist() if not m.is_dir()]


@dataclass(frozen=True)
class Assignment:
    workshop: str
    name: str
    released_at: datetime
    released_by: str
    size: int


@dataclass(frozen=True)
class Submission:
    workshop: str
    assignment: str
    username: str
    submitted_at: datetime
    size: int
    archive: bytes | None = None  # None: listed without it


class AssignmentStore:
    """Released assignments and submissions, SQLAlchemy Core over the hub's database
    (SQLite or PostgreSQL). Archives are checked by the caller (`archive_refusal`)."""

    def __init__(self, url: str, *, clock: Callable[[], datetime] = utcnow):
        self._engine = sa.create_engine(url, future=True)
        self._clock = clock
        upgrade(self._engine)  # the naic_* tables, by the migrations

    def close(self) -> None:
        self._engine.dispose()

    def _put(self, table: sa.Table, key: dict, values: dict) -> bool:
        """Insert or replace the row with primary key `key`; whether it replaced one. Two
        writers at once: the database's key decides, the second replaces the first."""
        where = [table.c[k] == v for k, v in key.items()]
        for _ in range(3):
            with self._engine.begin() as conn:
                if conn.execute(table.update().where(*where).values(**values)).rowcount:
                    return True
            try:
                with self._engine.begin() as conn:
                    conn.execute(table.insert().values(**key, **values))
                return False
            except sa.exc.IntegrityError:
                continue  # someone inserted it just now: replace theirs
        raise RuntimeError(f"{table.name}: {key} could not be written")

    def release(self, workshop: str, name: str, archive: bytes, by: str) -> tuple[Assignment, bool]:
        """Release (or release again: replace) an assignment; (it, whether it replaced one).
        Submissions of an earlier release stay."""
        replaced = self._put(
            assignments_table,
            {"workshop": workshop, "name": name},
            {"released_at": self._clock(), "released_by": by, "archive": archive},
        )
        return self.assignment(workshop, name), replaced

    def assignments(self, workshop: str) -> list[Assignment]:
        """Oldest release first."""
        return self._assignments(assignments_table.c.workshop == workshop)

    def assignment(self, workshop: str, name: str) -> Assignment | None:
        a = assignments_table.c
        found = self._assignments(a.workshop == workshop, a.name == name)
        return found[0] if found else None

    def _assignments(self, *where) -> list[Assignment]:
        a = assignments_table.c
        query = (
            sa.select(a.workshop, a.name, a.released_at, a.released_by, sa.func.length(a.archive))
            .where(*where)
            .order_by(a.released_at, a.name)
        )
        with self._engine.connect() as conn:
            return [Assignment(*row) for row in conn.execute(query)]

    def archive(self, workshop: str, name: str) -> bytes | None:
        a = assignments_table.c
        query = sa.select(a.archive).where(a.workshop == workshop, a.name == name)
        with self._engine.connect() as conn:
            found = conn.execute(query).scalar()
        return None if found is None else bytes(found)

    def submit(self, workshop: str, assignment: str, user: str, archive: bytes) -> Submission:
        """A student's submission; a resubmission replaces their earlier one."""
        self._put(
            submissions_table,
            {"workshop": workshop, "assignment": assignment, "username": user},
            {"submitted_at": self._clock(), "archive": archive},
        )
        return self.submission(workshop, assignment, user)

    def submissions(
        self, workshop: str, assignment: str | None = None, *, archives: bool = False
    ) -> list[Submission]:
        """Every student's latest submission (of one assignment, or of all), by user name;
        with their archives only when asked."""
        s = submissions_table.c
        where = [s.workshop == workshop]
        if assignment is not None:
            where.append(s.assignment == assignment)
        return self._submissions(where, archives)

    def submission(self, workshop: str, assignment: str, user: str) -> Submission | None:
        """One student's submission, with its archive."""
        s = submissions_table.c
        where = [s.workshop == workshop, s.assignment == assignment, s.username == user]
        found = self._submissions(where, True)
        return found[0] if found else None

    def _submissions(self, where: list, archives: bool) -> list[Submission]:
        s = submissions_table.c
        columns = [s.workshop, s.assignment, s.username, s.submitted_at, sa.func.length(s.archive)]
        query = sa.select(*columns, *([s.archive] if archives else []))
        query = query.where(*where).order_by(s.assignment, s.username)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [Submission(*row[:5], archive=bytes(row[5]) if archives else None) for row in rows]
