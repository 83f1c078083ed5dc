"""The datasets catalogue on the real hub, and staging in a real Slurm session: a dataset is
listed for a member of its project and refused (403, the sentence) to someone else; staged
to scratch from inside alice's session (`naic-data stage`, a kernel's shell, the session's own
token) it has the source's checksums; a staging stopped half-way resumes without copying
again what it had copied whole."""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.hub_process import Hub, log_in
from tests.integration.helpers import client, user_token, wait_ready
from tests.kernel import run_cell
from tests.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

SOURCE = Path("/var/tmp/naic-datasets/imagenet-mini")
SCRATCH = Path("/var/tmp/naic-scratch/alice")
SESSION = {"site": "testcluster", "resource": "cpu", "hours": 0.5, "project": "demo"}


def sums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def in_session(hub: Hub, token: str, shell: str, timeout_s: float = 180) -> str:
    code = (
        "import subprocess, os\n"
        f"done = subprocess.run({shell!r}, shell=True, capture_output=True, text=True)\n"
        "print(done.stdout, done.stderr, 'exit', done.returncode)\n"
    )
    return asyncio.run(run_cell(f"{hub.url}user/alice/", token, code, timeout_s))


def in_session_code(hub: Hub, token: str, code: str) -> str:
    return asyncio.run(run_cell(f"{hub.url}user/alice/", token, code, 240))


WIDGET = """
from naic.extensions.widgets import DataStaging
seen = []
w = DataStaging(follow_every_s=1)
say = w._say
w._say = lambda html, error=False: (seen.append(html), say(html, error=error))[1]
w.datasets.value, w.to.value = "imagenet-mini", "scratch"
job = w.submit()
w.thread.join(180)
print("JOB", job)
print("SEEN", " | ".join(seen))
print("BAR", w.bar.bar_now, "of", w.bar.bar_max)
"""


def test_listed_for_members_refused_to_others(slurm_hub: Hub) -> None:
    alice = client(slurm_hub, "alice").get("/hub/api/naic/datasets").json()["datasets"]
    mine = {d["name"]: d for d in alice}
    assert mine["imagenet-mini"]["may_read"] is True
    assert mine["imagenet-mini"]["path"] == str(SOURCE)
    assert mine["imagenet-mini"]["readers"] == "members of project demo"
    carol = client(slurm_hub, "carol")
    theirs = {d["name"]: d for d in carol.get("/hub/api/naic/datasets").json()["datasets"]}
    assert theirs["imagenet-mini"]["may_read"] is False and "path" not in theirs["imagenet-mini"]
    assert theirs["iris"]["may_read"] is True  # everyone's
    refused = carol.get("/hub/api/naic/datasets/imagenet-mini")
    assert refused.status_code == 403
    assert refused.json()["message"].startswith(
        "ImageNet mini (a stand-in: 24 files of 512 kB) (imagenet-mini) is for members of "
        "project demo, and you are not among them."
    )
    assert carol.get("/hub/api/naic/datasets/nope").status_code == 404
    web, _ = log_in(slurm_hub, "carol", slurm_hub.password)
    page = web.get("/hub/naic/datasets")
    row = re.search(r'<tr data-dataset="imagenet-mini".*?</tr>', page.text, re.S).group(0)
    assert "not yours to read" in row and str(SOURCE) not in row
    assert "naic/datasets" in web.get("/hub/home").text  # the home page links it


