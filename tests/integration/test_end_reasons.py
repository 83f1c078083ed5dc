"""Sessions that end for real on the test cluster, and what the user reads on the hub's home
page after: the end reason in words, its remedy (`naic.hub.sessions.remedies`), the "More
help" link, the site's documentation and a "report a problem" mail with the session's facts.

Cancelled (an `scancel` of the session's job), culled for idleness (the hub's culler) and
out of memory (a cell holding more than the session's `--mem`; the test cluster kills it by
sampling, OverMemoryKill) are produced here; a time limit is in test_slurm_lifecycle.

Each test has a user of its own, student08 to student10: many session tests cancel all of
alice's and bob's jobs when they end."""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from naic.hub.sessions.remedies import REMEDIES, remedy
from tests.hub_process import Hub, log_in, stop_hub
from tests.integration.helpers import (
    client,
    ready,
    squeue,
    start,
    start_testcluster_hub,
    user_token,
    wait_until,
)
from tests.kernel import run_cell

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

SITE = "Test cluster (Slurm on this machine)"
DOCS = "https://docs.example.org/testcluster"
SUPPORT = "support@example.org"
#: The smallest session the test cluster's CPU resource gives: 1 CPU, 1 GB.
SMALLEST = {"site": "testcluster", "resource": "cpu", "cpus": 1, "memory_gb": 1, "hours": 0.5,
            "project": "demo"}  # fmt: skip
#: Culled after 30 s without activity, warned 8 s before; no GPU rule (CPU sessions).
IDLE_POLICY = {"idle_minutes": 0.5, "gpu_idle_minutes": None, "warn_minutes": 8 / 60}
USERS = ("student08", "student09", "student10")


def members(cat: dict, policy: dict | None = None) -> None:
    """The catalogue edit: USERS in project demo (sessions there are charged to one), and
    the test cluster's culling `policy`."""
    cat["projects"]["demo"]["members"] += list(USERS)
    if policy is not None:
        cat["sites"]["testcluster"]["culling"] = policy


def cancel_users_jobs() -> None:
    for user in USERS:
        subprocess.run(["scancel", f"--user={user}"], check=False)


@pytest.fixture
def end_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    """The test cluster's catalogue, polling Slurm every 5 s."""
    hub = start_testcluster_hub(hub_dir, members)
    try:
        yield hub
    finally:
        stop_hub(hub)
        cancel_users_jobs()


@pytest.fixture
def idle_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    """The same, with the test cluster's sessions culled after 30 s without activity."""
    hub = start_testcluster_hub(hub_dir, lambda cat: members(cat, IDLE_POLICY))
    try:
        yield hub
    finally:
        stop_hub(hub)
        cancel_users_jobs()


def job_of(hub: Hub, user: str) -> str:
    """The Slurm job of `user`'s session, as the hub keeps it (the user may have others)."""
    with hub.api() as api:
        return api.get(f"/users/{user}").json()["servers"][""]["state"]["child_state"]["job_id"]


def run_session(hub: Hub, user: str, options: dict) -> httpx.Client:
    c = client(hub, user)
    start(c, user, options)
    wait_until(lambda: ready(c, user), 120, f"{user}'s session ready")
    return c


def wait_ended(c: httpx.Client, user: str, timeout_s: float, what: str) -> None:
    wait_until(lambda: not c.get(f"/hub/api/users/{user}").json()["servers"], timeout_s, what)


def last_end_box(page: str) -> str:
    """The home page's note about how the last session ended (its HTML)."""
    found = re.search(r'<div class="alert alert-info naic-last-end".*?</div>', page, re.S)
    assert found, f"no note about the last session on the home page:\n{page[:3000]}"
    return found.group(0)


def words(markup: str) -> str:
    """What a person reads: the text, a line break a space."""
    text = re.sub(r"<[^>]+>", "", re.sub(r"<br\s*/?>", " ", markup))
    return " ".join(html.unescape(text).split())


