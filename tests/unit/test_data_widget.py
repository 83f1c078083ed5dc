"""DataStaging, the widget: the datasets this user may read at this site, a real copy here
(rclone) with its bar and end, and a Slurm job followed to its end."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from naic.extensions.session import SessionFacts, StorageArea
from naic.extensions.sources.hubclient import HubError
from naic.extensions.widgets import DataStaging


class Hub:
    def __init__(self, source: Path):
        self.source = source

    def datasets(self):
        base = {"site": "saga", "site_title": "Saga", "title": "Iris", "readers": "everyone"}
        return {"datasets": [
            {**base, "name": "iris", "may_read": True},
            {**base, "name": "secret", "may_read": False, "title": "Secret"},
            {**base, "name": "far", "may_read": True, "site": "betzy", "title": "Far"},
        ]}  # fmt: skip

    def dataset(self, name):
        if name != "iris":
            raise HubError("no")
        return {"name": name, "title": "Iris", "path": str(self.source), "manifest": "SUMS"}


@pytest.fixture
def facts(tmp_path: Path) -> SessionFacts:
    scratch = tmp_path / "scratch"
    return SessionFacts(is_naic=True, site="saga", backend="slurm", storage=(
        StorageArea("home", "Home", str(tmp_path / "home")),
        StorageArea("scratch", "Scratch", str(scratch)),
        StorageArea("datasets", "Datasets", "/d", read_only=True),
    ))  # fmt: skip


def source(tmp_path: Path) -> Path:
    src = tmp_path / "iris"
    src.mkdir()
    (src / "iris.csv").write_text("a,b\n1,2\n")
    sums = subprocess.run(["sha256sum", "iris.csv"], cwd=src, capture_output=True, text=True)
    (src / "SUMS").write_text(sums.stdout)
    return src


def test_it_offers_what_the_user_may_read_here_and_copies_with_a_bar(
    tmp_path: Path, facts: SessionFacts, monkeypatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    widget = DataStaging(Hub(source(tmp_path)), facts)
    assert widget.datasets.options == (("Iris (iris)", "iris"),)
    assert widget.to.options == ("home", "scratch") and widget.to.value == "scratch"
    widget.copy_here().join(30)
    copied = tmp_path / "scratch" / "datasets" / "iris" / "iris.csv"
    assert copied.read_text() == "a,b\n1,2\n"
    assert "Done: <code>" in widget.status.value
    assert "all 1 files match the manifest SUMS (SHA-256)" in widget.status.value
    assert widget.bar.bar_now == widget.bar.bar_max == 1
    assert not widget.here.disabled


def test_a_job_is_followed_to_its_end(tmp_path: Path, facts: SessionFacts, monkeypatch) -> None:
    from naic.extensions import data_jobs

    said = iter([("queued", False), ("copied 6.3 of 12.6 MB (50 %), 12 of 24 files, 2.1 MB/s",
                  False), ("done: all 24 files match the manifest SUMS", True)])  # fmt: skip
    submitted = []
    monkeypatch.setattr(data_jobs, "submit", lambda argv: submitted.append(argv) or "4242")
    monkeypatch.setenv("NAIC_SESSION", '{"backend": "slurm", "partition": "normal"}')
    widget = DataStaging(Hub(source(tmp_path)), facts, follow_every_s=0.01,
                         follow=lambda job: next(said))  # fmt: skip
    assert widget.submit() == "4242"
    widget.thread.join(10)
    assert submitted[0][0] == "sbatch" and "--partition=normal" in submitted[0]
    assert widget.status.value == (
        "<span role='status'>Job 4242: done: all 24 files match the manifest SUMS</span>"
    )
    assert widget.bar.bar_now == 100


def test_outside_slurm_no_job_button(tmp_path: Path) -> None:
    local = SessionFacts(is_naic=True, site="saga", backend="local")
    widget = DataStaging(Hub(tmp_path), local)
    assert widget.as_job.layout.display == "none"
