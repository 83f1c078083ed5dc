"""Budgets from Slurm's accounting, pure: reading sacct, and the sacctmgr plan."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from naic.hub.catalogue import CatalogueError, parse
from naic.hub.usage import slurm_accounts as accounts
from naic.hub.usage.slurm_usage import (
    SlurmUsage,
    accounted_sites,
    gpu_hours_from_sacct,
    sacct_argv,
)
from tests.unit.examples import REPO, TC

SINCE = datetime(2026, 12, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def slurm_site(cat=TC, **changes):
    """TC with its Slurm site's accounting in Slurm (and `changes` to the catalogue)."""
    site = cat.sites["testcluster"].model_copy(update={"accounting": "slurm"})
    return cat.model_copy(update={"sites": {**cat.sites, "testcluster": site}, **changes})


def test_sacct_asks_for_all_accounts_allocations_since_the_period_start() -> None:
    argv = sacct_argv(["nn2", "demo"], SINCE)
    assert argv[:5] == ["sacct", "--noheader", "--parsable2", "--allocations", "--allusers"]
    assert "--accounts=demo,nn2" in argv
    assert "--endtime=now" in argv
    assert argv[-1] == "--format=Account,User,AllocTRES,Start,End"
    start = next(a for a in argv if a.startswith("--starttime="))
    assert datetime.fromisoformat(start.split("=")[1]).astimezone(UTC) == SINCE


def test_gpu_hours_count_gpus_times_time_inside_the_period_only() -> None:
    out = "\n".join(
        [
            # 2 GPUs for 1.5 h, all inside the period
            "demo|alice|billing=4,cpu=4,gres/gpu=2,mem=8G,node=1|2026-12-02T10:00:00|2026-12-02T11:30:00",
            # began before the period: counts from its start, 1 GPU × 2 h
            "demo|bob|cpu=1,gres/gpu=1,mem=2G,node=1|2026-11-30T22:00:00|2026-12-01T02:00:00",
            # running: counts to now, 1 GPU × 1 h
            "demo|alice|cpu=1,gres/gpu=1,node=1|2026-12-03T11:00:00|Unknown",
            # CPU only, and one that never started: nothing
            "demo|alice|cpu=8,mem=16G,node=1|2026-12-02T10:00:00|2026-12-02T12:00:00",
            "nn2|carl|cpu=1,gres/gpu=4,node=1|Unknown|Unknown",
            "garbage line",
        ]
    )
    # sacct prints the cluster's local time; these tests run in UTC (TZ of the machine)
    got = gpu_hours_from_sacct(out, SINCE.astimezone(), NOW)
    assert got["demo"]["alice"] == pytest.approx(3.0 + 1.0)
    assert got["demo"]["bob"] == pytest.approx(2.0)
    assert "nn2" not in got


def test_the_cache_answers_within_its_age_and_asks_again_after(monkeypatch) -> None:
    calls = []

    class FakeSite:  # the one place a site is faked: the command's text is what matters
        async def call(self, argv, **kw):
            calls.append(argv)
            return "demo|alice|gres/gpu=1|2026-12-03T10:00:00|2026-12-03T11:00:00\n"

    monkeypatch.setattr("naic.hub.usage.slurm_usage.site_for", lambda cat, name: FakeSite())
    clock = [0.0]
    usage = SlurmUsage(clock=lambda: clock[0])
    cat = slurm_site()
    first = asyncio.run(usage.read(cat, "testcluster", "never", NOW))
    assert first == {"demo": {"alice": pytest.approx(1.0)}}
    clock[0] = 29
    asyncio.run(usage.read(cat, "testcluster", "never", NOW))
    assert len(calls) == 1
    clock[0] = 31
    asyncio.run(usage.read(cat, "testcluster", "never", NOW))
    assert len(calls) == 2
    assert usage.cached("testcluster", "demo", None) == {"alice": pytest.approx(1.0)}


def test_only_slurm_sites_may_take_usage_from_slurm() -> None:
    assert accounted_sites(TC) == frozenset()
    assert accounted_sites(slurm_site()) == {"testcluster"}
    text = (REPO / "examples" / "catalogue-testcluster.yaml").read_text()
    text = text.replace("    backend: local\n", "    backend: local\n    accounting: slurm\n")
    with pytest.raises(CatalogueError) as exc:
        parse(text, "cat.yaml")
    assert "only Slurm sites have Slurm's accounting: use `accounting: hub`" in exc.value.message


def test_the_plan_adds_what_is_missing_and_sets_the_gpu_budget() -> None:
    cat = slurm_site()
    want, unknown = accounts.wanted(cat)
    assert want == [accounts.Association("demo", frozenset({"alice", "bob"}), 100 * 60)]
    assert unknown == []
    have = accounts.current("root|||\nroot|root|\ndemo||cpu=10\ndemo|alice|\n")
    assert accounts.plan(want, have) == [
        (
            "account demo: GPU budget 6000 GPU-minutes (Slurm has no limit)",
            ["sacctmgr", "-i", "modify", "account", "where", "name=demo", "set",
             "GrpTRESMins=gres/gpu=6000"],
        ),
        ("user bob is not in account demo",
         ["sacctmgr", "-i", "add", "user", "bob", "account=demo"]),
    ]  # fmt: skip
    done = accounts.current("demo||gres/gpu=6000\ndemo|alice|\ndemo|bob|\n")
    assert accounts.plan(want, done) == []
    assert accounts.plan(want, {})[0] == (
        "account demo is missing",
        ["sacctmgr", "-i", "add", "account", "demo", "Organization=naic"],
    )


def test_member_identities_become_user_names_only_where_the_catalogue_says_how() -> None:
    assert accounts.user_name(TC, "alice") == "alice"
    assert accounts.user_name(TC, "ola@uio.no") is None  # no identity section: unknown
