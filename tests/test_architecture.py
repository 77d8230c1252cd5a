"""The package import graph, built from the source: no cycle, and the web app never imports
the worker (scheduler) or its scheduling library."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEBAPP = ROOT / "webapp"


def node(module: str) -> str | None:
    """webapp.series.services → webapp.series; webapp.db → webapp.db; others → None."""
    parts = module.split(".")
    if parts[0] != "webapp" or len(parts) == 1:
        return None
    return ".".join(parts[:2])


def imported_modules(path: Path, package: str) -> list[tuple[str, int]]:
    """Every module the file imports, at any depth (a lazy import inside a function counts)."""
    found = []
    for statement in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(statement, ast.Import):
            found += [(alias.name, statement.lineno) for alias in statement.names]
        elif isinstance(statement, ast.ImportFrom):
            if statement.level:
                base = package.split(".")[: len(package.split(".")) - statement.level + 1]
                module = ".".join(base + ([statement.module] if statement.module else []))
            else:
                module = statement.module or ""
            found.append((module, statement.lineno))
            # `from webapp import events` imports the submodule webapp.events
            found += [(f"{module}.{alias.name}", statement.lineno) for alias in statement.names]
    return found


def import_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], str], list[str]]:
    edges: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    outside: list[str] = []
    for path in sorted(WEBAPP.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        relative = path.relative_to(ROOT).with_suffix("")
        module = ".".join(relative.parts).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        source = node(module)
        for target, line in imported_modules(path, package):
            if target.split(".")[0] in ("scheduler", "apscheduler"):
                outside.append(f"{relative}.py:{line} imports {target}")
            destination = node(target)
            if source and destination and destination != source:
                edges.setdefault(source, set()).add(destination)
                where.setdefault((source, destination), f"{relative}.py:{line}")
    return edges, where, outside


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle as a list of nodes (first == last), or None (depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(current: str) -> list[str] | None:
        state[current] = "open"
        stack.append(current)
        for following in sorted(edges.get(current, ())):
            if state.get(following) == "open":
                return stack[stack.index(following) :] + [following]
            if following not in state and (cycle := visit(following)):
                return cycle
        state[current] = "done"
        stack.pop()
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_package_import_graph_has_no_cycle():
    edges, where, _outside = import_graph()
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " → ".join(
        f"{a} ({where[(a, b)]})" for a, b in zip(cycle, cycle[1:], strict=False)
    )


def test_the_web_app_never_imports_the_worker():
    assert import_graph()[2] == []


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None
