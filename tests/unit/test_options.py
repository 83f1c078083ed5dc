"""One request, every site that could run it (#22): the ask's sentences, which resources
match, the order (soonest first, refusals last) and each site asked at once within its
time-out, so a hanging site is "no answer" and the others are still offered."""

from __future__ import annotations

import asyncio
import copy
import math
import time

import pytest
import yaml
from tornado import web

from naic.hub.catalogue import Catalogue
from naic.spawners.federation import (
    Ask,
    ask_dict,
    ask_from_options,
    ask_of,
    chosen,
    compare,
    differences,
    matching,
    move_offer,
    parse_ask,
    ranked,
    wait_of,
)
from naic.spawners.request import parse_request
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


# --- "any site" requests and moves (naic.spawners.moving uses these) ----------------------


def test_only_the_excluded_are_not_asked() -> None:
    asked = []

    async def estimate(req):
        asked.append(req.site)
        return {"start": "now"}

    cat = catalogue()
    result = asyncio.run(compare(cat, ALICE, Ask(gpus=1), estimate, exclude={("big", "h100")}))
    assert asked == ["testcluster"] and [o["site"] for o in result["options"]] == ["testcluster"]


def test_an_any_site_request_reads_as_an_ask_and_an_optional_pick() -> None:
    options = {"any": True, "gpus": 2, "gpu_memory_gb": 40, "hours": 1.5, "pick": "big:h100"}
    assert ask_from_options(options) == (Ask(gpus=2, hours=1.5, gpu_memory_gb=40), ("big", "h100"))
    assert ask_from_options({"any": True, "gpus": "1", "pick": ""}) == (Ask(gpus=1), None)
    for bad, sentence in [
        ({"any": True, "gpus": True}, '"gpus" must be a whole number from 1 to 64.'),
        ({"any": True, "gpus": 1, "project": 7}, '"project" must be a name of letters'),
        (
            {"any": True, "gpus": 1, "pick": "big"},
            '"pick" must name one option as "site:resource".',
        ),
        ({"any": True, "gpus": 1, "site": "big"}, '"site" is not an option here'),
    ]:
        with pytest.raises(ValueError) as exc:
            ask_from_options(bad)
        assert str(exc.value).startswith(sentence), bad
    assert ask_dict(Ask(gpus=2, hours=1.5)) == {"gpus": 2, "hours": 1.5}


def test_a_pinned_request_stands_for_the_same_ask_elsewhere() -> None:
    cat = catalogue()
    req = parse_request({"site": "testcluster", "resource": "a100", "gpus": 2, "hours": 3},
                        cat, ALICE)  # fmt: skip
    assert ask_of(req, cat) == Ask(gpus=2, hours=3.0, gpu_memory_gb=40, project="demo",
                                   environment="python")  # fmt: skip


def test_the_option_started_is_the_pinned_one_else_the_default_else_why_not() -> None:
    now = {"site": "a", "resource": "x", "title": "X at A", "answer": "yes", "start": "now"}
    full = {"site": "b", "resource": "y", "title": "Y at B", "answer": "no answer",
            "message": "B did not answer within 8 s."}  # fmt: skip
    assert chosen({"options": [now, full], "default": 0}, None) is now
    assert chosen({"options": [now, full], "default": 0}, ("b", "y")) is full
    with pytest.raises(web.HTTPError) as exc:
        chosen({"options": [now], "default": 0}, ("c", "z"))
    assert (exc.value.status_code, exc.value.log_message) == (
        400, '"pick": c:z does not offer this ask.'
    )  # fmt: skip
    with pytest.raises(web.HTTPError) as exc:
        chosen({"options": [full], "default": None}, None)
    assert (exc.value.status_code, exc.value.log_message) == (
        409, "No site can start this session now. Y at B: B did not answer within 8 s."
    )  # fmt: skip
    with pytest.raises(web.HTTPError) as exc:
        chosen({"options": [], "default": None, "message": "No site of this hub offers …"}, None)
    assert exc.value.status_code == 400


@pytest.mark.parametrize(
    ("other", "waiting_s", "offered"),
    [
        ({"start": "now"}, None, True),  # free now: always worth a move
        ({"start": "x", "wait_s": 600}, 3600, True),  # an hour's wait, ten minutes there
        ({"start": "x", "wait_s": 600}, 900, False),  # five minutes sooner: not worth it
        ({"start": "x", "wait_s": 2000}, 3600, False),  # more than half the wait
        ({"start": "x", "wait_s": 600}, None, False),  # own wait unknown: only "now" counts
        ({"start": None}, 3600, False),  # a full pool: no time said
    ],
)
def test_a_move_is_offered_only_when_much_sooner(other, waiting_s, offered) -> None:
    option = {"answer": "yes", **other}
    result = {"options": [option], "default": 0 if wait_of(option) < math.inf else None}
    assert (move_offer(result, waiting_s) is option) is offered


def test_what_differs_from_the_default_is_said() -> None:
    default = {"answer": "yes", "environment": "Python 3", "project": "demo", "gpu_hours": 2.0}
    other = {"answer": "yes", "environment": "PyTorch 2.5", "project": "nn1234k",
             "gpu_hours": 2.0, "budget_left": 12.5}  # fmt: skip
    assert differences(other, default) == [
        "Starts with PyTorch 2.5, not Python 3.",
        "Charged to project nn1234k (12.5 GPU-hours left), not to demo.",
    ]
    same_project = {**default, "gpu_hours": 4.0}
    assert differences(same_project, default) == ["Takes 4 GPU-hours of demo, not 2."]
    assert differences(default, default) == []
    assert differences({**other, "answer": "refused"}, default) == []
    assert differences({**default, "project": None}, default) == [
        "Not charged to a project; the soonest is charged to demo."
    ]
    pool = {**default, "project": None}  # the soonest is a pool that charges no project
    assert differences({**default, "budget_left": 100.0}, pool) == [
        "Charged to project demo (100 GPU-hours left); the soonest is not charged."
    ]
