"""Rules that span sections of a valid catalogue: references must exist, requests must fit
the hardware."""

from __future__ import annotations

from naic.hub.catalogue.model import Catalogue
from naic.hub.catalogue.problems import Problem
from naic.hub.catalogue.sites import Gpu, Site


def cross_check(cat: Catalogue) -> list[Problem]:
    """Rules that span sections: references must exist, requests must fit the hardware."""
    out: list[Problem] = []
    envs = set(cat.environments)
    for site_name, site in cat.sites.items():
        at = f"sites.{site_name}"
        for i, env in enumerate(site.environments or []):
            if env not in envs:
                out.append(
                    Problem(f"{at}.environments[{i}]", _unknown("environment", envs), env, True)
                )
        for res_name, res in site.resources.items():
            rat = f"{at}.resources.{res_name}"
            for i, env in enumerate(res.environments or []):
                if env not in envs:
                    out.append(
                        Problem(
                            f"{rat}.environments[{i}]", _unknown("environment", envs), env, True
                        )
                    )
                elif site.environments is not None and env not in site.environments:
                    out.append(
                        Problem(f"{rat}.environments[{i}]", "is not offered by its site", env, True)
                    )
            if site.backend == "slurm" and res.partition is None:
                out.append(Problem(f"{rat}.partition", "is required on a Slurm site"))
            if site.backend != "slurm" and res.partition is not None:
                out.append(
                    Problem(
                        f"{rat}.partition",
                        "only Slurm resources have a partition",
                        res.partition,
                        True,
                    )
                )
            if res.gpu is not None:
                out.extend(_gpu_fits(site, rat, res.gpu))
        if site.session_env is None and site.backend != "local":
            # Without a session environment the server runs from the chosen environment.
            for name in site.environments or cat.environments:
                if name in envs and cat.environments[name].conda:
                    out.append(
                        Problem(
                            f"environments.{name}.conda",
                            f"a conda environment is a kernel only: site {site_name} needs "
                            "`session_env` (the venv with naic-hub[session] its servers run from)",
                        )
                    )
    out.extend(_datasets(cat))
    for name, project in cat.projects.items():
        for i, site in enumerate(project.sites or []):
            if site not in cat.sites:
                why = _unknown("site", set(cat.sites))
                out.append(Problem(f"projects.{name}.sites[{i}]", why, site, True))
    return out


def _datasets(cat: Catalogue) -> list[Problem]:
    out = []
    for name, ds in cat.datasets.items():
        at = f"datasets.{name}"
        if ds.site not in cat.sites:
            out.append(Problem(f"{at}.site", _unknown("site", set(cat.sites)), ds.site, True))
        for i, project in enumerate(ds.readers.projects):
            if project not in cat.projects:
                why = _unknown("project", set(cat.projects))
                out.append(Problem(f"{at}.readers.projects[{i}]", why, project, True))
    return out


def _gpu_fits(site: Site, at: str, gpu: Gpu) -> list[Problem]:
    if site.gpus_per_node is None:
        if site.backend == "local":
            return [
                Problem(
                    f"{at}.gpu",
                    "the hub's own machine declares no GPUs; add `gpus_per_node` to its site",
                )
            ]
        return []
    if gpu.type not in site.gpus_per_node:
        have = ", ".join(site.gpus_per_node) or "none"
        return [
            Problem(
                f"{at}.gpu.type",
                f"is not a GPU type of this site, which has: {have}",
                gpu.type,
                True,
            )
        ]
    has = site.gpus_per_node[gpu.type]
    if gpu.max > has:
        return [
            Problem(
                f"{at}.gpu.max",
                f"must be ≤ {has}, the {gpu.type} GPUs one node of this site has",
                gpu.max,
                True,
            )
        ]
    return []


def _unknown(kind: str, known: set[str]) -> str:
    return f"names no {kind} of this catalogue (known: {', '.join(sorted(known)) or 'none'})"
