"""Workshop assignments' rules and store (naic.hub.workshops.assignments), and the archives
the session's `naic-assignment` packs and unpacks (naic.extensions.assignments): exact
sentences for every archive the hub refuses, release and submission kept as the database
has them, a backup that keeps the zips."""

from __future__ import annotations

import base64
import io
import stat
import zipfile
from argparse import Namespace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jupyterhub.scopes import Scope, parse_scopes

from naic.extensions import assignments as client
from naic.hub.usage import backup
from naic.hub.workshops.assignment_api import holds_for
from naic.hub.workshops.assignments import (
    AssignmentStore,
    archive_refusal,
    decode_archive,
    files_of,
    name_refusal,
)

T0 = datetime(2027, 1, 20, 9, 0, tzinfo=UTC)


def zipped(*members: tuple[str | zipfile.ZipInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    return out.getvalue()


def link(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    info.create_system = 3
    return (info, target.encode())


GOOD = zipped(("a1.ipynb", b"{}"), ("data/x.csv", b"1,2\n"))


# --- names and archives -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a1", "lab-2", "x", "homework_3", "a" * 40])
def test_assignment_names_like_workshop_names(name) -> None:
    assert name_refusal(name) is None


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("A1", "The assignment's name 'A1' is not a short name"),
        ("1a", "The assignment's name '1a' is not"),
        ("../x", "The assignment's name '../x' is not"),
        ("a" * 41, "is not a short name"),
        ("", "The assignment's name '' is not"),
        (None, "The assignment's name is not a short name"),
        (7, "The assignment's name is not a short name"),
    ],
)
def test_a_bad_assignment_name_is_said(name, says) -> None:
    assert says in name_refusal(name)
    assert name_refusal(name).endswith(
        "lower-case letters, digits, - and _, starting with a letter (at most 40)."
    )


def test_a_good_archive_passes_and_lists_its_files() -> None:
    assert archive_refusal(GOOD) is None
    folder = zipped(("a/", b""), ("a/b.txt", b"x"))
    assert archive_refusal(folder) is None
    assert files_of(folder) == ["a/b.txt"]


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize(
    ("data", "sentence"),
    [
        (b"PK not really", "The archive is not a zip file."),
        (b"", "The archive is not a zip file."),
        (zipped(("../x", b"evil")), "The archive's member '../x' goes up a folder (..); names "
                                    "must stay inside."),
        (zipped(("a/../../x", b"")), "The archive's member 'a/../../x' goes up a folder (..); "
                                     "names must stay inside."),
        (zipped(("/etc/passwd", b"")), "The archive's member '/etc/passwd' is an absolute "
                                       "path; names must be relative."),
        (zipped(("C:/x", b"")), "The archive's member 'C:/x' is an absolute path; names must "
                                "be relative."),
        (zipped(("a\\..\\x", b"")), "The archive's member 'a\\\\..\\\\x' has a backslash; "
                                    "folders are separated by /."),
        (zipped(link("l", "/etc/shadow")), "The archive's member 'l' is a symbolic link; put "
                                           "the file itself in."),
        (zipped(("a.ipynb", b"{}"), (".ipynb_checkpoints/a-checkpoint.ipynb", b"{}")),
         "The archive's member '.ipynb_checkpoints/a-checkpoint.ipynb' is a Jupyter "
         "checkpoint; leave those out."),
        (zipped(("a\x01", b"")), "The archive has a member named 'a\\x01'; names must be "
                                 "plain text."),
        (zipped(("a", b"1"), ("a", b"2")), "The archive has 'a' twice."),
        (zipped(("d/", b"")), "The archive is empty; it has no file."),
        (zipped(*((f"f{i}", b"") for i in range(501))),
         "The archive has 501 entries; at most 500 files and folders."),
    ],
)  # fmt: skip
def test_a_refused_archive_is_said_exactly(data, sentence) -> None:
    assert archive_refusal(data) == sentence


def test_too_large_packed_or_unpacked() -> None:
    assert archive_refusal(b"\0" * 20_000_001) == "The archive is 20.0 MB; at most 20 MB."
    bomb = zipped(("zeros", b"\0" * 100_000_001))
    assert len(bomb) < 1_000_000
    assert archive_refusal(bomb) == "The archive unpacks to 100.0 MB; at most 100 MB."


def test_a_damaged_or_encrypted_member_is_refused() -> None:
    stored = io.BytesIO()
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as z:
        z.writestr("a.txt", b"hello hello hello")
    data = stored.getvalue().replace(b"hello hello", b"jello hello", 1)  # its CRC no longer fits
    assert archive_refusal(data) == "The archive is damaged: 'a.txt' does not unpack."
    packed = bytearray(zipped(("a.txt", b"hello hello hello")))
    at = packed.index(b"a.txt") + 5  # the first of its compressed bytes
    packed[at : at + 3] = b"\xff\xff\xff"
    assert archive_refusal(bytes(packed)) == (
        "The archive is damaged (Error -3 while decompressing data: invalid block type)."
    )
    secret = bytearray(zipped(("s.txt", b"x")))
    for header, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # "encrypted" bit
        secret[secret.index(header) + flags_at] |= 0x1
    assert archive_refusal(bytes(secret)) == (
        "The archive's member 's.txt' is encrypted; send it without a password."
    )


@pytest.mark.parametrize(
    ("value", "sentence"),
    [
        (None, "`archive` must be the zip file, in base64."),
        ("", "`archive` must be the zip file, in base64."),
        (["x"], "`archive` must be the zip file, in base64."),
        ("not base64!", "`archive` is not base64; send the zip file in base64."),
        ("A" * 26_666_672, "The archive is over 20 MB; send at most that."),
    ],
)
def test_the_archive_field_is_base64(value, sentence) -> None:
    with pytest.raises(ValueError) as err:
        decode_archive(value)
    assert str(err.value) == sentence


def test_the_archive_field_decodes() -> None:
    assert decode_archive(base64.b64encode(GOOD).decode()) == GOOD


@pytest.mark.parametrize(
    ("scopes", "holds"),
    [
        (["custom:naic:assignments!user=ingrid"], True),  # her own tokens
        (["custom:naic:assignments!server=ingrid/"], True),  # her default session's token
        (["custom:naic:assignments!server=ingrid/asg-course"], True),
        (["custom:naic:assignments"], True),
        (["custom:naic:assignments!user=ola"], False),  # another user's
        (["custom:naic:assignments!server=ola/ingrid"], False),
        (["custom:naic:assignments!group=ingrid"], False),
        (["custom:naic:batch!user=ingrid", "read:users"], False),
        ([], False),
    ],
)
def test_which_tokens_act_on_assignments_for_their_owner(scopes, holds) -> None:
    assert holds_for(parse_scopes(scopes), "ingrid") is holds
    assert holds_for({"custom:naic:assignments": Scope.ALL}, "x") is True


# --- the store ----------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path):
    now = [T0]
    s = AssignmentStore(f"sqlite:///{tmp_path / 'hub.sqlite'}", clock=lambda: now[0])
    s.now = now
    yield s
    s.close()


def test_release_list_and_release_again_keeping_submissions(store) -> None:
    a, replaced = store.release("ml", "a1", GOOD, "ingrid")
    assert (a.workshop, a.name, a.released_at, a.released_by, a.size) == (
        "ml",
        "a1",
        T0,
        "ingrid",
        len(GOOD),
    )
    assert replaced is False
    store.submit("ml", "a1", "ola", b"ola's zip")
    store.now[0] = T0 + timedelta(hours=1)
    newer = zipped(("a1.ipynb", b"{} "))
    again, replaced = store.release("ml", "a1", newer, "kari")
    assert replaced is True and again.released_at == store.now[0] and again.released_by == "kari"
    assert store.archive("ml", "a1") == newer
    assert [x.name for x in store.assignments("ml")] == ["a1"]
    assert store.assignments("other") == [] and store.archive("ml", "a2") is None
    assert [s.username for s in store.submissions("ml", "a1")] == ["ola"]


def test_submissions_are_each_students_latest(store) -> None:
    store.release("ml", "a1", GOOD, "ingrid")
    store.release("ml", "a2", GOOD, "ingrid")
    store.submit("ml", "a1", "ola", b"first")
    store.now[0] = T0 + timedelta(minutes=5)
    latest = store.submit("ml", "a1", "ola", b"second")
    assert (latest.username, latest.submitted_at, latest.archive) == (
        "ola",
        store.now[0],
        b"second",
    )
    store.submit("ml", "a1", "kari", b"kari's")
    store.submit("ml", "a2", "kari", b"a2")
    listed = store.submissions("ml", "a1")
    assert [(s.username, s.size, s.archive) for s in listed] == [
        ("kari", 6, None),
        ("ola", 6, None),
    ]
    full = store.submissions("ml", "a1", archives=True)
    assert [s.archive for s in full] == [b"kari's", b"second"]
    assert len(store.submissions("ml")) == 3
    assert store.submission("ml", "a1", "per") is None
    assert store.submission("ml", "a2", "kari").archive == b"a2"


def test_a_backup_keeps_the_zips(store, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    store.release("ml", "a1", GOOD, "ingrid")
    store.submit("ml", "a1", "ola", b"\x00\xffzip")
    path = backup.backup(url, tmp_path / "backups")
    target = f"sqlite:///{tmp_path / 'other.sqlite'}"
    backup.restore(target, path)
    other = AssignmentStore(target)
    try:
        assert other.archive("ml", "a1") == GOOD
        assert other.submission("ml", "a1", "ola").archive == b"\x00\xffzip"
    finally:
        other.close()


# --- naic-assignment: packing, unpacking, the commands --------------------------------------


def test_pack_leaves_out_checkpoints_caches_and_links(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "a1.ipynb").write_text("{}")
    (tmp_path / "data" / "x.csv").write_text("1\n")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "a1-checkpoint.ipynb").write_text("{}")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "m.pyc").write_bytes(b"")
    (tmp_path / "secret").symlink_to("/etc/passwd")
    data, files, skipped = client.pack(tmp_path)
    assert files == ["a1.ipynb", "data/x.csv"] and skipped == ["secret (a link)"]
    assert archive_refusal(data) is None and files_of(data) == files


