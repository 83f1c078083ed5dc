"""A one-screen, plain-text summary of what a catalogue offers (`naic catalogue check`)."""

from __future__ import annotations

from naic.hub.catalogue import Amount, Catalogue, Environment, Project, Resource, Site
from naic.hub.data.datasets import size_words, who_reads


def _amount(a: Amount, unit: str, plural: str = "") -> str:
    unit_at = (lambda n: unit + plural * (n != 1)) if plural else (lambda n: unit)
    if a.initial == a.max:  # fixed, or starts at the most: no "2 GB (up to 2)"
        return f"{a.max}{unit_at(a.max)}"
    return f"{a.initial}{unit_at(a.initial)} (up to {a.max})"


def _resource(name: str, r: Resource) -> str:
    parts = []
    if r.partition:
        parts.append(f"partition {r.partition}")
    if r.gpu:
        parts.append(f"up to {r.gpu.max} × {r.gpu.type}")
    parts += [
        _amount(r.cpus, " CPU", "s"),
        _amount(r.memory_gb, " GB"),
        f"≤ {r.max_hours:g} h",
    ]
    return f"    {name:<14} {r.title:<24} {', '.join(parts)}"


def _site(name: str, s: Site) -> str:
    where = f"slurm via {s.submit.host}" if s.backend == "slurm" and s.submit else s.backend
    line = f"  {name:<16} {s.title} ({where})"
    if s.session_env:
        line += f"; servers from {s.session_env}, environments as kernels"
    return line


def _environment(name: str, e: Environment) -> str:
    """`name (title; module A, B)`: what a kernel or server of it activates."""
    what = {"module": ", ".join(e.modules), "venv": e.venv, "conda": e.conda}[e.what]
    extra = f" + module {', '.join(e.modules)}" if e.modules and e.what != "module" else ""
    return f"{name} ({e.title}; {e.what} {what}{extra})"


def render_summary(cat: Catalogue, file: str) -> str:
    """Pure: the same catalogue gives the same text, byte for byte."""
    n_res = sum(len(s.resources) for s in cat.sites.values())
    lines = [
        f"{file}: OK — {cat.name}",
        f"Sites ({len(cat.sites)}, {n_res} resource{'s' * (n_res != 1)}):",
    ]
    for name, site in cat.sites.items():
        lines.append(_site(name, site))
        lines += [_resource(rn, r) for rn, r in site.resources.items()]
    envs = ", ".join(_environment(k, e) for k, e in cat.environments.items())
    lines.append(f"Environments: {envs or 'none'}")
    areas = []
    for k, st in cat.storage.items():
        notes = [f"{st.quota_gb:g} GB" if st.quota_gb else None]
        notes += ["read-only" if st.read_only else None]
        notes += [f"purged after {st.purge_days} days" if st.purge_days else None]
        extra = ", ".join(n for n in notes if n)
        areas.append(f"  {k:<16} {st.path}" + (f" ({extra})" if extra else ""))
    lines += [f"Storage ({len(cat.storage)}):", *areas] if areas else ["Storage: none"]
    projects = [
        f"  {k:<16} {p.title} — {_budget(p)}, "
        f"{len(p.members)} member{'s' * (len(p.members) != 1)}, "
        f"{len(p.groups)} group{'s' * (len(p.groups) != 1)}"
        for k, p in cat.projects.items()
    ]
    lines += [f"Projects ({len(projects)}):", *projects] if projects else ["Projects: none"]
    if cat.datasets:  # listed only where there are some: older summaries stay as they were
        lines.append(f"Datasets ({len(cat.datasets)}):")
        for k, d in cat.datasets.items():
            size = f", {size_words(d.size_gb)}" if d.size_gb else ""
            checked = ", manifest " + d.manifest if d.manifest else ""
            lines.append(f"  {k:<16} {d.path} at {d.site}{size}{checked}; for {who_reads(d)}")
    if cat.identity:
        i = cat.identity
        lines.append(f"Login: {i.title} ({i.issuer}), identity from {i.identity_claim}")
        sources = [f"claim {i.groups_claim}" if i.groups_claim else None]
        sources += [f"groups API {i.groups_api}" if i.groups_api else None]
        found = " and ".join(s for s in sources if s)
        lines.append(
            f"  groups from {found}"
            if found
            else "  groups: none, so projects' `groups` admit nobody"
        )
    return "\n".join(lines) + "\n"


def _budget(p: Project) -> str:
    if p.gpu_hours is None:
        return "no GPU-hour budget"
    per = "" if p.budget_period == "never" else f" per {p.budget_period}"
    return f"{p.gpu_hours:g} GPU-hours{per}"
