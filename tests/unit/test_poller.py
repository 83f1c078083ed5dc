"""The shared squeue poller: one query per interval for all sessions, outages are 'unknown'."""

from __future__ import annotations

import asyncio

import pytest

from naic.hub.catalogue import SSH, Submit
from naic.spawners import site as sites
from naic.spawners import ssh
from naic.spawners.callback import parse_port_body
from naic.spawners.poller import SQUEUE_ARGV, JobInfo, SlurmPoller, Unreachable, parse_squeue
from tests.unit.examples import TC

SQUEUE = """\
7|RUNNING|None|vm|2026-11-27T03:40:00|accel|alice|2026-11-27T04:10:00
9|PENDING|Priority|||accel|carol|N/A
8|PENDING|Resources||2026-11-27T04:05:00|accel|bob|2026-11-27T05:05:00
10|PENDING|Resources||N/A|normal|bob|N/A
5|TIMEOUT|TimeLimit|vm|2026-11-27T03:00:00|accel|alice|2026-11-27T03:30:02
"""


def test_parse_squeue_gives_states_and_queue_positions_per_partition() -> None:
    jobs = parse_squeue(SQUEUE)
    assert jobs["7"] == JobInfo(
        "7",
        "RUNNING",
        "None",
        "vm",
        "2026-11-27T03:40:00",
        "accel",
        "alice",
        0,
        "2026-11-27T04:10:00",
    )
    assert (jobs["9"].position, jobs["8"].position, jobs["10"].position) == (1, 2, 1)
    assert jobs["5"].state == "TIMEOUT"
    assert parse_squeue("garbage\n\n1|2|3\n") == {}
    assert jobs["5"].end == "2026-11-27T03:30:02"


class FakeSlurm:
    def __init__(self, out: str = SQUEUE, code: int = 0) -> None:
        self.out, self.code, self.calls = out, code, 0

    async def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        assert argv == SQUEUE_ARGV
        self.calls += 1
        await asyncio.sleep(0.01)  # concurrent callers overlap with the query in flight
        if self.code:
            return self.code, "", "slurm_load_jobs error: Unable to contact slurm controller"
        return 0, self.out, ""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_thirty_sessions_polling_at_once_share_one_squeue() -> None:
    slurm, clock = FakeSlurm(), Clock()
    poller = SlurmPoller(slurm, max_age=30, clock=clock)
    ids = ["7", "8", "9", "10", "5"] * 6
    infos = await asyncio.gather(*(poller.job(i) for i in ids))
    assert slurm.calls == 1
    assert [i.job_id for i in infos] == ids
    clock.now += 29  # still fresh
    await poller.job("7")
    assert slurm.calls == 1
    clock.now += 2  # stale: one new query
    await asyncio.gather(*(poller.job(i) for i in ids))
    assert slurm.calls == 2


async def test_a_job_slurm_no_longer_lists_is_gone() -> None:
    poller = SlurmPoller(FakeSlurm(), clock=Clock())
    assert await poller.job("12345") is None


async def test_an_unreachable_controller_is_unknown_not_gone() -> None:
    slurm, clock = FakeSlurm(code=1), Clock()
    poller = SlurmPoller(slurm, max_age=30, clock=clock)
    with pytest.raises(Unreachable, match="Unable to contact slurm controller"):
        await poller.job("7")
    slurm.code = 0
    clock.now += 31
    assert (await poller.job("7")).state == "RUNNING"


async def test_a_starting_session_may_ask_for_a_fresher_snapshot() -> None:
    slurm, clock = FakeSlurm(), Clock()
    poller = SlurmPoller(slurm, max_age=30, clock=clock)
    await poller.job("8")
    clock.now += 0.6
    await poller.job("8", max_age=0.5)
    assert slurm.calls == 2


@pytest.mark.parametrize(
    "body",
    [
        {"port": 1, "batch_query_cmd": "touch pwned; squeue"},
        {"port": "8888"},
        {"port": True},
        {"port": 0},
        {"port": 70000},
        {"ip": "10.0.0.1", "port": 8888},
        {},
        [8888],
        "8888",
        None,
    ],
)
def test_port_callback_accepts_nothing_but_an_integer_port(body: object) -> None:
    with pytest.raises(ValueError):
        parse_port_body(body)


def test_port_callback_reads_a_port() -> None:
    assert parse_port_body({"port": 8888}) == 8888


async def test_a_snapshot_older_than_a_submission_is_not_trusted() -> None:
    slurm, clock = FakeSlurm(), Clock()
    poller = SlurmPoller(slurm, max_age=30, clock=clock)
    await poller.job("7")
    clock.now += 0.1
    submitted = clock()  # the new job is not in the snapshot taken 0.1 s ago
    await poller.job("7", max_age=30, since=submitted)
    assert slurm.calls == 2


async def test_max_age_zero_takes_one_fresh_snapshot_and_returns() -> None:
    # The start loop asks for age 0 once the port arrives; time passes during every squeue,
    # so "newer than now" would never hold and the caller would query forever.
    slurm = FakeSlurm()
    ticks = iter(range(1000, 2000))
    poller = SlurmPoller(slurm, max_age=30, clock=lambda: float(next(ticks)))
    await poller.job("7")
    assert (await asyncio.wait_for(poller.job("7", max_age=0), 1)).state == "RUNNING"
    assert slurm.calls == 2


async def test_an_ssh_site_polls_squeue_on_its_login_node(monkeypatch) -> None:
    access = SSH(identity_file="/etc/naic/ssh/id", known_hosts="/etc/naic/ssh/known_hosts")
    local = TC.sites["testcluster"]
    remote = local.model_copy(
        update={"submit": Submit(host="login.example.org", port=2222, via="ssh"), "ssh": access}
    )
    calls: list[tuple[ssh.Target, list[str]]] = []
    answer: list[object] = [(0, SQUEUE, "")]

    async def fake_ssh_run(target, argv, *, stdin=None, timeout_s=60):
        calls.append((target, argv))
        if isinstance(answer[0], Exception):
            raise answer[0]
        return answer[0]

    monkeypatch.setattr(ssh, "run", fake_ssh_run)
    monkeypatch.setattr(sites, "_SITES", {})
    cat = TC.model_copy(update={"sites": {"remote": remote, "here": local}})

    p = sites.site_for(cat, "remote").poller
    assert (await p.job("7")).state == "RUNNING"
    assert calls == [(ssh.Target("login.example.org", 2222, access), SQUEUE_ARGV)]
    assert sites.site_for(cat, "remote").poller is p  # one poller, one snapshot, per site
    assert sites.site_for(cat, "here").login_node is None  # squeue runs on the hub's machine

    # A login node that cannot be reached makes jobs unknown, never gone.
    answer[0] = ssh.SSHError("login.example.org:2222 does not answer (timeout).")
    with pytest.raises(Unreachable, match="does not answer"):
        await p.job("7", max_age=0)
