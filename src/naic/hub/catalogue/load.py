"""Reading a catalogue: strict YAML (a key given twice is an error), validation into the
models, every problem collected into one `CatalogueError`."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from naic.hub.catalogue.checks import cross_check
from naic.hub.catalogue.model import Catalogue
from naic.hub.catalogue.problems import CatalogueError, Problem, check_names, problems_from


class _StrictLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; an operator wants to hear of it."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} appears twice in one mapping", mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def parse(text: str, file: str | Path = "<catalogue>") -> Catalogue:
    """Validate catalogue YAML text; raise `CatalogueError` listing every problem."""
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise CatalogueError(file, [Problem(where, f"is not valid YAML: {what}")]) from None
    if not isinstance(raw, dict):
        rule = "is empty" if raw is None else "must be a mapping with `name` and `sites` at the top"
        raise CatalogueError(file, [Problem("", f"the file {rule}")])
    problems = check_names(raw)
    try:
        cat = Catalogue.model_validate(raw)
    except ValidationError as exc:
        raise CatalogueError(file, problems + problems_from(exc)) from None
    problems += cross_check(cat)
    if problems:
        raise CatalogueError(file, problems)
    return cat


@functools.cache
def load_cached(path: str) -> Catalogue:
    """One parse per hub process: the hub validated the file when it started."""
    return load(path)


def load(path: str | Path) -> Catalogue:
    """Read and validate a catalogue file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        if isinstance(exc, UnicodeDecodeError):
            bad = exc.object[exc.start]
            reason = f"it is not UTF-8 text (byte {bad:#04x} at offset {exc.start})"
        raise CatalogueError(path, [Problem("", f"cannot be read: {reason}")]) from None
    return parse(text, path)


#: The catalogue `naic up` uses when none is given: the hub's own machine only
#: (src/naic/hub/defaults/, beside this package).
DEFAULT_CATALOGUE = Path(__file__).parent.parent / "defaults" / "catalogue.yaml"