def test_staged_to_scratch_identical_and_an_interrupted_staging_resumes(slurm_hub: Hub) -> None:
    for old in ("datasets", "half"):
        shutil.rmtree(SCRATCH / old, ignore_errors=True)
    with slurm_hub.api() as api:
        api.post("/users/alice")
        resp = api.post("/users/alice/server", json={"user_options": SESSION})
        assert resp.status_code in (201, 202), resp.text
        wait_ready(api, "alice", 300)
    token = user_token(slurm_hub, "alice")
    try:
        out = in_session(slurm_hub, token, "naic-data stage imagenet-mini --to scratch")
        assert "exit 0" in out, out
        target = SCRATCH / "datasets" / "imagenet-mini"
        assert "all 24 files match the manifest SHA256SUMS (SHA-256)" in out, out
        assert f"{target}\n" in out
        assert sums(target) == sums(SOURCE)
        assert target.stat().st_uid == Path("/home/alice").stat().st_uid  # as alice

        # Stopped after 3 s at 2 MiB/s (SIGTERM, as Slurm's time limit sends), then again.
        half = SCRATCH / "half"
        cut = in_session(
            slurm_hub, token,
            f"timeout -s TERM 3 naic-data stage imagenet-mini --to {half} --bwlimit 2M",
        )  # fmt: skip
        assert "stopped; run the same command again to resume" in cut, cut
        assert 0 < len(list(half.rglob("*.bin"))) < 24
        again = in_session(slurm_hub, token, f"naic-data stage imagenet-mini --to {half}")
        copied = int(re.search(r"copied (\d+) new or changed files", again).group(1))
        assert 0 < copied < 25, again  # not the 24 files and the manifest again
        assert "all 24 files match the manifest" in again
        assert sums(half) == sums(SOURCE)
        listed = in_session(slurm_hub, token, "naic-data staged")
        assert str(target) in listed and str(half) in listed

        # A big copy as a Slurm job of its own, followed by the CLI and by the widget.
        by_job = SCRATCH / "by-job"
        shutil.rmtree(by_job, ignore_errors=True)
        command = f"naic-data stage imagenet-mini --to {by_job} --job --hours 0.2"
        sent = in_session(slurm_hub, token, command)
        job = re.search(r"Submitted staging job (\d+)", sent).group(1)
        followed = in_session(slurm_hub, token, f"naic-data job {job} --follow")
        assert f"job {job}: done: all 24 files match the manifest SHA256SUMS" in followed
        assert sums(by_job) == sums(SOURCE)
        shutil.rmtree(target)  # the widget's copy goes to scratch/datasets/imagenet-mini again
        widget = in_session_code(slurm_hub, token, WIDGET)
        said = re.search(r"JOB (\d+)\nSEEN (.*)\nBAR 100 of 100\n", widget, re.S)
        assert said, widget
        seen = said.group(2)
        assert f"Job {said.group(1)}: submitted." in seen
        assert f"Job {said.group(1)}: done: all 24 files match the manifest SHA256SUMS" in seen
        assert sums(target) == sums(SOURCE)
    finally:
        subprocess.run(["scancel", "--user=alice", "--name=naic-stage"], check=False)
        with slurm_hub.api() as api:
            api.delete("/users/alice/server")


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[str]:
    """moto's S3 server mode on loopback: an S3-compatible endpoint that takes any key."""
    port = free_port()
    moto = Path(sys.executable).parent / "moto_server"
    log = (tmp_path / "moto.log").open("w")
    proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, (tmp_path / "moto.log").read_text()
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


SECRET = "naic-test-secret-2f9c1e77"


def test_a_file_goes_to_object_storage_and_back_and_the_secret_stays_private(
    slurm_hub: Hub, s3_server: str
) -> None:
    config = Path("/home/alice/.config/rclone/rclone.conf")
    config.unlink(missing_ok=True)
    out_dir, back = Path("/home/alice/s3-out"), Path("/home/alice/s3-back")
    for folder in (out_dir, back):
        shutil.rmtree(folder, ignore_errors=True)
    with slurm_hub.api() as api:
        api.post("/users/alice")
        resp = api.post("/users/alice/server", json={"user_options": SESSION})
        assert resp.status_code in (201, 202), resp.text
        wait_ready(api, "alice", 300)
    token = user_token(slurm_hub, "alice")
    try:
        made = in_session(
            slurm_hub, token,
            f"mkdir -p {out_dir} && head -c 3000000 /dev/urandom > {out_dir}/weights.bin && "
            f"echo {SECRET} | naic-data remote add teststore --endpoint {s3_server} "
            "--access-key-id testing --secret-stdin",
        )  # fmt: skip
        assert "Remote teststore" in made and "readable by you only" in made, made
        put = in_session(slurm_hub, token, f"naic-data put {out_dir} teststore:naic-test/run1")
        assert "put: 1 files (3.0 MB) to teststore:naic-test/run1" in put, put
        got = in_session(slurm_hub, token, f"naic-data get teststore:naic-test/run1 {back}")
        assert "exit 0" in got, got
        assert sums(back) == sums(out_dir)
        listed = in_session(slurm_hub, token, "naic-data remote list")
        assert "teststore" in listed and s3_server in listed
        for text in (made, put, got, listed):  # no output shows the secret
            assert SECRET not in text
        assert config.stat().st_mode & 0o777 == 0o600
        assert config.stat().st_uid == Path("/home/alice").stat().st_uid
        assert SECRET in config.read_text()
    finally:
        with slurm_hub.api() as api:
            api.delete("/users/alice/server")
    # Nor any table of the hub's database.
    files = list(slurm_hub.data_dir.glob("jupyterhub.sqlite*"))  # with its WAL, if any
    assert files and not any(SECRET.encode() in f.read_bytes() for f in files)
