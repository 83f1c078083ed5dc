"""Session requests: catalogue defaults, the exact sentence for every refused input (a
student reads these; they are the interface), form conversion, and generated input that
must be refused in one sentence or produce a request within bounds and a safe script."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naic.hub.catalogue import parse
from naic.spawners.request import (
    OPTIONS,
    RequestError,
    SessionRequest,
    UserFacts,
    options_from_form,
    parse_request,
    projects_of,
)
from naic.spawners.script import SBATCH_LINE_CHARS, SHELL_LINE_CHARS, render_batch_script
from tests.unit.examples import ALICE, DEMO, TC

CATS = {"demo": DEMO, "tc": TC}

BOB = UserFacts("bob", frozenset({"bob"}))
OLA = UserFacts("ola", frozenset({"ola", "ola@uio.no"}))
KARI = UserFacts("kari", frozenset({"kari", "kari@uio.no"}), frozenset({"fc:org:uio.no"}))
EVE = UserFacts("eve", frozenset({"eve"}))
USERS = {u.name: u for u in (ALICE, BOB, OLA, KARI, EVE)}

OPTS = "the options are: site, resource, gpus, cpus, memory_gb, hours, environment, project."
TC_A100 = "NVIDIA A100 (fake) at Test cluster (Slurm on this machine)"
TC_CPU = "CPU only at Test cluster (Slurm on this machine)"
SAGA = "NVIDIA A100 at Saga (Sigma2)"
ESCAPED_NEWLINES = "\\n" * 20  # how a message shows the first 40 characters of "\n" * 2**20
HOURS_TC_A100 = f'"hours" must be a number of hours between 1/60 (one minute) and 24 for {TC_A100}'
A100 = {"site": "testcluster", "resource": "a100"}


def request(**fields) -> SessionRequest:
    return SessionRequest(**{"reservation": None, **fields})


# --- defaults -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cat", "user", "raw", "expected"),
    [
        ("tc", "alice", {}, request(site="local", resource="cpu-small", gpus=0, cpus=1,
                                    memory_gb=2, hours=1.0, environment="python", project=None)),
        ("tc", "alice", {"site": "testcluster"},
         request(site="testcluster", resource="cpu", gpus=0, cpus=1, memory_gb=2, hours=1.0,
                 environment="python", project="demo")),
        ("tc", "bob", A100,
         request(site="testcluster", resource="a100", gpus=1, cpus=2, memory_gb=4, hours=2.0,
                 environment="python", project="demo")),
        ("demo", "eve", {"site": "local"},
         request(site="local", resource="cpu-small", gpus=0, cpus=2, memory_gb=4, hours=1.0,
                 environment="python", project=None)),
        ("demo", "ola", {"site": "saga"},
         request(site="saga", resource="a100", gpus=1, cpus=8, memory_gb=32, hours=1.0,
                 environment="python", project="nn1234k")),
        ("demo", "kari", {"site": "saga"},  # a member through her institution's group
         request(site="saga", resource="a100", gpus=1, cpus=8, memory_gb=32, hours=1.0,
                 environment="python", project="nn1234k")),
    ],
    ids=["tc-local", "tc-testcluster", "tc-a100", "demo-local", "demo-saga", "demo-saga-group"],
)  # fmt: skip
def test_defaults_come_from_the_catalogue(cat, user, raw, expected):
    assert parse_request(raw, CATS[cat], USERS[user]) == expected


def test_every_option_can_be_chosen():
    raw = {
        "site": "saga",
        "resource": "a100",
        "gpus": 4,
        "cpus": 32,
        "memory_gb": 256,
        "hours": 24,
        "environment": "pytorch",
        "project": "nn1234k",
    }
    req = parse_request(raw, DEMO, OLA)
    assert req == request(**{**raw, "hours": 24.0})
    assert (req.time_minutes, req.slurm_account(DEMO)) == (1440, "nn1234k")


def test_a_whole_float_is_a_whole_number():
    req = parse_request({**A100, "gpus": 2.0, "cpus": 4.0, "hours": 1}, TC, ALICE)
    assert (req.gpus, req.cpus, req.hours) == (2, 4, 1.0)
    assert type(req.gpus) is int


def test_a_local_session_may_name_one_of_the_users_projects():
    assert parse_request({"project": "demo"}, TC, ALICE).project == "demo"


def test_projects_by_identity_and_group_in_catalogue_order():
    cat = parse(
        """
