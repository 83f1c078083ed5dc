"""The spawn form's "Any site" card: say what the session needs, the hub finds where.

Drawn above the sites when more than one site offers GPUs. Its inputs are named
`any:option` (`gpus`, `gpu_memory_gb`, `gpu_model`, `hours`, `environment`, `project`);
submitted without JavaScript, the hub starts the soonest option (`naic.spawners.moving`).
The script asks `GET /hub/api/naic/options` as the user changes the ask and lists every
option with its expected start and why, and what differs from the soonest; picking one
(`any:pick`, `site:resource`) pins it. Every catalogue string is escaped here, and the
script writes the hub's answers as text, never as HTML.
"""

from __future__ import annotations

from html import escape

from naic.hub.catalogue import Catalogue

#: The card's radio value, and the prefix of its inputs.
ANY = "any"


def offers_any(cat: Catalogue) -> bool:
    """Pure: whether the card is worth showing: GPUs at two sites or more."""
    return sum(any(r.gpu for r in s.resources.values()) for s in cat.sites.values()) >= 2


def any_card(cat: Catalogue, mine: list[str], checked: bool) -> list[str]:
    """Pure: the card's HTML lines."""
    gpus = [r.gpu for s in cat.sites.values() for r in s.resources.values() if r.gpu]
    hours = max(r.max_hours for s in cat.sites.values() for r in s.resources.values() if r.gpu)
    models = sorted({g.model or g.type.upper() for g in gpus})
    most = max(g.max for g in gpus)
    out = [
        '<fieldset class="naic-site mb-3">',
        '<legend class="h5">Any site</legend>',
        '<div class="naic-resource card mb-2">',
        '<div class="card-header">',
        '<div class="form-check mb-0">',
        f'<input class="form-check-input naic-pick" type="radio" name="resource_choice"'
        f' id="naic-any" value="{ANY}" aria-describedby="naic-any-summary" required'
        f"{' checked' if checked else ''}>",
        '<label class="form-check-label fw-semibold" for="naic-any">'
        "Wherever it starts soonest</label>",
        '<div class="form-text mt-0" id="naic-any-summary">Say what the session needs; the '
        "hub asks every site that offers it and starts the soonest, or the one you pick.</div>",
        "</div>",
        "</div>",
        '<div class="card-body naic-details">',
        '<div class="row g-3">',
        *_input("gpus", "GPUs", f"1 to {most} GPUs", 'min="1"', f'max="{most}" value="1" required'),
        *_input(
            "gpu_memory_gb",
            "GPU memory (GB)",
            "At least this much on each GPU; empty: any",
            'min="1"',
            'max="4096" placeholder="any"',
        ),
        *_input(
            "hours",
            "Hours",
            f"0.25 to {hours:g} hours",
            'min="0.25"',
            f'max="{hours:g}" step="0.25" value="1" required',
        ),
        "</div>",
        '<div class="row g-3 mt-0">',
        *_select("gpu_model", "GPU model", [("", "Any model"), *((m, m) for m in models)]),
        *_select(
            "environment",
            "Environment",
            [("", "Each site's default"), *((k, e.title) for k, e in cat.environments.items())],
        ),
    ]
    if mine:
        projects = [(p, f"{cat.projects[p].title} ({p})") for p in mine]
        out += _select("project", "Project", [("", "Each site's default"), *projects])
    out += [
        "</div>",
        '<div id="naic-options" class="naic-options mt-3" role="group"'
        ' aria-label="Where it could start" aria-live="polite"></div>',
        "</div>",
        "</div>",
        "</fieldset>",
    ]
    return out


def _escape(text: str) -> str:
    return escape(text, quote=True)


def _input(option: str, label: str, help_: str, low: str, rest: str) -> list[str]:
    field = f"naic-any-{option}"
    return [
        '<div class="col-sm-6 col-md-4">',
        f'<label class="form-label" for="{field}">{_escape(label)}</label>',
        f'<input class="form-control" type="number" id="{field}" name="{ANY}:{option}"'
        f' {low} {rest} aria-describedby="{field}-help">',
        f'<div class="form-text" id="{field}-help">{_escape(help_)}</div>',
        "</div>",
    ]


def _select(option: str, label: str, choices: list[tuple[str, str]]) -> list[str]:
    field = f"naic-any-{option}"
    return [
        '<div class="col-sm">',
        f'<label class="form-label" for="{field}">{_escape(label)}</label>',
        f'<select class="form-select" id="{field}" name="{ANY}:{option}">',
        *(f'<option value="{_escape(v)}">{_escape(t)}</option>' for v, t in choices),
        "</select>",
        "</div>",
    ]


# Asks the options API for the card's values and lists the answer as radios `any:pick`
# (the soonest checked); the newest answer wins. Text only: the answer's strings are
# the catalogue's and the sites', never markup.
SCRIPT = """<script>
(() => {
  const root = document.getElementById("naic-form");
  const list = document.getElementById("naic-options");
  const card = document.getElementById("naic-any");
  if (!root || !list || !card) return;
  const xsrf = (window.jhdata && window.jhdata.xsrf_token) || "";
  let timer = null;
  let asked = 0;
  function line(tag, text, cls) {
    const el = document.createElement(tag);
    el.textContent = text;
    if (cls) el.className = cls;
    return el;
  }
  async function compare() {
    if (!card.checked) return;
    const query = new URLSearchParams();
    for (const field of card.closest(".naic-resource").querySelectorAll("[name^='any:']")) {
      if (field.name === "any:pick" || field.value === "") continue;
      if (!field.checkValidity()) {
        list.replaceChildren(line("p", field.labels[0].textContent + ": " +
                                  field.validationMessage, "alert alert-warning"));
        return;
      }
      query.set(field.name.slice(4), field.value);
    }
    const mine = ++asked;
    list.replaceChildren(line("p", "Asking every site that offers this…", "form-text"));
    let body = null;
    try {
      const resp = await fetch(root.dataset.optionsUrl + "?" + query, {
        headers: {"Accept": "application/json", "X-XSRFToken": xsrf}, credentials: "same-origin"});
      body = await resp.json();
    } catch (err) { /* said below */ }
    if (mine !== asked) return;
    if (!body || !body.options) {
      const why = (body && body.message) || "The sites could not be compared just now.";
      list.replaceChildren(line("p", why, "alert alert-warning"));
      return;
    }
    const items = body.options.map((o, i) => {
      const id = "naic-option-" + i;
      const row = document.createElement("div");
      row.className = "form-check naic-option";
      const pick = document.createElement("input");
      Object.assign(pick, {type: "radio", name: "any:pick", id, className: "form-check-input",
                           value: o.site + ":" + o.resource});
      pick.checked = i === body.default;
      pick.disabled = o.answer === "refused";
      const label = line("label", o.title + (i === body.default ? " (soonest)" : ""),
                         "form-check-label fw-semibold");
      label.htmlFor = id;
      row.append(pick, label, line("div", o.message || "", "form-text naic-when"));
      for (const d of o.differs || []) row.append(line("div", d, "form-text naic-differs"));
      return row;
    });
    if (body.message) items.unshift(line("p", body.message, "alert alert-warning"));
    list.replaceChildren(...items);
  }
  function later() { clearTimeout(timer); timer = setTimeout(compare, 400); }
  root.addEventListener("change", (e) => { if (e.target.name !== "any:pick") later(); });
  root.addEventListener("input", (e) => { if (e.target.name.startsWith("any:")) later(); });
  compare();
})();
</script>"""
