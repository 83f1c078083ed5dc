"""Material updates: what a session may report of its material, what the dashboard says of
it, and a session's reporter pulling an update from a real git repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from naic.extensions.launch import fetch_material
from naic.extensions.reporter import ActivityReporter, material_version
from naic.hub.workshops.material import parse_material, version_words


def test_a_sessions_report_of_its_material_is_checked() -> None:
    assert parse_material(None) is None
    assert parse_material({"update": 2, "version": "3f2a9c1"}) == {
        "update": 2, "version": "3f2a9c1", "error": None, "at": None,
    }  # fmt: skip
    for bad in (
        [],
        {"update": -1},
        {"update": True},
        {"update": 1, "version": "main; rm -rf"},
        {"update": 1, "error": "x" * 301},
        {"update": 1, "extra": 1},
    ):
        with pytest.raises(ValueError, match="`material` must be"):
            parse_material(bad)


UPDATE = {"number": 2, "at": "2026-12-04T10:00:00Z", "by": "ingrid", "version": "bbbbbbb"}


def test_the_dashboard_says_who_has_which_version() -> None:
    assert version_words(UPDATE, {}) == "not reported yet"
    assert version_words(UPDATE, {"update": 2, "version": "bbbbbbb"}) == "bbbbbbb, up to date"
    assert (
        version_words(UPDATE, {"update": 1, "version": "aaaaaaa"})
        == "aaaaaaa, update 2 not pulled yet"
    )
    assert (
        version_words(UPDATE, {"update": 2, "version": "aaaaaaa"})
        == "aaaaaaa (the course is at bbbbbbb)"
    )
    assert (
        version_words(UPDATE, {"update": 2, "version": "aaaaaaa", "error": "no network"})
        == "update 2 failed: no network"
    )
    none_yet = {"number": 0, "at": None, "by": None, "version": None}
    assert version_words(none_yet, {"update": 0, "version": "aaaaaaa"}) == "aaaaaaa"


class Hub:
    def __init__(self, update: int):
        self.update, self.reports = update, []

    def activity(self, report=None):
        self.reports.append(report)
        return {"notices": [], "report_every_s": 20, "material_update": self.update}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@x", *args],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def test_a_session_pulls_an_update_keeping_the_students_edit(tmp_path: Path) -> None:
    course, mine = tmp_path / "course", tmp_path / "home" / "ws"
    course.mkdir()
    git(course, "init", "-q", "-b", "main")
    (course / "a.txt").write_text("course 1\n")
    (course / "b.txt").write_text("course 1\n")
    git(course, "add", ".")
    git(course, "commit", "-q", "-m", "one")
    fetch_material(str(course), mine)
    hub = Hub(update=0)
    reporter = ActivityReporter(hub, None, workshop_dir=mine, material=str(course))
    reporter.report_once()
    assert hub.reports[-1]["material"] == {"update": 0, "version": material_version(mine)}
    assert len(hub.reports) == 1  # nothing asked, nothing pulled

    (mine / "a.txt").write_text("the student's\n")
    (course / "a.txt").write_text("course 2\n")
    (course / "b.txt").write_text("course 2\n")
    (course / "c.txt").write_text("new\n")
    git(course, "commit", "-qam", "two")
    git(course, "add", ".")
    git(course, "commit", "-qm", "three")
    hub.update = 1
    reporter.report_once()
    said = hub.reports[-1]["material"]  # told at once, in a second report
    assert said["update"] == 1 and said["error"] is None
    assert said["version"] == git(course, "rev-parse", "--short=7", "HEAD")
    assert (mine / "a.txt").read_text() == "the student's\n"
    assert (mine / "b.txt").read_text() == "course 2\n"
    assert (mine / "c.txt").read_text() == "new\n"

    course.rename(tmp_path / "moved")  # the course went away: said, not retried
    hub.update = 2
    reporter.report_once()
    assert hub.reports[-1]["material"]["update"] == 2
    assert hub.reports[-1]["material"]["error"]
