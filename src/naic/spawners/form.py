"""The spawn form: an HTML fragment drawn from the catalogue and the user's projects.

JupyterHub puts the fragment inside its spawn page's `<form>` and adds the Start button.
Every resource the user may start is one radio card (`resource_choice` = `site:resource`)
with its own inputs, named `site:resource:option`, so the form submits correctly without
JavaScript: `fields_from_form` keeps the chosen card's inputs and turns them back into the
plain options (`site`, `resource`, `gpus`, …) that `parse_request` validates. CSS shows
only the chosen card's inputs; a little script also asks the hub for the expected start.
Only what the user may choose is offered, with the catalogue's bounds on every input.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from naic.hub.catalogue import Amount, Catalogue, Resource, Site
from naic.spawners import form_any
from naic.spawners.request import UserFacts, projects_of

#: The radio group that picks site and resource together; its values are `site:resource`.
CHOICE = "resource_choice"


def render_form(
    cat: Catalogue, user: UserFacts, *, estimate_url: str, options_url: str = ""
) -> str:
    """The options form for `user`: pure, every catalogue string escaped. With
    `options_url` and GPUs at two sites, the "Any site" card (`form_any`) comes first,
    chosen."""
    mine = projects_of(cat, user)
    site_refusals = {name: _site_refusal(cat, site, mine) for name, site in cat.sites.items()}
    refusals = {
        (site_name, res_name): site_refusals[site_name]
        or _resource_refusal(cat, site_name, res_name)
        for site_name, site in cat.sites.items()
        for res_name in site.resources
    }
    anywhere = bool(options_url) and form_any.offers_any(cat)
    first = next((key for key, why in refusals.items() if why is None), None)
    first = None if anywhere else first

    out = [
        _STYLE,
        f'<div id="naic-form" class="naic-form" data-estimate-url="{_e(estimate_url)}"'
        + (f' data-options-url="{_e(options_url)}">' if anywhere else ">"),
    ]
    if anywhere:
        out += form_any.any_card(cat, mine, checked=True)
    for site_name, site in cat.sites.items():
        out.append('<fieldset class="naic-site mb-3">')
        out.append(f'<legend class="h5">{_e(site.title)}</legend>')
        if site_refusals[site_name]:
            out.append(f'<p class="form-text">{_e(site_refusals[site_name])}</p>')
        for res_name in site.resources:
            key = (site_name, res_name)
            why = refusals[key]
            # A site-wide reason is said once, above its resources.
            note = None if why == site_refusals[site_name] else why
            out += _card(cat, site, site_name, res_name, mine, why, note, key == first)
        out.append("</fieldset>")
    out += [
        '<p id="naic-estimate" class="naic-estimate alert alert-info" role="status"'
        ' aria-live="polite" hidden></p>',
        "</div>",
        _SCRIPT,
        *([form_any.SCRIPT] if anywhere else []),
    ]
    return "\n".join(out) + "\n"


def fields_from_form(formdata: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """The chosen card's fields under their plain option names, for `options_from_form`.

    `resource_choice=testcluster:a100` becomes `site` and `resource`; `testcluster:a100:gpus`
    becomes `gpus`; other cards' fields are dropped. Without `resource_choice` (a spawn
    from query arguments, say) the fields pass through unchanged.
    """
    values = formdata.get(CHOICE)
    if not values:
        return dict(formdata)
    choice = values[0]
    if choice == form_any.ANY:  # an ask, not a place: the router finds where
        prefix = f"{choice}:"
        asked = {k[len(prefix) :]: v for k, v in formdata.items() if k.startswith(prefix)}
        kept = {k: v for k, v in formdata.items() if ":" not in k and k != CHOICE}
        return {**kept, **asked, "any": ["1"]}
    site, _, resource = choice.partition(":")
    prefix = f"{choice}:"
    out: dict[str, list[str]] = {}
    for key, value in formdata.items():
        if key.startswith(prefix):
            out[key[len(prefix) :]] = value
        elif ":" not in key and key != CHOICE:
            out[key] = value  # transport such as `_xsrf`, or anything parse_request refuses
    return {**out, "site": [site], "resource": [resource]}  # the radio wins over look-alikes


# --- one resource card ------------------------------------------------------------------


def _site_refusal(cat: Catalogue, site: Site, mine: list[str]) -> str | None:
    """Why this user cannot start anything at this site, in words, or None."""
    if site.backend == "slurm" and cat.projects and not mine:
        return (
            f"Sessions at {site.title} are charged to a project, and you are in no project "
            "yet; ask for access to one on the hub's Access page."
        )
    return None


def _resource_refusal(cat: Catalogue, site_name: str, res_name: str) -> str | None:
    if not cat.environments_for(site_name, res_name):
        return "No software environment is offered here yet; ask the hub operators."
    return None


def _card(
    cat: Catalogue,
    site: Site,
    site_name: str,
    res_name: str,
    mine: list[str],
    why: str | None,
    note: str | None,
    checked: bool,
) -> list[str]:
    res = site.resources[res_name]
    key = f"{site_name}:{res_name}"
    ident = f"naic-{site_name}-{res_name}"
    attrs = " checked" if checked else ""
    attrs += " disabled" if why else ""
    out = [
        '<div class="naic-resource card mb-2">',
        '<div class="card-header">',
        '<div class="form-check mb-0">',
        f'<input class="form-check-input naic-pick" type="radio" name="{CHOICE}" id="{_e(ident)}"'
        f' value="{_e(key)}" aria-describedby="{_e(ident)}-summary" required{attrs}>',
        f'<label class="form-check-label fw-semibold" for="{_e(ident)}">{_e(res.title)}</label>',
        f'<div class="form-text mt-0" id="{_e(ident)}-summary">{_e(_summary(res))}</div>',
        "</div>",
        "</div>",
    ]
    if why:
        if note:
            out.append(f'<div class="card-body pt-0 form-text">{_e(note)}</div>')
        out.append("</div>")
        return out

    out.append('<div class="card-body naic-details">')
    out.append('<div class="row g-3">')
    if res.gpu is not None:
        lo = 0 if res.gpu.default == 0 else 1  # as parse_request: none only if that's the default
        if lo != res.gpu.max:
            what = f"{lo} to {res.gpu.max} {res.gpu.type.upper()} GPUs"
            out += _number(ident, key, "gpus", "GPUs", lo, res.gpu.max, res.gpu.default, 1, what)
    for option, label, unit in (("cpus", "CPUs", "CPUs"), ("memory_gb", "Memory (GB)", "GB")):
        a: Amount = getattr(res, option)
        if a.min != a.max:  # a fixed amount is in the summary, not an input
            out += _number(
                ident, key, option, label, a.min, a.max, a.initial, 1, f"{a.min} to {a.max} {unit}"
            )
    out += _hours(ident, key, res)
    out += ["</div>", '<div class="row g-3 mt-0">']  # the choices of software and project
    out += _select(
        ident,
        key,
        "environment",
        "Environment",
        [(e, cat.environments[e].title) for e in cat.environments_for(site_name, res_name)],
        "The software your session starts with.",
    )
    if site.backend == "slurm" and cat.projects and mine:
        out += _select(
            ident,
            key,
            "project",
            "Project",
            [(p, f"{cat.projects[p].title} ({p})") for p in mine],
            "The project this session's GPU and CPU hours are charged to.",
        )
    out += ["</div>", "</div>", "</div>"]
    return out


def _summary(res: Resource) -> str:
    """One line that tells resources apart: what a session there can have, at most."""
    parts = []
    if res.gpu is not None:
        fixed = res.gpu.max == 1 and res.gpu.default == 1
        parts.append(f"{'' if fixed else 'up to '}{res.gpu.max} × {res.gpu.type.upper()}")
    for amount, one, many in ((res.cpus, "CPU", "CPUs"), (res.memory_gb, "GB", "GB")):
        text = f"{amount.max} {one if amount.max == 1 else many}"
        parts.append(text if amount.min == amount.max else f"up to {text}")
    parts.append(f"up to {res.max_hours:g} h")
    return " · ".join(parts)


def _hours(ident: str, key: str, res: Resource) -> list[str]:
    # Browsers accept only min + k·step; a catalogue value off the quarter-hour grid
    # would make its own default unsubmittable, so the grid applies only where it fits.
    on_grid = all((4 * h).is_integer() for h in (res.max_hours, res.initial_hours))
    lo = min(0.25, res.max_hours)
    step = "0.25" if on_grid and lo == 0.25 else "any"
    help_ = f"{lo:g} to {res.max_hours:g} hours"
    return _number(ident, key, "hours", "Hours", lo, res.max_hours, res.initial_hours, step, help_)


def _number(
    ident: str,
    key: str,
    option: str,
    label: str,
    lo: float,
    hi: float,
    value: float,
    step: object,
    help_: str,
) -> list[str]:
    field = f"{ident}-{option}"
    return [
        '<div class="col-sm-6 col-md-3">',
        f'<label class="form-label" for="{_e(field)}">{_e(label)}</label>',
        f'<input class="form-control" type="number" id="{_e(field)}" name="{_e(key)}:{option}"'
        f' min="{lo:g}" max="{hi:g}" step="{step}" value="{value:g}" required'
        f' aria-describedby="{_e(field)}-help">',
        f'<div class="form-text" id="{_e(field)}-help">{_e(help_)}</div>',
        "</div>",
    ]


def _select(
    ident: str,
    key: str,
    option: str,
    label: str,
    choices: list[tuple[str, str]],
    help_: str,
) -> list[str]:
    field = f"{ident}-{option}"
    return [
        '<div class="col-sm">',
        f'<label class="form-label" for="{_e(field)}">{_e(label)}</label>',
        f'<select class="form-select" id="{_e(field)}" name="{_e(key)}:{option}"'
        f' aria-describedby="{_e(field)}-help">',
        *(f'<option value="{_e(value)}">{_e(title)}</option>' for value, title in choices),
        "</select>",
        f'<div class="form-text" id="{_e(field)}-help">{_e(help_)}</div>',
        "</div>",
    ]


def _e(text: str) -> str:
    return escape(text, quote=True)


# Without JavaScript, :has() alone shows only the chosen card's inputs (where supported;
# elsewhere every card's inputs show, and only the chosen card's are used).
_STYLE = """<style>
.naic-form .naic-resource:has(.naic-pick:checked) { border-color: var(--bs-primary); }
.naic-form .naic-resource:not(:has(.naic-pick:checked)) .naic-details { display: none; }
.naic-form .naic-resource .card-header { background: transparent; border-bottom: 0; }
.naic-form .naic-details { padding-top: 0; }
.naic-form legend { margin-bottom: .5rem; }
</style>"""

# The estimate asks the hub what Slurm expects for the chosen card's values; the newest
# answer wins, and nothing is asked while an input is out of bounds.
_SCRIPT = """<script>
(() => {
  const root = document.getElementById("naic-form");
  const out = document.getElementById("naic-estimate");
  const xsrf = (window.jhdata && window.jhdata.xsrf_token) || "";
  let timer = null;
  let asked = 0;
  function showChosen() {
    for (const card of root.querySelectorAll(".naic-resource")) {
      const details = card.querySelector(".naic-details");
      if (details) details.hidden = !card.querySelector(".naic-pick").checked;
    }
  }
  function say(text, problem) {
    out.hidden = false;
    out.textContent = text;
    out.classList.toggle("alert-info", !problem);
    out.classList.toggle("alert-warning", problem);
  }
  async function estimate() {
    const pick = root.querySelector(".naic-pick:checked");
    if (!pick || pick.value === "any") { out.hidden = true; return; }  // it lists its own
    const [site, resource] = pick.value.split(":");
    const query = new URLSearchParams({site, resource});
    const prefix = pick.value + ":";
    for (const field of pick.closest(".naic-resource").querySelectorAll("[name]")) {
      if (!field.name.startsWith(prefix)) continue;
      if (!field.checkValidity()) {
        const label = field.labels.length ? field.labels[0].textContent + ": " : "";
        say(label + field.validationMessage, true);
        return;
      }
      query.set(field.name.slice(prefix.length), field.value);
    }
    const mine = ++asked;
    say("Checking when this session would start…", false);
    let text = "The expected start could not be checked just now.";
    let problem = true;
    try {
      const resp = await fetch(root.dataset.estimateUrl + "?" + query, {
        headers: {"X-XSRFToken": xsrf, "Accept": "application/json"},
        credentials: "same-origin",
      });
      const body = await resp.json();
      if (body.message) { text = body.message; problem = !resp.ok; }
      if (resp.ok && body.age_s >= 10) text += " (checked " + body.age_s + " s ago)";
    } catch (err) { /* keep the plain sentence above */ }
    if (mine === asked) say(text, problem);
  }
  function later() { clearTimeout(timer); timer = setTimeout(estimate, 400); }
  root.addEventListener("change", () => { showChosen(); later(); });
  root.addEventListener("input", later);
  showChosen();
  estimate();
})();
</script>"""
