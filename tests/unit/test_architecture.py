"""The code's shape, as DESIGN.md draws it: dependencies point one way, no cycles, and
modules small enough to read in one sitting. Read from the source (every import, also
inside functions), so a lazy import cannot hide a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "naic").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The naic modules `name` imports (a `from package import module` is the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]  # fmt: skip
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _within(name: str, area: str) -> bool:
    return name == area or name.startswith(area + ".")


def test_spawners_know_the_hub_only_by_its_catalogue() -> None:
    wrong = {
        (m, t)
        for m, targets in GRAPH.items()
        if _within(m, "naic.spawners")
        for t in targets
        if _within(t, "naic.hub") and not _within(t, "naic.hub.catalogue")
    }
    assert not wrong, f"naic.spawners imports the hub beyond its catalogue: {sorted(wrong)}"


def test_extensions_know_the_hub_only_through_its_rest_api() -> None:
    wrong = {
        (m, t)
        for m, targets in GRAPH.items()
        if _within(m, "naic.extensions")
        for t in targets
        if _within(t, "naic.hub") or _within(t, "naic.spawners")
    }
    assert not wrong, f"naic.extensions imports hub or spawner code: {sorted(wrong)}"


def test_the_catalogue_is_a_leaf() -> None:
    wrong = {
        (m, t)
        for m, targets in GRAPH.items()
        if _within(m, "naic.hub.catalogue")
        for t in targets
        if not _within(t, "naic.hub.catalogue")
    }
    assert not wrong, sorted(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (or a self-loop)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_itself_round_a_cycle() -> None:
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_one() -> None:  # the check above can fail
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_every_module_reads_in_one_sitting() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in MODULES.values()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
