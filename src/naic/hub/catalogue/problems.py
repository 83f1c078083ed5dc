"""Problems an operator reads: `Problem` (file, field path, rule, bad value), `CatalogueError`
(all of a file's problems in one message), and the translation of pydantic's validation
errors and of badly formed names into them."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from naic.hub.catalogue.base import NAME_PATTERN, PATTERN_WORDS
from naic.hub.catalogue.model import Catalogue


@dataclass(frozen=True)
class Problem:
    path: str
    rule: str
    value: Any = None
    has_value: bool = False

    def render(self, file: str) -> str:
        where = f"{file}: {self.path}: " if self.path else f"{file}: "
        got = f" (got {_show(self.value)})" if self.has_value else ""
        return f"{where}{self.rule}{got}"


class CatalogueError(Exception):
    """A catalogue that cannot be used; `str()` is the message an operator reads."""

    def __init__(self, file: str | Path, problems: list[Problem]):
        self.file = str(file)
        self.problems = problems
        super().__init__(self.message)

    @property
    def message(self) -> str:
        n = len(self.problems)
        head = f"{self.file}: the service catalogue has {n} problem{'s' if n != 1 else ''}:"
        return "\n".join([head, *("  " + p.render(self.file) for p in self.problems)])


def _show(value: Any) -> str:
    text = (
        repr(value)
        if isinstance(value, str)
        else yaml.safe_dump(value, default_flow_style=True, width=10_000)
        .strip()
        .removesuffix("...")
        .strip()
    )
    return text if len(text) <= 60 else text[:57] + "..."


_RULES = {
    "missing": "is required",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "string_type": "must be text",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping of names to settings",
    "model_type": "must be a mapping of settings",
    "model_attributes_type": "must be a mapping of settings",
    "list_type": "must be a list",
    "string_too_short": "must not be empty",
}


def _rule(err: dict[str, Any], model_fields: list[str]) -> str:
    kind, ctx = err["type"], err.get("ctx", {})
    if kind in _RULES:
        return _RULES[kind]
    if kind == "greater_than_equal":
        return f"must be ≥ {ctx['ge']:g}"
    if kind == "greater_than":
        return f"must be > {ctx['gt']:g}"
    if kind == "less_than_equal":
        return f"must be ≤ {ctx['le']:g}"
    if kind == "too_short":
        return "must not be empty"
    if kind == "literal_error":
        return "must be one of: " + ctx["expected"].replace("'", "").replace(" or ", ", ")
    if kind == "string_pattern_mismatch":
        return PATTERN_WORDS.get(ctx["pattern"], f"must match {ctx['pattern']}")
    if kind == "extra_forbidden":
        near = difflib.get_close_matches(str(err["loc"][-1]), model_fields, n=1)
        return "is not a known field" + (f"; did you mean `{near[0]}`?" if near else "")
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return err["msg"][:1].lower() + err["msg"][1:]


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Field names allowed where `loc` points, for 'did you mean' hints."""
    model: Any = Catalogue
    key_next = False
    for part in loc[:-1]:
        if key_next:  # a name the operator chose (a site called `gpu`), never a field
            key_next = False
            continue
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        key_next = get_origin(ann) is dict
        inner = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        elif inner is not None:
            model = inner
        elif args and isinstance(args[-1], type) and issubclass(args[-1], BaseModel):
            model = args[-1]
    return list(model.model_fields)


def problems_from(exc: ValidationError) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        if "[key]" in loc:
            continue  # a name that is not text: `check_names` already said so
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        has_value = err["type"] != "missing" and not isinstance(err.get("input"), dict)
        out.append(Problem(path, _rule(err, _fields_at(loc)), err.get("input"), has_value))
    return out


def check_names(raw: dict[str, Any]) -> list[Problem]:
    bad = []
    sections = ["sites", "environments", "storage", "projects"]
    for section in sections:
        for key in (raw.get(section) or {}) if isinstance(raw.get(section), dict) else {}:
            if not isinstance(key, str) or not re.match(NAME_PATTERN, key):
                bad.append(Problem(f"{section}.{key}", _NAME_RULE, key, True))
    for site, spec in (
        (raw.get("sites") or {}).items() if isinstance(raw.get("sites"), dict) else ()
    ):
        resources = spec.get("resources") if isinstance(spec, dict) else None
        for key in resources if isinstance(resources, dict) else {}:
            if not isinstance(key, str) or not re.match(NAME_PATTERN, key):
                bad.append(Problem(f"sites.{site}.resources.{key}", _NAME_RULE, key, True))
    return bad


_NAME_RULE = "names must be lowercase letters, digits, - or _, starting with a letter"