name: t
sites: {s: {title: S, backend: local, resources: {r: {title: R, max_hours: 1}}}}
environments: {e: {title: E, venv: /e}}
projects:
  zeta: {title: Z, members: ["kari@uio.no"]}
  alpha: {title: A, groups: ["fc:org:uio.no"]}
  other: {title: O, members: ["ola"]}
"""
    )
    assert projects_of(cat, KARI) == ["zeta", "alpha"]
    assert projects_of(cat, UserFacts("ola")) == ["other"]  # the hub name counts by itself
    assert projects_of(cat, EVE) == []


def test_a_catalogue_without_environments_says_so():
    cat = parse("name: t\nsites: {s: {title: S, backend: local, resources: {r: {title: R,"
                " max_hours: 1}}}}\n")  # fmt: skip
    with pytest.raises(RequestError) as caught:
        parse_request({}, cat, ALICE)
    assert str(caught.value) == 'No "environment" is offered for R at S yet; ask the hub operators.'


@pytest.mark.parametrize(
    ("hours", "minutes"), [(0.1, 6), (1 / 60, 1), (0.0175, 2), (1.5, 90), (24, 1440)]
)
def test_time_minutes_rounds_up_but_not_float_noise(hours, minutes):
    fields = {**A100, "gpus": 1, "cpus": 1, "memory_gb": 1, "environment": "python"}
    assert request(**fields, hours=hours, project=None).time_minutes == minutes


def test_slurm_account_defaults_to_the_project_name():
    demo = TC.projects["demo"].model_copy(update={"slurm_account": None})
    cat = TC.model_copy(update={"projects": {"demo": demo}})
    assert parse_request(A100, cat, ALICE).slurm_account(cat) == "demo"
    assert parse_request({}, TC, ALICE).slurm_account(TC) is None


# --- hostile input: the exact sentence ----------------------------------------------------

HOSTILE = [
    # (id, catalogue, user, raw, field, sentence)
    ("newline-in-site", "tc", "alice", {"site": "testcluster\n#SBATCH --uid=0"}, "site",
     '"site" "testcluster\\n#SBATCH --uid=0" is not offered on this hub; '
     "choose one of: local, testcluster."),
    ("semicolon-in-resource", "tc", "alice", {"site": "testcluster", "resource": "a100; rm -rf ~"},
     "resource", '"resource" "a100; rm -rf ~" is not offered at Test cluster (Slurm on this '
     "machine); choose one of: cpu, a100."),
    ("command-substitution", "tc", "alice", {**A100, "environment": "python$(touch /tmp/pwned)"},
     "environment", f'"environment" "python$(touch /tmp/pwned)" is not offered for {TC_A100}; '
     "choose one of: python."),
    ("backticks-in-project", "tc", "alice", {"site": "testcluster", "project": "demo`id`"},
     "project", 'You are not a member of project "demo`id`"; your projects are: demo.'),
    ("single-quotes", "tc", "alice", {"site": "local' || true '"}, "site",
     "\"site\" \"local' || true '\" is not offered on this hub; "
     "choose one of: local, testcluster."),
    ("double-quote-and-backslash", "tc", "alice", {"site": 'a"b\\'}, "site",
     '"site" "a\\"b\\\\" is not offered on this hub; choose one of: local, testcluster.'),
    ("nul-byte", "tc", "alice", {**A100, "environment": "python\x00"}, "environment",
     f'"environment" "python\\x00" is not offered for {TC_A100}; choose one of: python.'),
    ("leading-space", "demo", "ola", {"site": " saga"}, "site",
     '"site" " saga" is not offered on this hub; choose one of: local, saga.'),
    ("other-case", "demo", "ola", {"site": "SAGA"}, "site",
     '"site" "SAGA" is not offered on this hub; choose one of: local, saga.'),
    ("huge-gpus", "tc", "alice", {**A100, "gpus": 10**30}, "gpus",
     f'"gpus" must be a whole number from 1 to 4 for {TC_A100}; '
     "you asked for 1000000000000000000000000000000."),
    ("astronomic-cpus", "tc", "alice", {**A100, "cpus": 10**400}, "cpus",
     f'"cpus" must be a whole number from 1 to 16 for {TC_A100}; '
     "you asked for a number with more than 38 digits."),
    ("astronomic-hours", "tc", "alice", {**A100, "hours": -(10**400)}, "hours",
     f"{HOURS_TC_A100}; you asked for a number with more than 38 digits."),
    ("too-many-gpus", "demo", "ola", {"site": "saga", "gpus": 8}, "gpus",
     f'"gpus" must be a whole number from 1 to 4 for {SAGA}; you asked for 8.'),
    ("negative-gpus", "tc", "alice", {**A100, "gpus": -1}, "gpus",
     f'"gpus" must be a whole number from 1 to 4 for {TC_A100}; you asked for -1.'),
    ("zero-cpus", "tc", "alice", {**A100, "cpus": 0}, "cpus",
     f'"cpus" must be a whole number from 1 to 16 for {TC_A100}; you asked for 0.'),
    ("fixed-cpus", "tc", "alice", {"cpus": 2}, "cpus",
     '"cpus" must be 1 for 1 CPU, 2 GB at This machine; you asked for 2.'),
    ("gpus-without-gpu", "tc", "alice", {"site": "testcluster", "resource": "cpu", "gpus": 1},
     "gpus", f'"gpus" must be 0 for {TC_CPU}: it has no GPUs; you asked for 1.'),
    ("fractional-gpus", "tc", "alice", {**A100, "gpus": 1.5}, "gpus",
     f'"gpus" must be a whole number from 1 to 4 for {TC_A100}; you asked for 1.5.'),
    ("negative-hours", "tc", "alice", {**A100, "hours": -1}, "hours",
     f"{HOURS_TC_A100}; you asked for -1."),
    ("zero-hours", "tc", "alice", {**A100, "hours": 0}, "hours",
     f"{HOURS_TC_A100}; you asked for 0."),
    ("under-a-minute", "tc", "alice", {**A100, "hours": 0.01}, "hours",
     f"{HOURS_TC_A100}; you asked for 0.01."),
    ("over-max-hours", "tc", "alice", {**A100, "hours": 24.001}, "hours",
     f"{HOURS_TC_A100}; you asked for 24.001."),
    ("nan-hours", "tc", "alice", {**A100, "hours": math.nan}, "hours",
     f"{HOURS_TC_A100}; you asked for NaN."),
    ("infinite-hours", "tc", "alice", {**A100, "hours": math.inf}, "hours",
     f"{HOURS_TC_A100}; you asked for Infinity."),
    ("minus-infinite-memory", "tc", "alice", {**A100, "memory_gb": -math.inf}, "memory_gb",
     f'"memory_gb" must be a whole number from 1 to 64 for {TC_A100}; you asked for -Infinity.'),
    ("bool-gpus", "tc", "alice", {**A100, "gpus": True}, "gpus",
     f'"gpus" must be a whole number from 1 to 4 for {TC_A100}; you sent true.'),
    ("string-gpus-from-json", "tc", "alice", {**A100, "gpus": "2"}, "gpus",
     f'"gpus" must be a whole number from 1 to 4 for {TC_A100}; you sent "2".'),
    ("list-cpus", "tc", "alice", {**A100, "cpus": [2]}, "cpus",
     f'"cpus" must be a whole number from 1 to 16 for {TC_A100}; you sent a list.'),
    ("dict-memory", "tc", "alice", {**A100, "memory_gb": {"$gt": 1}}, "memory_gb",
     f'"memory_gb" must be a whole number from 1 to 64 for {TC_A100}; you sent a mapping.'),
    ("null-site", "tc", "alice", {"site": None}, "site",
     '"site" must be text, one of: local, testcluster; you sent null.'),
    ("string-hours", "tc", "alice", {**A100, "hours": "4"}, "hours",
     f'{HOURS_TC_A100}; you sent "4".'),
    ("bool-hours", "tc", "alice", {**A100, "hours": False}, "hours",
     f"{HOURS_TC_A100}; you sent false."),
    ("number-project", "tc", "alice", {"project": 42}, "project",
     '"project" must be text naming a project; you asked for 42.'),
    ("list-environment", "tc", "alice", {"environment": ["python"]}, "environment",
     '"environment" must be text, one of: python; you sent a list.'),
    ("bytes-site", "tc", "alice", {"site": b"local"}, "site",
     '"site" must be text, one of: local, testcluster; you sent a value of type bytes.'),
    ("other-users-project", "demo", "alice", {"site": "saga", "project": "nn1234k"}, "project",
     'You are not a member of project "nn1234k"; you are in no project yet.'),
    ("unknown-project", "tc", "alice", {"site": "testcluster", "project": "nn9999k"}, "project",
     'You are not a member of project "nn9999k"; your projects are: demo.'),
    ("path-in-project", "tc", "bob", {"site": "testcluster", "project": "../demo"}, "project",
     'You are not a member of project "../demo"; your projects are: demo.'),
    ("project-on-local-site", "tc", "eve", {"project": "demo"}, "project",
     'You are not a member of project "demo"; you are in no project yet.'),
    ("no-project-on-slurm", "tc", "eve", {"site": "testcluster"}, "project",
     "Sessions at Test cluster (Slurm on this machine) are charged to a project, "
     "and you are in no project yet; ask for access to one on the hub's Access page."),
    ("environment-not-offered", "tc", "alice", {**A100, "environment": "pytorch"}, "environment",
     f'"environment" "pytorch" is not offered for {TC_A100}; choose one of: python.'),
    ("unknown-key", "demo", "ola", {"colour": "red"}, "colour",
     f'"colour" is not a session option; {OPTS}'),
    ("batchspawner-key", "tc", "alice", {"req_prologue": "touch pwned"}, "req_prologue",
     f'"req_prologue" is not a session option; {OPTS}'),
    ("reservation-from-user", "tc", "alice", {**A100, "reservation": "ws1"}, "reservation",
     '"reservation" is set by the hub for workshops and cannot be chosen; ' + OPTS),
    ("newline-in-key", "tc", "alice", {"gpus\n": 1}, "gpus\n",
     f'"gpus\\n" is not a session option; {OPTS}'),
    ("bidi-in-key", "tc", "alice", {"gpus\u202e": 1}, "gpus\u202e",
     f'"gpus\\u202e" is not a session option; {OPTS}'),
    ("empty-key", "tc", "alice", {"": 1}, "", f'"" is not a session option; {OPTS}'),
    ("number-key", "tc", "alice", {1: 1}, None, f"1 is not a session option; {OPTS}"),
    ("megabyte-string", "tc", "alice", {"site": "x" * 2**20}, "site",
     f'"site" "{"x" * 40}…" (1048576 characters) is not offered on this hub; '
     "choose one of: local, testcluster."),
    ("megabyte-key", "tc", "alice", {"\n" * 2**20: 1}, "\n" * 40,
     f'"{ESCAPED_NEWLINES}…" (1048576 characters) is not a session option; {OPTS}'),
    ("list-not-mapping", "tc", "alice", [("gpus", 1)], None,
     'The session options must be a mapping of option names to values, such as {"gpus": 1}; '
     "you sent a list."),
    ("string-not-mapping", "tc", "alice", "gpus=1", None,
     'The session options must be a mapping of option names to values, such as {"gpus": 1}; '
     'you sent "gpus=1".'),
    ("null-not-mapping", "tc", "alice", None, None,
     'The session options must be a mapping of option names to values, such as {"gpus": 1}; '
     "you sent null."),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cat", "user", "raw", "field", "sentence"),
    [h[1:] for h in HOSTILE],
    ids=[h[0] for h in HOSTILE],
)
def test_hostile_options_are_refused_with_one_sentence(cat, user, raw, field, sentence):
    with pytest.raises(RequestError) as caught:
        parse_request(raw, CATS[cat], USERS[user])
    assert (caught.value.field, str(caught.value)) == (field, sentence)


def test_there_are_at_least_thirty_hostile_cases():
    assert len(HOSTILE) >= 30
    assert len({h[0] for h in HOSTILE}) == len(HOSTILE)


# --- the form -----------------------------------------------------------------------------


def test_form_values_become_numbers():
    form = {
        "site": ["testcluster"],
        "resource": ["a100"],
        "gpus": ["2"],
        "cpus": [" 4 "],
        "memory_gb": ["8"],
        "hours": ["1.5"],
        "environment": ["python"],
        "project": ["demo"],
    }
    opts = options_from_form(form)
    assert opts == {**A100, "gpus": 2, "cpus": 4, "memory_gb": 8, "hours": 1.5,
                    "environment": "python", "project": "demo"}  # fmt: skip
    assert parse_request(opts, TC, ALICE).gpus == 2


@pytest.mark.parametrize(
    ("form", "options"),
    [
        ({"gpus": ["1", "3"]}, {"gpus": 1}),  # the first value counts
        ({"hours": ["2"]}, {"hours": 2.0}),
        ({"hours": [".5"], "gpus": ["2.0"]}, {"hours": 0.5, "gpus": 2.0}),
        ({"cpus": ["-1"]}, {"cpus": -1}),
        ({"hours": [""], "site": [""], "gpus": []}, {}),  # empty means not given
        ({"_xsrf": ["token"]}, {}),
        ({"gpus": ["two"], "hours": ["nan"], "cpus": ["1e3"]},
         {"gpus": "two", "hours": "nan", "cpus": "1e3"}),
        ({"memory_gb": ["٣"]}, {"memory_gb": "٣"}),  # only ASCII digits are numbers
        ({"colour": ["red"]}, {"colour": "red"}),
    ],
    ids=["first-value", "int-hours", "decimals", "negative", "empty", "xsrf", "not-numbers",
         "arabic-digit", "unknown-key-kept"],
)  # fmt: skip
def test_form_conversion(form, options):
    result = options_from_form(form)
    assert result == options
    assert [type(v) for v in result.values()] == [type(v) for v in options.values()]


@pytest.mark.parametrize(
    ("form", "sentence"),
    [
        ({**{k: [v] for k, v in A100.items()}, "gpus": ["two"]},
         f'"gpus" must be a whole number from 1 to 4 for {TC_A100}; you sent "two".'),
        ({"hours": ["-3"]},
         '"hours" must be a number of hours between 1/60 (one minute) and 8 for '
         "1 CPU, 2 GB at This machine; you asked for -3."),
        ({"colour": ["red"]}, f'"colour" is not a session option; {OPTS}'),
    ],
    ids=["text-gpus", "negative-hours", "unknown-key"],
)  # fmt: skip
def test_form_mistakes_get_the_same_sentences(form, sentence):
    with pytest.raises(RequestError) as caught:
        parse_request(options_from_form(form), TC, ALICE)
    assert str(caught.value) == sentence


# --- generated input ----------------------------------------------------------------------

JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["\n", ";id", "$(id)", "`id`", "'", '"', "\x00", "a100\n#SBATCH -A x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
NAMES = ["local", "testcluster", "saga", "cpu", "cpu-small", "a100", "python", "pytorch",
         "demo", "nn1234k"]  # fmt: skip
PLAUSIBLE = {
    "site": st.sampled_from(["local", "testcluster", "saga"]),
    "resource": st.sampled_from(["cpu-small", "cpu", "a100"]),
    "gpus": st.integers(-1, 5) | st.floats(-1, 5),
    "cpus": st.integers(0, 40),
    "memory_gb": st.integers(0, 300),
    "hours": st.integers(-1, 30) | st.floats(-1, 30),
    "environment": st.sampled_from(["python", "pytorch"]),
    "project": st.sampled_from(["demo", "nn1234k"]),
}
RAW = (
    st.fixed_dictionaries(
        {}, optional={key: PLAUSIBLE[key] | PLAUSIBLE[key] | JUNK for key in OPTIONS}
    ).flatmap(
        lambda d: (
            st.dictionaries(st.text(max_size=10) | st.sampled_from(NAMES), JUNK, max_size=2).map(
                lambda extra: {**extra, **d}
            )
            | st.just(d)
        )
    )
    | JUNK
)


@st.composite
def coherent(draw, cat) -> dict:
    """A site and one of its resources, then mostly valid values, some just out of bounds or
    replaced by junk."""
    site = draw(st.sampled_from(list(cat.sites)))
    name = draw(st.sampled_from(list(cat.sites[site].resources)))
    res = cat.sites[site].resources[name]
    gpu_lo, gpu_hi = (1, res.gpu.max) if res.gpu else (0, 0)
    # (valid values, values just outside the bounds or not offered)
    near = {
        "gpus": (st.integers(gpu_lo, gpu_hi), st.sampled_from([gpu_lo - 1, gpu_hi + 1])),
        "cpus": (st.integers(res.cpus.min, res.cpus.max), st.just(res.cpus.max + 1)),
        "memory_gb": (
            st.integers(res.memory_gb.min, res.memory_gb.max),
            st.just(res.memory_gb.min - 1),
        ),
        "hours": (
            st.floats(1 / 60, res.max_hours) | st.integers(1, int(res.max_hours)),
            st.floats(-1, 1 / 60, exclude_max=True) | st.floats(res.max_hours, exclude_min=True),
        ),
        "environment": (st.sampled_from(cat.environments_for(site, name)), st.just("pytorch")),
        "project": (st.sampled_from(list(cat.projects)), st.just("nn9999k")),
    }
    raw = {"site": site, "resource": name}
    for key, (good, edge) in near.items():
        if draw(st.booleans()):
            kind = draw(st.integers(0, 9))
            raw[key] = draw(JUNK if kind == 0 else edge if kind == 1 else good)
    return raw


MEMBERS = {"demo": ["ola", "kari"], "tc": ["alice", "bob"]}
CASES = st.sampled_from(["demo", "tc"]).flatmap(
    lambda cat: st.tuples(
        st.just(cat),
        st.sampled_from(MEMBERS[cat]) | st.sampled_from(sorted(USERS)),
        coherent(CATS[cat]) | coherent(CATS[cat]) | RAW,
    )
)


def check_in_bounds(req: SessionRequest, cat, user: UserFacts) -> None:
    site = cat.sites[req.site]
    res = site.resources[req.resource]
    lo = 0 if res.gpu is None or res.gpu.default == 0 else 1
    assert lo <= req.gpus <= (res.gpu.max if res.gpu else 0)
    assert res.cpus.min <= req.cpus <= res.cpus.max
    assert res.memory_gb.min <= req.memory_gb <= res.memory_gb.max
    assert 1 <= req.time_minutes <= res.max_hours * 60
    assert req.environment in cat.environments_for(req.site, req.resource)
    mine = projects_of(cat, user)
    assert req.project in mine or (req.project is None and not (site.backend == "slurm" and mine))
    assert req.reservation is None


def check_script(req: SessionRequest, cat) -> None:
    script = render_batch_script(
        req,
        cat,
        job_name="jupyterhub-alice",
        command=["/opt/naic/envs/base/bin/jupyterhub-singleuser"],
        workdir="/home/alice",
        output="/home/alice/jupyterhub-%j.log",
    )
    for line in script.splitlines():
        if line.startswith("#SBATCH "):
            assert set(line.partition("=")[2]) <= SBATCH_LINE_CHARS, line
        else:
            assert set(line) <= SHELL_LINE_CHARS, line


def test_generated_options_are_refused_in_a_sentence_or_safe():
    seen: Counter[str] = Counter()

    @settings(
        max_examples=600,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=CASES)
    def check(case):
        cat, user, raw = case
        try:
            req = parse_request(raw, CATS[cat], USERS[user])
        except RequestError as exc:
            message = str(exc)
            assert message and len(message.splitlines()) == 1 and len(message) < 600, message
            assert message.endswith(".")
            for word in ("Traceback", "pydantic", "validation error", "Error"):
                assert word not in message
            seen["refused"] += 1
            return
        check_in_bounds(req, CATS[cat], USERS[user])
        if CATS[cat].sites[req.site].backend == "slurm":
            check_script(req, CATS[cat])
            seen["script"] += 1
        seen["accepted"] += 1

    check()
    assert sum(seen[k] for k in ("refused", "accepted")) >= 500
    assert seen["accepted"] >= 100 and seen["script"] >= 30 and seen["refused"] >= 150, seen