def test_pack_refuses_an_empty_or_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(client.AssignmentError, match=r"has no files to send\.$"):
        client.pack(tmp_path)
    with pytest.raises(client.AssignmentError, match=r"^There is no folder .*nope\.$"):
        client.pack(tmp_path / "nope")


def test_unpack_keeps_the_students_files_and_stays_inside(tmp_path: Path) -> None:
    (tmp_path / "a1.ipynb").write_text("mine")
    written, kept = client.unpack(GOOD, tmp_path)
    assert (written, kept) == (["data/x.csv"], ["a1.ipynb"])
    assert (tmp_path / "a1.ipynb").read_text() == "mine"
    assert client.unpack(GOOD, tmp_path, overwrite=True) == (["a1.ipynb", "data/x.csv"], [])
    assert (tmp_path / "a1.ipynb").read_text() == "{}"
    with pytest.raises(client.AssignmentError, match=r"'\.\./x' is outside it"):
        client.unpack(zipped(("../x", b"")), tmp_path / "in")
    assert not (tmp_path / "x").exists()


class FakeHub:
    def __init__(self) -> None:
        self.sent: list[tuple] = []

    def assignment(self, workshop, name):
        return {"name": name, "released_at": "2027-01-20T09:00:00+00:00",
                "archive": base64.b64encode(GOOD).decode()}  # fmt: skip

    def submit_assignment(self, workshop, name, archive):
        self.sent.append((workshop, name, base64.b64decode(archive)))
        return {"submitted_at": "2027-01-20T10:30:00+00:00"}

    def assignments(self, workshop):
        return {"assignments": [{"name": "a1", "released_at": "2027-01-20T09:00:00+00:00",
                                 "submitted_at": None}]}  # fmt: skip

    def submissions(self, workshop, name):
        return {"submissions": [{"user": "ola", "submitted_at": "2027-01-20T10:30:00+00:00",
                                 "archive": base64.b64encode(GOOD).decode()}]}  # fmt: skip


