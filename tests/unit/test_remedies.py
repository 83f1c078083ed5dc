"""After a session ended: a remedy for each way one ends, and the site's help links on the
home page (the template rendered here on a stand-in of JupyterHub's page)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import jinja2
import markupsafe
import pytest

from naic.hub.sessions import culler
from naic.hub.sessions.remedies import REMEDIES, remedy, site_help
from naic.spawners.slurm_text import END_REASONS
from tests.unit.examples import DEMO, TC

TEMPLATE = Path(__file__).parents[2] / "src" / "naic" / "hub" / "templates" / "home.html"


@pytest.mark.parametrize("state", sorted(set(END_REASONS) - {"COMPLETED"}))
def test_every_slurm_end_has_a_remedy(state: str) -> None:
    assert remedy(END_REASONS[state]), state


def test_the_cullers_reasons_have_remedies() -> None:
    view = SimpleNamespace(
        gpus=2, site_title="Saga",
        policy=SimpleNamespace(gpu_idle_s=1800, idle_s=3600, max_age_s=86400),
    )  # fmt: skip
    assert remedy(culler.stop_text("gpu-idle", view)).startswith("Its GPUs sat idle")
    assert remedy(culler.stop_text("idle", view)).startswith("Nothing happened in it")
    assert remedy(culler.stop_text("max-age", view)).startswith("Sessions here have a maximum")
    assert remedy("it could not start: the environment /x is missing on this node").startswith(
        "Its log's last lines say why"
    )
    assert remedy("the session ended") == ""


def test_the_node_pools_reasons_have_remedies() -> None:
    """What `naic.spawners.nodes` says when a cloud machine goes away mid-session."""
    lost = "the cloud machine vm1 stopped answering"
    assert remedy(lost).startswith("The machine it ran on stopped answering: nothing you did")
    assert remedy("the server on vm1 ended") == ""  # it ended by itself: nothing to do
    # A start that failed is that, whatever its log's last line says.
    why = "it could not start: the login node 10.0.0.1:22 stopped answering (timeout)."
    assert remedy(why).startswith("Its log's last lines say why")


SAGA = DEMO.sites["saga"].model_copy(
    update={"docs_url": "https://documentation.sigma2.no/", "support_url": "mailto:support@nris.no"}
)
HELPED = DEMO.model_copy(update={"sites": {**DEMO.sites, "saga": SAGA}})


def test_site_help_comes_from_the_catalogue() -> None:
    assert site_help(HELPED)["saga"] == {
        "title": "Saga (Sigma2)",
        "docs_url": "https://documentation.sigma2.no/",
        "support_url": "mailto:support@nris.no",
    }
    assert site_help(TC)["local"]["docs_url"] == ""  # a site without links


def render_home(last_end: dict, help_: dict) -> str:
    loader = jinja2.DictLoader({"templates/home.html": "{% block main %}{% endblock %}",
                                "home": TEMPLATE.read_text()})  # fmt: skip
    spawner = SimpleNamespace(name="", active=False, last_end=last_end)
    user = SimpleNamespace(all_spawners=lambda: [spawner])
    env = jinja2.Environment(loader=loader, autoescape=True)
    return env.get_template("home").render(
        user=user, naic_remedies=REMEDIES, naic_help=help_, naic_projects=None, base_url="/hub/"
    )


def test_the_help_page_lists_every_remedy_and_each_sites_help() -> None:
    source = (TEMPLATE.parent / "naic-help.html").read_text()
    loader = jinja2.DictLoader({"page.html": "{% block main %}{% endblock %}", "help": source})
    page = (
        jinja2.Environment(loader=loader, autoescape=True)
        .get_template("help")
        .render(remedies=REMEDIES, sites=site_help(HELPED).values())
    )
    for _, title, text in REMEDIES:
        assert f"<dt>{title}</dt>" in page and str(markupsafe.escape(text)) in page
    saga = '<strong>Saga (Sigma2)</strong>:\n      <a href="https://documentation.sigma2.no/">'
    assert saga in page
    assert "<strong>This machine</strong>:\n      ask the hub's operators" in page


def test_the_home_page_says_what_to_do_and_where_to_get_help() -> None:
    last = {"reason": "out of memory", "at": "2026-12-04 04:40 UTC", "site": "saga"}
    page = render_home(last, site_help(HELPED))
    assert '<span class="naic-remedy">It needed more memory than it asked for.' in page
    assert '<a class="naic-docs alert-link" href="https://documentation.sigma2.no/">' in page
    assert (
        'href="mailto:support@nris.no?subject=naic-hub%3A%20a%20session%20at%20Saga%20%28Sigma2%29'
        "%20ended&amp;body=Session%3A%20default%0ASite%3A%20Saga%20%28Sigma2%29%0AEnded%3A%20"
        "2026-12-04%2004%3A40%20UTC%0AReason%3A%20out%20of%20memory%0ALog%3A%20-%0A%0A"
        'What%20happened%3A%0A">report a problem</a>'
    ) in page
    # A site without help links, and a reason without a remedy: neither line.
    page = render_home({**last, "reason": "the session ended", "site": "local"}, site_help(HELPED))
    assert "naic-remedy" not in page and "naic-help" not in page
