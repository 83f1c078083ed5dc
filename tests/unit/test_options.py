"""One request, every site that could run it (#22): the ask's sentences, which resources
match, the order (soonest first, refusals last) and each site asked at once within its
time-out, so a hanging site is "no answer" and the others are still offered."""

from __future__ import annotations

import asyncio
import copy
import time

import pytest
import yaml
from tornado import web

from naic.hub.catalogue import Catalogue
from naic.spawners.federation import Ask, compare, matching, parse_ask, ranked
from tests.unit.examples import ALICE, REPO


def catalogue(**project) -> Catalogue:
    """The test cluster (A100 40 GB) and a second Slurm site with H100s of 80 GB."""
    raw = yaml.safe_load((REPO / "examples" / "catalogue-testcluster.yaml").read_text())
    a100 = raw["sites"]["testcluster"]["resources"]["a100"]
    a100["gpu"].update(model="NVIDIA A100", memory_gb=40)
    big = copy.deepcopy(raw["sites"]["testcluster"])
    big.update(title="Big cluster", gpus_per_node={"h100": 8})
    big["resources"] = {"h100": {**copy.deepcopy(a100), "title": "NVIDIA H100",
                                 "gpu": {"type": "h100", "max": 8, "model": "NVIDIA H100",
                                         "memory_gb": 80}}}  # fmt: skip
    raw["sites"]["big"] = big
    raw["projects"]["demo"].update(project)
    raw.pop("datasets", None)
    return Catalogue.model_validate(raw)


@pytest.mark.parametrize(
    ("query", "sentence"),
    [
        ({}, 'Say how many GPUs one session needs: "gpus", a whole number from 1.'),
        ({"gpus": "0"}, '"gpus" must be a whole number from 1 to 64.'),
        ({"gpus": "²"}, '"gpus" must be a whole number from 1 to 64.'),  # a digit, not a number
        ({"gpus": "1", "hours": "soon"}, '"hours" must be a number of hours, more than 0.'),
        ({"gpus": "1", "gpu_memory_gb": "-4"}, '"gpu_memory_gb" must be a whole number from 1'),
        ({"gpus": "1", "project": "x; rm -rf"}, '"project" must be a name of letters'),
        ({"gpus": "1", "colour": "blue"}, '"colour" is not an option here; ask with '),
    ],
)
def test_a_bad_ask_gets_its_sentence(query, sentence) -> None:
    with pytest.raises(ValueError) as exc:
        parse_ask(query)
    assert str(exc.value).startswith(sentence)


def test_which_resources_match() -> None:
    cat = catalogue()
    assert matching(cat, Ask(gpus=1)) == [("testcluster", "a100"), ("big", "h100")]
    assert matching(cat, Ask(gpus=2, gpu_memory_gb=48)) == [("big", "h100")]
    assert matching(cat, Ask(gpus=1, gpu_model="a100")) == [("testcluster", "a100")]
    assert matching(cat, Ask(gpus=6)) == [("big", "h100")]  # the test cluster's max is 4
    assert matching(cat, Ask(gpus=1, hours=100)) == []
    assert parse_ask({"gpus": "2", "gpu_memory_gb": "40", "hours": "4"}) == Ask(
        gpus=2, hours=4.0, gpu_memory_gb=40
    )


def test_soonest_first_unknown_and_unanswered_after_refusals_last() -> None:
    options = [
        {"site": "a", "answer": "yes", "start": "2026-12-04T15:00:00Z", "wait_s": 2400},
        {"site": "b", "answer": "no answer"},
        {"site": "c", "answer": "refused"},
        {"site": "d", "answer": "yes", "start": "now"},
        {"site": "e", "answer": "yes", "start": None},  # a full pool: who waits, not when
    ]
    out, default = ranked(options)
    assert [o["site"] for o in out] == ["d", "a", "e", "b", "c"]
    assert default == 0
    assert ranked([options[1], options[2]])[1] is None


def test_each_site_is_asked_at_once_and_a_hanging_one_is_no_answer() -> None:
    cat = catalogue()

    async def estimate(req):
        if req.site == "big":
            await asyncio.sleep(30)  # a scheduler that does not answer
        return {"start": "now", "message": "Starts now"}

    started = time.monotonic()
    result = asyncio.run(compare(cat, ALICE, Ask(gpus=1, hours=2), estimate, timeout_s=0.5))
    assert time.monotonic() - started < 2
    first, second = result["options"]
    assert (first["site"], first["answer"]) == ("testcluster", "yes")
    assert first["message"] == "Starts now"
    assert first["user_options"] == {"site": "testcluster", "resource": "a100", "gpus": 1,
                                     "hours": 2.0}  # fmt: skip
    assert (first["project"], first["gpu_hours"], first["gpu"]) == (
        "demo",
        2.0,
        {"model": "NVIDIA A100", "memory_gb": 40},
    )
    assert (second["site"], second["answer"]) == ("big", "no answer")
    assert second["message"] == "Big cluster did not answer within 0.5 s."
    assert result["default"] == 0


def test_a_project_that_does_not_run_there_and_a_budget_too_small_are_refused_with_why() -> None:
    cat = catalogue(sites=["big"])

    async def estimate(req):
        if req.site == "big":
            raise web.HTTPError(503, "Big cluster cannot be asked now: no route")
        return {"start": "now"}

    ask = Ask(gpus=2, hours=4, project="demo")
    result = asyncio.run(compare(cat, ALICE, ask, estimate, budget_left=lambda p: 100.0))
    by_site = {o["site"]: o for o in result["options"]}
    assert by_site["testcluster"]["answer"] == "refused"
    assert by_site["testcluster"]["message"] == (
        "Project demo runs only at Big cluster, not at Test cluster (Slurm on this machine)."
    )
    assert by_site["big"]["answer"] == "error"
    assert by_site["big"]["message"] == "Big cluster cannot be asked now: no route"
    assert result["default"] is None

    poor = asyncio.run(compare(catalogue(), ALICE, ask, estimate, budget_left=lambda p: 3.0))
    here = next(o for o in poor["options"] if o["site"] == "testcluster")
    assert (here["answer"], here["budget_left"]) == ("refused", 3.0)
    assert here["message"] == "Project demo has 3.0 GPU-hours left; this session would take 8."


def test_when_nothing_matches_the_answer_says_so() -> None:
    async def estimate(req):
        raise AssertionError("no site is asked")

    result = asyncio.run(compare(catalogue(), ALICE, Ask(gpus=9, gpu_memory_gb=80), estimate))
    assert (result["options"], result["default"]) == ([], None)
    assert result["message"] == (
        "No site of this hub offers 9 GPUs with at least 80 GB each in one session; "
        "ask for fewer or less."
    )