SESSION = {"NAIC_SESSION": '{"workshop": {"name": "ml", "material": ""}}'}


def test_fetch_edit_submit_and_collect(tmp_path: Path) -> None:
    hub = FakeHub()
    fetch = Namespace(action="fetch", name="a1", workshop=None)
    out = client.run(fetch, hub, SESSION, tmp_path)
    folder = tmp_path / "ml" / "assignments" / "a1"
    assert out == f"Fetched a1 into {folder}: 2 new files (a1.ipynb, data/x.csv)"
    (folder / "a1.ipynb").write_text("my answer")
    again = client.run(fetch, hub, SESSION, tmp_path)
    assert again.endswith(": 0 new files; kept 2 you already have (a1.ipynb, data/x.csv)")
    assert (folder / "a1.ipynb").read_text() == "my answer"
    out = client.run(Namespace(action="submit", name="a1", workshop=None), hub, SESSION, tmp_path)
    assert out.startswith("Submitted a1 at 2027-01-20 10:30 UTC: 2 files, ")
    assert out.splitlines()[1:] == ["  a1.ipynb", "  data/x.csv"]
    ((ws, name, data),) = hub.sent
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert (ws, name, z.read("a1.ipynb")) == ("ml", "a1", b"my answer")
    listed = client.run(Namespace(action="list", workshop=None), hub, SESSION, tmp_path)
    assert listed == "a1                   released 2027-01-20 09:00 UTC, not submitted"
    collect = Namespace(action="collect", workshop="ml", name="a1", to=None, overwrite=False)
    out = client.run(collect, hub, {}, tmp_path).splitlines()
    dest = tmp_path / "ml-submissions" / "a1"
    assert out == [
        f"ola (submitted 2027-01-20 10:30 UTC): 2 files into {dest / 'ola'}",
        f"Collected 1 submissions of a1 into {dest}",
    ]
    assert (dest / "ola" / "data" / "x.csv").read_text() == "1,2\n"


def test_outside_a_workshop_session_or_before_fetching_it_says_so(tmp_path: Path) -> None:
    hub = FakeHub()
    with pytest.raises(client.AssignmentError, match=r"^This is not a workshop session; name"):
        client.run(Namespace(action="list", workshop=None), hub, {}, tmp_path)
    with pytest.raises(client.AssignmentError, match=r"fetch it first: naic-assignment fetch a1$"):
        client.run(Namespace(action="submit", name="a1", workshop=None), hub, SESSION, tmp_path)
