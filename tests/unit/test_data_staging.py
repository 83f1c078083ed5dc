"""Staging datasets (naic.extensions.data): the pure parts exactly, and real copies with
Debian's rclone and coreutils' sha256sum between two folders."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from naic.extensions.data import (
    DataError,
    copy,
    destination,
    progress_of,
    progress_words,
    record,
    staged_path,
    verify,
)

AREAS = {"scratch": "/cluster/work/ola", "home": "/home/ola"}


def test_a_copy_goes_below_the_areas_datasets_folder_or_where_it_is_told() -> None:
    assert destination("scratch", "iris", AREAS) == Path("/cluster/work/ola/datasets/iris")
    assert destination("/tmp/mine", "iris", AREAS) == Path("/tmp/mine")
    with pytest.raises(DataError, match=r"--to project: this session has no storage area "
                                        r"project \(it has: home, scratch\)\."):  # fmt: skip
        destination("project", "iris", AREAS)


def test_rclones_stats_read_as_progress() -> None:
    line = json.dumps({"level": "notice", "msg": "…", "stats": {
        "bytes": 6291456, "totalBytes": 12582912, "transfers": 12, "totalTransfers": 24,
        "speed": 2097152.0}})  # fmt: skip
    p = progress_of(line)
    assert p == {"bytes": 6291456, "total_bytes": 12582912, "files": 12, "total_files": 24,
                 "speed": 2097152.0}  # fmt: skip
    assert progress_words(p) == "copied 6.3 of 12.6 MB (50 %), 12 of 24 files, 2.1 MB/s"
    assert progress_of('{"level": "error", "msg": "x"}') is None
    assert progress_of("not json") is None


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for part in ("train", "val"):
        (src / part).mkdir(parents=True)
        for i in range(5):
            (src / part / f"{i}.bin").write_bytes(bytes([i]) * (1000 + i))
    files = sorted(str(p.relative_to(src)) for p in src.rglob("*.bin"))
    sums = subprocess.run(["sha256sum", *files], cwd=src, capture_output=True, text=True)
    (src / "SHA256SUMS").write_text(sums.stdout)
    return src


def test_a_copy_matches_and_a_second_copies_only_what_is_missing(
    dataset: Path, tmp_path: Path
) -> None:
    target = tmp_path / "scratch" / "ds"
    seen = []
    first = copy(str(dataset), target, seen.append)
    assert first["files"] == 11  # ten files and the manifest
    assert (
        verify(dataset, target, "SHA256SUMS")
        == "all 10 files match the manifest SHA256SUMS (SHA-256)"
    )
    # An interrupted copy: some files missing, one cut short. Only those are copied again.
    (target / "train" / "0.bin").unlink()
    (target / "val" / "4.bin").write_bytes(b"cut")
    kept = (target / "val" / "1.bin").stat().st_ino
    again = copy(str(dataset), target)
    assert again["files"] == 2
    assert (target / "val" / "1.bin").stat().st_ino == kept  # not rewritten
    assert verify(dataset, target, "SHA256SUMS").startswith("all 10 files match")


def test_a_copy_that_differs_from_the_manifest_is_named(dataset: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy"
    copy(str(dataset), target)
    (target / "val" / "2.bin").write_bytes(b"x" * 1002)  # same size, other bytes
    with pytest.raises(DataError, match=r"differs from the manifest SHA256SUMS: val/2\.bin"):
        verify(dataset, target, "SHA256SUMS")
    assert verify(dataset, target, None).startswith("no manifest")


def test_a_failed_copy_says_why(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="the copy stopped"):
        copy(str(tmp_path / "not-there"), tmp_path / "t")


def test_copies_are_recorded_for_notebooks(tmp_path: Path) -> None:
    assert staged_path("iris", tmp_path) is None
    record(tmp_path, {"dataset": "iris", "path": "/a", "at": "t1"})
    record(tmp_path, {"dataset": "iris", "path": "/b", "at": "t2"})
    record(tmp_path, {"dataset": "iris", "path": "/a", "at": "t3"})  # again: the newest
    assert staged_path("iris", tmp_path) == Path("/a")
    assert len(json.loads((tmp_path / ".naic" / "staged.json").read_text())) == 2


def test_a_remotes_secret_lives_only_in_a_0600_file(tmp_path: Path, monkeypatch) -> None:
    from naic.extensions import remotes

    monkeypatch.delenv("RCLONE_CONFIG", raising=False)
    section = remotes.s3_section("http://127.0.0.1:9000", "AKIA1", "s3cr3t/with+chars")
    path = remotes.add("nird", section, home=tmp_path)
    assert path == tmp_path / ".config" / "rclone" / "rclone.conf"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert "secret_access_key = s3cr3t/with+chars" in path.read_text()
    assert remotes.listed(tmp_path) == [{"name": "nird", "type": "s3", "provider": "Other",
        "endpoint": "http://127.0.0.1:9000", "env_auth": "false"}]  # fmt: skip
    bad_ones = [
        (("ftp://x", "A", "s"), "--endpoint"),
        (("http://x", "a b", "s"), "--access-key-id"),
        (("http://x", "A", "two\nlines"), "secret"),
    ]
    for bad, field in bad_ones:
        with pytest.raises(remotes.RemoteError, match=field):
            remotes.s3_section(*bad)
    with pytest.raises(remotes.RemoteError, match="remote name"):
        remotes.add("Bad Name", section, home=tmp_path)
    assert remotes.remove("nird", tmp_path) and remotes.listed(tmp_path) == []


FACTS = {"backend": "slurm", "partition": "accel", "transfer_partition": "transfer",
         "slurm_account": "nn1234k"}  # fmt: skip


def test_a_staging_job_is_one_exact_sbatch_without_the_sessions_token(monkeypatch) -> None:
    from naic.extensions.data_jobs import JobError, job_argv

    monkeypatch.setenv("HOME", "/home/ola")
    target = Path("/scratch/ola/datasets/imagenet")
    argv = job_argv("/data/imagenet", target, name="imagenet", manifest="SHA256SUMS",
                    facts=FACTS, hours=1.5, python="/venv/bin/python")  # fmt: skip
    assert argv == [
        "sbatch", "--parsable", "--job-name=naic-stage", "--time=90", "--cpus-per-task=2",
        "--mem=2G", "--export=NONE", "--output=/home/ola/.naic-stage-%j.log",
        "--chdir=/home/ola", "--partition=transfer", "--account=nn1234k", "--wrap",
        "exec /venv/bin/python -m naic.extensions.data copy /data/imagenet "
        "/scratch/ola/datasets/imagenet --dataset imagenet --manifest SHA256SUMS",
    ]  # fmt: skip
    plain = {**FACTS, "transfer_partition": None}
    odd = job_argv("/data/it's", Path("/s/x y"), name="x", manifest=None, facts=plain,
                   hours=0.01, python="/p")  # fmt: skip
    assert odd[-1] == "exec /p -m naic.extensions.data copy '/data/it'\"'\"'s' '/s/x y' --dataset x"
    assert "--partition=accel" in odd and "--time=1" in odd
    with pytest.raises(JobError, match="needs a Slurm session"):
        job_argv("/a", Path("/b"), name="x", manifest=None, facts={"backend": "local"}, hours=1)
    with pytest.raises(JobError, match="--hours must be"):
        job_argv("/a", Path("/b"), name="x", manifest=None, facts=FACTS, hours=100)


def test_a_staging_job_in_words() -> None:
    from naic.extensions.data_jobs import job_words

    log = "Staging…\ncopied 1.0 of 12.6 MB (8 %), 2 of 24 files, 1.0 MB/s\n"
    assert job_words("PENDING", "") == ("queued", False)
    assert job_words("RUNNING", "") == ("started", False)
    assert job_words("RUNNING", log) == ("copied 1.0 of 12.6 MB (8 %), 2 of 24 files, 1.0 MB/s",
                                        False)  # fmt: skip
    done = log + "copied 24 new or changed files (12.6 MB)\nall 24 files match the manifest M\n"
    assert job_words("COMPLETED", done) == ("done: all 24 files match the manifest M", True)
    failed = log + "naic-data copy: the copy differs from the manifest M: val/1.bin\n"
    assert job_words("FAILED", failed) == (
        "failed: the copy differs from the manifest M: val/1.bin", True)  # fmt: skip
    assert job_words("TIMEOUT", log) == ("stopped at its time limit; run it again to resume", True)
    assert job_words("CANCELLED", log)[0] == "cancelled; run it again to resume"


def test_copies_on_node_local_disk_go_when_their_session_ends(tmp_path: Path) -> None:
    from naic.extensions.data import clean_node_local, on_node_local, staged
    from naic.extensions.session import StorageArea

    storage = (StorageArea("scratch", "Scratch", "/cluster/work/ola"),
               StorageArea("local", "Local", str(tmp_path / "local"), node_local=True))  # fmt: skip
    here = tmp_path / "local" / "datasets" / "iris"
    assert on_node_local(here, storage)
    assert not on_node_local(Path("/cluster/work/ola/datasets/iris"), storage)
    assert not on_node_local(tmp_path / "localx" / "iris", storage)
    here.mkdir(parents=True)
    (here / "iris.csv").write_text("x")
    record(tmp_path, {"dataset": "iris", "path": str(here), "job": "41", "node_local": True})
    record(tmp_path, {"dataset": "iris", "path": "/cluster/work/ola/datasets/iris", "job": "41",
                      "node_local": False})  # fmt: skip
    assert clean_node_local("40", tmp_path) == []  # another job's session: nothing
    assert clean_node_local("41", tmp_path) == [str(here)]
    assert not here.exists()
    assert [e["path"] for e in staged(tmp_path)] == ["/cluster/work/ola/datasets/iris"]
