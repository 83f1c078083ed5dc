"""The spawn form: golden HTML, escaping, bounds, and what a browser would submit from it."""

from __future__ import annotations

import os
from html.parser import HTMLParser

import pytest
import yaml

from naic.hub.catalogue import parse
from naic.spawners.form import fields_from_form, render_form
from naic.spawners.request import (
    RequestError,
    SessionRequest,
    UserFacts,
    options_from_form,
    parse_request,
)
from tests.unit.examples import ALICE, DEMO, GOLDEN, REPO, TC

CAROL = UserFacts("carol", frozenset({"carol"}))  # in no project
URL = "/hub/api/naic/estimate"


def assert_golden(text: str, name: str) -> None:
    """Byte for byte; NAIC_UPDATE_GOLDEN=1 rewrites the file (then review the diff)."""
    path = GOLDEN / name
    if os.environ.get("NAIC_UPDATE_GOLDEN"):
        path.write_bytes(text.encode())
    assert text.encode() == path.read_bytes()


class Fields(HTMLParser):
    """The form's controls, as a browser sees them: name, type, attributes, options."""

    def __init__(self, html: str):
        super().__init__()
        self.controls: list[dict] = []
        self._select: dict | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input":
            self.controls.append({"tag": tag, **a})
        elif tag == "select":
            self._select = {"tag": tag, "options": [], **a}
            self.controls.append(self._select)
        elif tag == "option" and self._select is not None:
            self._select["options"].append(a["value"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None

    def submit(self, choice: str) -> dict[str, list[str]]:
        """What a browser without JavaScript posts after clicking the radio `choice`."""
        data: dict[str, list[str]] = {}
        for c in self.controls:
            if "disabled" in c:
                continue
            if c.get("type") == "radio":
                if c["value"] == choice:
                    data.setdefault(c["name"], []).append(c.get("value", ""))  # none: empty
            elif c["tag"] == "select":
                data.setdefault(c["name"], []).append(c["options"][0])
            else:
                data.setdefault(c["name"], []).append(c.get("value", ""))  # none: empty
        return data

    def named(self, name: str) -> dict:
        return next(c for c in self.controls if c.get("name") == name)

    def radios(self) -> list[dict]:
        return [c for c in self.controls if c.get("type") == "radio"]


def submitted(cat, user: UserFacts, choice: str) -> SessionRequest:
    form = Fields(render_form(cat, user, estimate_url=URL))
    return parse_request(options_from_form(fields_from_form(form.submit(choice))), cat, user)


# --- golden files ------------------------------------------------------------------------


def test_testcluster_form_for_alice_in_project_demo():
    assert_golden(render_form(TC, ALICE, estimate_url=URL), "form-testcluster-alice.html")


def test_testcluster_form_for_a_user_in_no_project():
    assert_golden(render_form(TC, CAROL, estimate_url=URL), "form-testcluster-no-project.html")


# --- what the form offers ------------------------------------------------------------------


def test_every_resource_is_one_radio_and_the_first_is_chosen():
    radios = Fields(render_form(TC, ALICE, estimate_url=URL)).radios()
    assert [r["value"] for r in radios] == [
        "local:cpu-small",
        "testcluster:cpu",
        "testcluster:a100",
    ]
    assert {r["name"] for r in radios} == {"resource_choice"}
    assert ["checked" in r for r in radios] == [True, False, False]
    assert not any("disabled" in r for r in radios)


def test_number_inputs_carry_the_catalogue_bounds_and_gpus_only_where_there_are_gpus():
    form = Fields(render_form(TC, ALICE, estimate_url=URL))
    a100 = TC.sites["testcluster"].resources["a100"]
    gpus = form.named("testcluster:a100:gpus")
    assert (gpus["min"], gpus["max"], gpus["value"], gpus["step"]) == ("1", "4", "1", "1")
    cpus = form.named("testcluster:a100:cpus")
    assert (cpus["min"], cpus["max"], cpus["value"]) == ("1", str(a100.cpus.max), "2")
    mem = form.named("testcluster:a100:memory_gb")
    assert (mem["min"], mem["max"], mem["value"]) == ("1", "64", "4")
    hours = form.named("testcluster:a100:hours")
    assert (hours["min"], hours["max"], hours["value"], hours["step"]) == (
        "0.25",
        "24",
        "2",
        "0.25",
    )
    names = {c["name"] for c in form.controls}
    assert "testcluster:cpu:gpus" not in names
    # Fixed amounts (1 CPU, 2 GB on this machine) are facts in the summary, not inputs.
    assert "local:cpu-small:cpus" not in names and "local:cpu-small:memory_gb" not in names


def test_projects_only_the_users_own_and_only_at_slurm_sites():
    cat = parse(
        (REPO / "examples" / "catalogue-testcluster.yaml").read_text()
        + "  other: {title: Other, members: [bob]}\n"
    )
    form = Fields(render_form(cat, ALICE, estimate_url=URL))
    assert form.named("testcluster:a100:project")["options"] == ["demo"]
    assert "local:cpu-small:project" not in {c["name"] for c in form.controls}


def test_a_user_in_no_project_cannot_pick_a_site_that_charges_projects():
    html = render_form(TC, CAROL, estimate_url=URL)
    radios = {r["value"]: r for r in Fields(html).radios()}
    assert "checked" in radios["local:cpu-small"]
    assert "disabled" in radios["testcluster:a100"] and "disabled" in radios["testcluster:cpu"]
    assert "you are in no project yet; ask for access to one on the hub&#x27;s Access page." in html


def test_a_resource_without_environments_cannot_be_picked_and_says_why():
    raw = yaml.safe_load((REPO / "examples" / "catalogue-testcluster.yaml").read_text())
    raw["sites"]["local"]["environments"] = []
    html = render_form(parse(yaml.safe_dump(raw)), ALICE, estimate_url=URL)
    radios = {r["value"]: r for r in Fields(html).radios()}
    assert "disabled" in radios["local:cpu-small"] and "checked" not in radios["local:cpu-small"]
    assert "checked" in radios["testcluster:a100"]  # the first one that can start
    assert "No software environment is offered here yet; ask the hub operators." in html


def test_a_member_by_identity_sees_the_demo_catalogues_project():
    ola = UserFacts("ola", frozenset({"ola@uio.no"}))
    form = Fields(render_form(DEMO, ola, estimate_url=URL))
    assert form.named("saga:a100:project")["options"] == ["nn1234k"]
    assert form.named("saga:a100:environment")["options"] == ["python", "pytorch"]


def test_hours_off_the_quarter_hour_grid_accept_any_value():
    text = (REPO / "examples" / "catalogue-testcluster.yaml").read_text()
    cat = parse(text.replace("max_hours: 8}", "max_hours: 0.1}"))
    hours = Fields(render_form(cat, ALICE, estimate_url=URL)).named("local:cpu-small:hours")
    assert (hours["min"], hours["max"], hours["value"], hours["step"]) == (
        "0.1",
        "0.1",
        "0.1",
        "any",
    )


# --- submitting without JavaScript ------------------------------------------------------------


@pytest.mark.parametrize("choice", ["local:cpu-small", "testcluster:cpu", "testcluster:a100"])
def test_the_form_as_rendered_submits_a_valid_request_for_every_resource(choice):
    req = submitted(TC, ALICE, choice)
    site, resource = choice.split(":")
    assert (req.site, req.resource) == (site, resource)
    res = TC.sites[site].resources[resource]
    assert req.cpus == res.cpus.initial and req.memory_gb == res.memory_gb.initial
    assert req.hours == res.initial_hours
    assert req.project == ("demo" if site == "testcluster" else None)


def test_only_the_chosen_cards_fields_count():
    form = {
        "resource_choice": ["testcluster:a100"],
        "testcluster:a100:gpus": ["3"],
        "testcluster:cpu:cpus": ["99"],  # another card: ignored
        "local:cpu-small:hours": ["-1"],
        "_xsrf": ["token"],
    }
    assert fields_from_form(form) == {
        "site": ["testcluster"],
        "resource": ["a100"],
        "gpus": ["3"],
        "_xsrf": ["token"],
    }
    opts = options_from_form(fields_from_form(form))
    assert opts == {"site": "testcluster", "resource": "a100", "gpus": 3}


def test_the_radio_decides_site_and_resource():
    form = {"resource_choice": ["local:cpu-small"], "site": ["testcluster"], "resource": ["a100"]}
    assert fields_from_form(form) == {"site": ["local"], "resource": ["cpu-small"]}


def test_plain_option_names_pass_through_for_query_spawns():
    assert fields_from_form({"site": ["local"], "hours": ["2"]}) == {
        "site": ["local"],
        "hours": ["2"],
    }


@pytest.mark.parametrize(
    ("form", "sentence"),
    [
        (
            {"resource_choice": ["testcluster:a100"], "testcluster:a100:gpus": ["9"]},
            '"gpus" must be a whole number from 1 to 4 for NVIDIA A100 (fake) at Test cluster '
            "(Slurm on this machine); you asked for 9.",
        ),
        (
            {"resource_choice": ["nowhere:x\n#SBATCH"]},
            '"site" "nowhere" is not offered on this hub; choose one of: local, testcluster.',
        ),
        (
            {"resource_choice": ["testcluster:a100"], "colour": ["blue"]},
            '"colour" is not a session option; the options are: site, resource, gpus, cpus, '
            "memory_gb, hours, environment, project.",
        ),
        (
            {"resource_choice": ["testcluster:a100"], "testcluster:a100:project": ["other"]},
            'You are not a member of project "other"; your projects are: demo.',
        ),
    ],
)
def test_a_tampered_form_gets_the_requests_sentence(form, sentence):
    with pytest.raises(RequestError) as caught:
        parse_request(options_from_form(fields_from_form(form)), TC, ALICE)
    assert str(caught.value) == sentence


# --- escaping ---------------------------------------------------------------------------------

HOSTILE = '<script>alert("x")</script> & \' "><img src=x onerror=alert(1)>'


def test_catalogue_titles_and_the_url_are_escaped():
    raw = yaml.safe_load((REPO / "examples" / "catalogue-testcluster.yaml").read_text())
    raw["sites"]["local"]["title"] = HOSTILE
    raw["sites"]["testcluster"]["resources"]["a100"]["title"] = HOSTILE
    raw["environments"]["python"]["title"] = HOSTILE
    raw["projects"]["demo"]["title"] = HOSTILE
    cat = parse(yaml.safe_dump(raw))
    html = render_form(cat, ALICE, estimate_url='/hub/api"><script>x()</script>')
    body = html.split("<script>\n", 1)[0]  # the form's own script is static and comes last
    assert "<script" not in body and "<img" not in body
    assert (
        html.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;")
        == 1 + 1 + 3 + 2
    )  # site, resource, env ×3, project ×2
    assert 'data-estimate-url="/hub/api&quot;&gt;&lt;script&gt;x()&lt;/script&gt;"' in html
    # Titles never become values: only catalogue keys are submitted.
    assert Fields(html).named("testcluster:a100:project")["options"] == ["demo"]


# --- the "Any site" card (#22) -------------------------------------------------------------

OPTIONS_URL = "/hub/api/naic/options"


def two_gpu_sites():
    """The test cluster and a cloud pool of L40S (48 GB), as the federation test has them."""
    raw = yaml.safe_load((REPO / "examples" / "catalogue-testcluster.yaml").read_text())
    raw.pop("datasets")
    raw["sites"]["cloud"] = {
        "title": "Cloud <pool>", "backend": "nodes",
        "ssh": {"user": "root", "identity_file": "/k", "known_hosts": "/h"},
        "hosts": {"vm1": {"address": "10.0.0.2", "gpus": {"l40s": 2}}},
        "resources": {"l40s": {"title": "NVIDIA L40S", "cpus": 1, "memory_gb": 2, "max_hours": 4,
                               "gpu": {"type": "l40s", "max": 2, "model": "NVIDIA L40S",
                                       "memory_gb": 48}}},
    }  # fmt: skip
    return parse(yaml.safe_dump(raw))


def test_any_site_card_golden_and_first_when_two_sites_offer_gpus():
    cat = two_gpu_sites()
    html = render_form(cat, ALICE, estimate_url=URL, options_url=OPTIONS_URL)
    assert_golden(html, "form-any-site-alice.html")
    radios = Fields(html).radios()
    assert radios[0]["value"] == "any"
    assert ["checked" in r for r in radios] == [True] + [False] * (len(radios) - 1)
    form = Fields(html)
    assert form.named("any:gpu_model")["options"] == ["", "NVIDIA A100", "NVIDIA L40S"]
    assert form.named("any:project")["options"] == ["", "demo"]
    gpus = form.named("any:gpus")
    assert (gpus["min"], gpus["max"]) == ("1", "4")  # the most any one site offers
    assert form.named("any:hours")["max"] == "24"
    assert 'data-options-url="/hub/api/naic/options"' in html
    assert "Cloud <pool>" not in html and "Cloud &lt;pool&gt;" in html  # escaped


def test_one_gpu_site_or_no_options_url_has_no_any_card():
    assert 'value="any"' not in render_form(TC, ALICE, estimate_url=URL, options_url=OPTIONS_URL)
    assert 'value="any"' not in render_form(two_gpu_sites(), ALICE, estimate_url=URL)


def test_any_site_submits_the_ask_without_javascript():
    cat = two_gpu_sites()
    form = Fields(render_form(cat, ALICE, estimate_url=URL, options_url=OPTIONS_URL))
    fields = fields_from_form(form.submit("any"))
    assert options_from_form(fields) == {"any": "1", "gpus": 1, "hours": 1.0}
    picked = fields_from_form({"resource_choice": ["any"], "any:gpus": ["2"],
                               "any:gpu_memory_gb": ["40"], "any:pick": ["cloud:l40s"],
                               "testcluster:a100:gpus": ["4"], "_xsrf": ["t"]})  # fmt: skip
    assert options_from_form(picked) == {
        "gpus": 2, "gpu_memory_gb": "40", "pick": "cloud:l40s", "any": "1"
    }  # fmt: skip