def assert_home_page_explains(hub: Hub, user: str, reason: str, title: str) -> str:
    """Log in as `user` and read the home page: `reason`, the remedy titled `title` (the one
    `remedy(reason)` finds), the help page, the site's documentation and a report with the
    session's facts. Returns the note's words."""
    web, _ = log_in(hub, user, hub.password)
    box = last_end_box(web.get("/hub/home").text)
    said = words(box)
    assert f"<strong>{html.escape(reason)}</strong>" in box, said
    [text] = [t for _, name, t in REMEDIES if name == title]
    assert remedy(reason) == text, (reason, title)
    remedy_line = f'<span class="naic-remedy">{html.escape(text)} <a class="naic-help-page'
    assert remedy_line in box, said
    assert '<a class="naic-help-page alert-link" href="/hub/naic/help">More help</a>' in box
    help_page = web.get("/hub/naic/help")
    assert help_page.status_code == 200 and f"<dt>{title}</dt>" in help_page.text
    assert f'<a class="naic-docs alert-link" href="{DOCS}">{SITE}: documentation</a>' in box
    report = r'<a class="naic-report alert-link" href="([^"]+)">report a problem</a>'
    [href] = re.findall(report, box)
    mail = urlsplit(html.unescape(href))
    assert (mail.scheme, mail.path) == ("mailto", SUPPORT)
    query = parse_qs(mail.query)
    assert query["subject"] == [f"naic-hub: a session at {SITE} ended"]
    [body] = query["body"]
    ended_at = re.search(r"ended at (\d{4}-\d\d-\d\d \d\d:\d\d UTC)", said)
    assert ended_at, said
    assert body == (
        f"Session: default\nSite: {SITE}\nEnded: {ended_at.group(1)}\nReason: {reason}\n"
        "Log: -\n\nWhat happened:\n"
    )
    return said


def test_a_cancelled_session_says_so_and_what_to_do_on_the_home_page(end_hub: Hub) -> None:
    user = "student09"
    c = run_session(end_hub, user, SMALLEST)
    job = job_of(end_hub, user)
    subprocess.run(["scancel", job], check=True)  # an administrator's scancel
    wait_ended(c, user, 60, "the hub seeing the cancelled job")
    said = assert_home_page_explains(end_hub, user, "cancelled", "Cancelled")
    assert "Your last session ended at" in said and "It was cancelled, by you," in said
    print(said)


def test_an_idle_session_culled_by_the_hub_says_so_and_what_to_do(idle_hub: Hub) -> None:
    user = "student10"
    c = run_session(idle_hub, user, SMALLEST)
    job = job_of(idle_hub, user)
    # Nobody uses it: warned at 22 s, stopped at 30 s (and never before the warning's 8 s).
    wait_ended(c, user, 90, "the culler stopping the idle session")
    wait_until(lambda: job not in squeue("--states=PENDING,RUNNING", "--format=%i").split(),
               30, "the idle session's job gone from Slurm")  # fmt: skip
    reason = f"stopped by the hub after 30 seconds without activity (the policy of {SITE})"
    said = assert_home_page_explains(idle_hub, user, reason, "No activity")
    print(said)


#: Holds 1.5 GiB (more than the session's 1 GB), touching every page, for 20 s.
HUNGRY_CELL = """
step = b"\\x01" * (64 * 2**20)
data = bytearray()
while len(data) < 1536 * 2**20:
    data += step
rss = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmRSS")][0]
print(len(data) // 2**20, int(rss) // 1024, flush=True)
import time
time.sleep(20)  # held for a while, as a model in memory is
"""


def test_a_cell_past_the_sessions_memory_ends_it_as_out_of_memory(end_hub: Hub) -> None:
    """A memory-hungry cell: Slurm kills the session's job past its 1 GB (the test cluster
    samples memory; a site with cgroups confines it), and the home page says "out of memory"
    and what to do, though Slurm's state for it is FAILED (the job log says why)."""
    user = "student08"
    c = run_session(end_hub, user, SMALLEST)
    job = job_of(end_hub, user)
    assert squeue(f"--jobs={job}", "--format=%m").strip() == "1G"
    token = user_token(end_hub, user)
    with contextlib.suppress(Exception):  # the kernel dies with its job, mid-cell
        out = asyncio.run(run_cell(end_hub.url + f"user/{user}/", token, HUNGRY_CELL, 60))
        pytest.fail(f"the cell holding 1.5 GiB in a 1 GB session finished: {out}")
    wait_ended(c, user, 60, "the hub seeing the job killed for its memory")
    said = assert_home_page_explains(end_hub, user, "out of memory", "Out of memory")
    assert "It needed more memory than it asked for." in said
    print(said)
