"""A workshop's shared course folder, pure and on the file system: the spec's rules, the
request and NAIC_SESSION that carry it, the launcher's link into ~/<workshop>, and what
`naic workshop check` says of the folder's mode."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from naic.extensions import launch
from naic.hub.workshops import checks
from naic.hub.workshops.base import first_error, preset_of
from naic.hub.workshops.rules import WorkshopSpec, shared_ok
from naic.hub.workshops.tables import Workshop
from naic.spawners.request import RequestError, UserFacts, parse_request
from naic.spawners.session_env import VARIABLE, session_env
from tests.unit.examples import DEMO

START = datetime(2027, 1, 20, 9, 0, tzinfo=UTC)
END = datetime(2027, 1, 20, 16, 0, tzinfo=UTC)
DATA = "/cluster/projects/nn1234k/ml-intro-data"


def spec(**kw) -> WorkshopSpec:
    base = dict(
        name="ml-intro", seats=40, start=START, end=END, resource="saga:a100", gpus=1, hours=3,
        material="https://github.com/naic/ml-intro.git", project="nn1234k",
    )  # fmt: skip
    return WorkshopSpec.model_validate({**base, **kw})


def workshop(shared: str | None = DATA) -> Workshop:
    return Workshop(
        name="ml-intro", title="ML intro", instructor="ingrid", seats=40, starts_at=START,
        ends_at=END, site="saga", resource="a100", gpus=1, hours=3, project="nn1234k",
        material="https://github.com/naic/ml-intro.git", code_digest="0" * 64,
        reservation="naic-ws-ml-intro", created_at=START, ended_at=None, shared=shared,
    )  # fmt: skip


# --- the spec -----------------------------------------------------------------------------


def test_a_shared_folder_is_optional_and_kept() -> None:
    assert spec().shared is None
    assert spec(shared=DATA).shared == DATA
    assert (
        spec(shared="/datasets/course_2027/v1.2-data").shared == "/datasets/course_2027/v1.2-data"
    )


SENTENCE = (
    "`shared` must be an absolute folder path on the workshop's site, at most 500 "
    "characters, without `..`, spaces or shell characters."
)


@pytest.mark.parametrize(
    "bad",
    [
        "data/course",  # relative
        "~/course",
        "/",
        "/cluster/projects/../etc",
        "/cluster/..",
        "/cluster/my data",
        "/cluster/data;rm -rf ~",
        "/cluster/$HOME",
        "/cluster/`id`",
        "/cluster/a|b",
        "/cluster/a&b",
        "/cluster/a'b",
        '/cluster/a"b',
        "/cluster/a*",
        "/cluster/a\nb",
        "/cluster/a\tb",
        "/cluster/a\x00b",
        "/cluster/a\x7fb",
        "/" + "a" * 500,
    ],
)
def test_a_bad_shared_folder_is_refused_with_a_sentence_naming_the_field(bad: str) -> None:
    assert not shared_ok(bad)
    with pytest.raises(ValidationError) as err:
        spec(shared=bad)
    assert first_error(err.value) == SENTENCE


def test_dots_inside_a_name_are_no_parent() -> None:
    assert shared_ok("/cluster/course..v2/data.d")
    assert shared_ok("/" + "a" * 499)


# --- the request and the session's facts --------------------------------------------------


def test_the_seat_gives_the_shared_folder_to_the_session_and_its_facts() -> None:
    preset = preset_of(workshop(), 3, "naic-ws-ml-intro")
    assert preset.shared == DATA
    student = UserFacts(name="ola", identities=frozenset({"ola"}), workshops=(preset,))
    req = parse_request({"workshop": "ml-intro"}, DEMO, student)
    assert req.shared == DATA
    env = session_env(req, DEMO, "ola", started_at=START)
    facts = json.loads(env[VARIABLE])
    assert facts["workshop"] == {
        "name": "ml-intro",
        "material": "https://github.com/naic/ml-intro.git",
        "shared": DATA,
    }


def test_a_workshop_without_a_shared_folder_says_so_with_an_empty_string() -> None:
    preset = preset_of(workshop(None), 3, None)
    student = UserFacts(name="ola", identities=frozenset({"ola"}), workshops=(preset,))
    req = parse_request({"workshop": "ml-intro"}, DEMO, student)
    assert req.shared is None
    facts = json.loads(session_env(req, DEMO, "ola", started_at=START)[VARIABLE])
    assert facts["workshop"]["shared"] == ""


@pytest.mark.parametrize(
    "raw",
    [
        {"workshop": "ml-intro", "shared": "/etc"},
        {"site": "saga", "resource": "a100", "shared": "/etc"},
    ],
)
def test_a_user_cannot_choose_the_shared_folder(raw: dict) -> None:
    preset = preset_of(workshop(), 3, None)
    student = UserFacts(name="ola", identities=frozenset({"ola"}), workshops=(preset,))
    with pytest.raises(RequestError):
        parse_request(raw, DEMO, student)


# --- the launcher -------------------------------------------------------------------------


def environ(shared: str, name: str = "ml-intro") -> dict[str, str]:
    return {
        "NAIC_SESSION": json.dumps({"workshop": {"name": name, "material": "", "shared": shared}})
    }


def test_the_launcher_reads_the_shared_folder_from_the_session() -> None:
    assert launch.workshop_shared(environ(DATA)) == ("ml-intro", DATA)
    assert launch.workshop_shared(environ("")) is None
    assert launch.workshop_shared({"NAIC_SESSION": "{not json"}) is None
    assert launch.workshop_shared({}) is None


def test_the_shared_folder_is_linked_into_the_workshop_folder(tmp_path: Path) -> None:
    shared = tmp_path / "course-data"
    shared.mkdir()
    (shared / "data.csv").write_text("a,b\n1,2\n")
    home = tmp_path / "home"
    said = launch.link_shared(str(shared), home / "ml-intro")
    link = home / "ml-intro" / "shared"
    assert link.is_symlink() and Path(link.readlink()) == shared
    assert (link / "data.csv").read_text() == "a,b\n1,2\n"
    assert said == f"{link} links the course's shared folder {shared}"
    # A restart finds its own link and leaves it.
    assert launch.link_shared(str(shared), home / "ml-intro") == said
    assert link.is_symlink()


@pytest.mark.parametrize("kind", ["folder", "file", "other link"])
def test_a_students_own_shared_is_never_replaced(tmp_path: Path, kind: str) -> None:
    shared = tmp_path / "course-data"
    shared.mkdir()
    folder = tmp_path / "home" / "ml-intro"
    folder.mkdir(parents=True)
    mine = folder / "shared"
    if kind == "folder":
        mine.mkdir()
        (mine / "notes.txt").write_text("mine")
    elif kind == "file":
        mine.write_text("mine")
    else:
        mine.symlink_to(tmp_path)
    said = launch.link_shared(str(shared), folder)
    assert said == (
        f"the course's shared folder {shared} is not linked: you already have {mine} "
        "(rename it to get the link at the next start)"
    )
    if kind == "folder":
        assert not mine.is_symlink() and (mine / "notes.txt").read_text() == "mine"
    elif kind == "file":
        assert not mine.is_symlink() and mine.read_text() == "mine"
    else:
        assert Path(mine.readlink()) == tmp_path


def test_a_shared_folder_missing_on_the_node_is_said_and_not_linked(tmp_path: Path) -> None:
    missing = tmp_path / "not-mounted"
    folder = tmp_path / "home" / "ml-intro"
    said = launch.link_shared(str(missing), folder)
    assert (
        said
        == f"the course's shared folder {missing} is not there on this node; ask the instructor"
    )
    assert not (folder / "shared").is_symlink()


def test_the_launcher_links_after_the_material_and_starts_the_server_anyway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    shared = tmp_path / "course-data"
    shared.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    started = []
    monkeypatch.setattr(launch, "run_server", lambda command, extra=(): started.append(command))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("NAIC_KERNELS", raising=False)
    monkeypatch.setenv(VARIABLE, environ(str(shared))["NAIC_SESSION"])
    launch.main(["--", "true"])
    assert (home / "ml-intro" / "shared").is_symlink()
    assert f"links the course's shared folder {shared}" in capsys.readouterr().err
    # Not there on the node: said on stderr, and the server starts all the same.
    monkeypatch.setenv(VARIABLE, environ(str(tmp_path / "gone"), "other")["NAIC_SESSION"])
    launch.main(["--", "true"])
    assert "is not there on this node" in capsys.readouterr().err
    assert started == [["true"], ["true"]]


# --- the check ----------------------------------------------------------------------------


def test_the_check_passes_a_folder_no_student_can_write() -> None:
    assert checks.shared_verdict(DATA, "755 ingrid directory\n") == (
        True, f"{DATA} is there, read-only for students (mode 755, owner ingrid)",
    )  # fmt: skip
    assert checks.shared_verdict(DATA, "2750 root directory")[0]


@pytest.mark.parametrize("mode", ["777", "775", "757", "1777", "2770"])
def test_the_check_fails_a_folder_group_or_others_can_write(mode: str) -> None:
    ok, why = checks.shared_verdict(DATA, f"{mode} ingrid directory")
    assert not ok
    assert why == (
        f"{DATA} (mode {mode}, owner ingrid) is writable by group or others: students could "
        "change it for everyone; make it read-only (e.g. chmod go-w)"
    )


def test_the_check_fails_what_is_no_folder_or_no_answer() -> None:
    assert checks.shared_verdict(DATA, "644 ingrid regular file") == (
        False, f"{DATA} is a regular file, not a folder",
    )  # fmt: skip
    assert not checks.shared_verdict(DATA, "")[0]
