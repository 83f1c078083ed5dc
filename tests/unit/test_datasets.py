"""The datasets catalogue: the section's rules and messages, and who may read what."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from naic.hub.catalogue import CatalogueError, parse
from naic.hub.data.datasets import dataset_json, may_read, refusal, who_reads
from naic.spawners.request import UserFacts

TESTCLUSTER = Path(__file__).resolve().parents[2] / "examples" / "catalogue-testcluster.yaml"


def catalogue(**datasets):
    raw = yaml.safe_load(TESTCLUSTER.read_text())
    raw["datasets"] = datasets
    return parse(yaml.safe_dump(raw), "catalogue.yaml")


def problems(**datasets) -> list[str]:
    with pytest.raises(CatalogueError) as err:
        catalogue(**datasets)
    return [f"{p.path}: {p.rule}" for p in err.value.problems]


GOOD = {"title": "Iris", "site": "testcluster", "path": "/data/iris", "licence": "CC BY 4.0",
        "readers": {"projects": ["demo"]}}  # fmt: skip


def test_the_shipped_test_catalogue_offers_two_datasets() -> None:
    cat = parse(TESTCLUSTER.read_text(), str(TESTCLUSTER))
    assert list(cat.datasets) == ["imagenet-mini", "iris"]
    assert cat.datasets["imagenet-mini"].manifest == "SHA256SUMS"


def test_a_dataset_names_its_readers_site_and_projects_that_exist() -> None:
    got = problems(a={**GOOD, "readers": {}})
    assert any("datasets.a.readers" in p and "names nobody" in p for p in got), got
    got = problems(a={**GOOD, "readers": {"everyone": True, "projects": ["demo"]}})
    assert any("one or the other" in p for p in got), got
    got = problems(a={**GOOD, "site": "nowhere"})
    assert any(p.startswith("datasets.a.site: names no site") for p in got), got
    got = problems(a={**GOOD, "readers": {"projects": ["ghost"]}})
    assert any(p.startswith("datasets.a.readers.projects[0]: names no project") for p in got), got
    got = problems(a={**GOOD, "path": "/data/../etc"})
    assert any("datasets.a.path" in p and "`..`" in p for p in got), got
    got = problems(a={**GOOD, "manifest": "../SUMS"})
    assert any("datasets.a.manifest" in p for p in got), got


def facts(name: str, groups=()) -> UserFacts:
    return UserFacts(name=name, identities=frozenset({name}), groups=frozenset(groups))


def test_who_may_read_by_project_group_or_everyone() -> None:
    cat = catalogue(
        a=GOOD,
        b={**GOOD, "readers": {"groups": ["ml"]}},
        c={**GOOD, "readers": {"everyone": True}},
        d={**GOOD, "readers": {"projects": ["demo"], "groups": ["ml", "vision"]}},
    )
    alice, mallory, ml = facts("alice"), facts("mallory"), facts("kari", ["ml"])
    assert [may_read(cat.datasets[n], cat, alice) for n in "abcd"] == [True, False, True, True]
    assert [may_read(cat.datasets[n], cat, mallory) for n in "abcd"] == [False, False, True, False]
    assert [may_read(cat.datasets[n], cat, ml) for n in "abcd"] == [False, True, True, True]
    assert who_reads(cat.datasets["d"]) == "members of project demo and the groups ml, vision"
    assert who_reads(cat.datasets["c"]) == "everyone who can log in"
    assert refusal("a", cat.datasets["a"]) == (
        "Iris (a) is for members of project demo, and you are not among them. Ask its "
        "project's lead to add you, or ask for access to the project on the home page."
    )
    shown = dataset_json("a", cat.datasets["a"], cat, False)
    assert "path" not in shown and "manifest" not in shown and shown["may_read"] is False
    assert dataset_json("a", cat.datasets["a"], cat, True)["path"] == "/data/iris"
