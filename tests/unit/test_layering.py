"""The package's layering, read from the source with ``ast`` (nothing is imported).

Dependencies point one way so that each package can be read and tested alone (docs/CONVENTIONS.md,
"Layers"): the CLI and the demo on top, then the API, the service, ingest/alerts/simulator,
storage, the pure rules, and the model and small helpers at the bottom. A higher layer may
import a lower one, never the reverse; no two modules import each other, directly or round a
circle; every SQL statement is written in ``ioc/storage``; and no router imports another (what
routers share lives in ``ioc/api/params.py``, ``deps.py``, ``errors.py`` or ``scoping.py``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Layer of each top-level part of ``ioc``; a part not listed is only checked for circles.
RANK = {
    "cli": 6, "demo": 6,
    "api": 5,
    "service": 4,
    "ingest": 3, "alerts": 3, "simulator": 3,
    "storage": 2,
    "rules": 1,
    "model": 0, "fast": 0, "durations": 0, "tasks": 0, "metrics": 0, "devices": 0,
    "settings": 0, "logs": 0, "mqtt_client": 0, "embedded": 0,
}
# A string constant (also a piece of an f-string) that starts an SQL statement.
SQL = re.compile(r"\b(SELECT\s+[\w*(]|INSERT\s+INTO|UPDATE\s+\w+\s+(AS\s+\w+\s+)?SET"
                 r"|DELETE\s+FROM|CREATE\s+(TABLE|INDEX))", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Module:
    name: str  # dotted, e.g. ioc.api.routers.events
    path: Path
    root: Path  # the folder holding ``ioc/``
    tree: ast.Module

    @property
    def part(self) -> str:
        """The top-level part of ``ioc`` the module belongs to (``api``, ``service``, ...)."""
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else parts[0]

    def where(self, node: ast.AST) -> str:
        return f"{self.path.relative_to(self.root)}:{getattr(node, 'lineno', 0)}"


def load_modules(root: Path = ROOT) -> dict[str, Module]:
    """Every module below ``root/ioc``, parsed, by dotted name."""
    modules = {}
    for path in sorted((root / "ioc").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = Module(name, path, root,
                               ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return modules


def imported_names(module: Module) -> Iterator[tuple[str, ast.AST]]:
    """Every ``ioc...`` name the module imports (also under TYPE_CHECKING and in functions):
    for ``from X import Y`` both ``X.Y`` (Y may be a submodule) and ``X``."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.name.split(".")
                if module.path.name != "__init__.py":
                    anchor = anchor[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}", node


def resolve(name: str, modules: dict[str, Module]) -> str | None:
    """The module a dotted name lives in (``ioc.api.deps.KeyCache`` -> ``ioc.api.deps``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name if name and name != "ioc" else None


def import_graph(modules: dict[str, Module]) -> dict[str, dict[str, ast.AST]]:
    """module -> {imported module: the import statement}, within ``ioc``."""
    graph: dict[str, dict[str, ast.AST]] = {}
    for name, module in modules.items():
        edges: dict[str, ast.AST] = {}
        for imported, node in imported_names(module):
            if imported.split(".")[0] != "ioc":
                continue
            target = resolve(imported, modules)
            if target is not None and target != name:
                edges.setdefault(target, node)
        graph[name] = edges
    return graph


def upward_imports(modules: dict[str, Module]) -> list[str]:
    found = []
    for name, edges in import_graph(modules).items():
        low = RANK.get(modules[name].part)
        for target, node in edges.items():
            high = RANK.get(modules[target].part)
            if low is not None and high is not None and high > low:
                found.append(f"{modules[name].where(node)}: {name} ({low}) imports {target} ({high})")
    return found


def circles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    graph = {name: list(edges) for name, edges in import_graph(modules).items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(graph[target])))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def sql_outside_storage(modules: dict[str, Module]) -> list[str]:
    return [module.where(node)
            for module in modules.values() if module.part != "storage"
            for node in ast.walk(module.tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and SQL.search(node.value)]


def router_imports(modules: dict[str, Module]) -> list[str]:
    routers = "ioc.api.routers."
    return [f"{modules[name].where(node)}: {name} imports {target}"
            for name, edges in import_graph(modules).items() if name.startswith(routers)
            for target, node in edges.items() if target.startswith(routers)]


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return load_modules()


def test_no_upward_imports(modules: dict[str, Module]) -> None:
    found = upward_imports(modules)
    assert not found, "a lower layer imports a higher one:\n" + "\n".join(found)


def test_no_import_circles(modules: dict[str, Module]) -> None:
    found = [" <-> ".join(c) for c in circles(modules)]
    assert not found, "modules import each other:\n" + "\n".join(found)


def test_every_sql_statement_is_in_storage(modules: dict[str, Module]) -> None:
    found = sql_outside_storage(modules)
    assert not found, "SQL outside ioc/storage:\n" + "\n".join(found)


def test_routers_do_not_import_each_other(modules: dict[str, Module]) -> None:
    found = router_imports(modules)
    assert not found, "a router imports another (shared parts go to api/params.py):\n" + \
        "\n".join(found)


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """The checks find an upward import, a circle and stray SQL in a made-up package."""
    sources = {
        "ioc/__init__.py": "",
        "ioc/storage/__init__.py": "",
        "ioc/storage/keys.py": "from ioc.api import deps\nQ = 'SELECT id FROM api_keys'\n",
        "ioc/api/__init__.py": "",
        "ioc/api/deps.py": "from ..storage.keys import Q\n",
        "ioc/api/routers/__init__.py": "",
        "ioc/api/routers/a.py": "from ioc.api.routers import b\n",
        "ioc/api/routers/b.py": "X = 'DELETE FROM alerts'\n",
        "ioc/rules/__init__.py": "def f():\n    from ioc.storage.keys import Q\n",
    }
    for rel, text in sources.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    made_up = load_modules(tmp_path)
    assert sorted(u.split(": ", 1)[1] for u in upward_imports(made_up)) == [
        "ioc.rules (1) imports ioc.storage.keys (2)",
        "ioc.storage.keys (2) imports ioc.api.deps (5)",
    ]
    assert circles(made_up) == [["ioc.api.deps", "ioc.storage.keys"]]
    assert sql_outside_storage(made_up) == ["ioc/api/routers/b.py:1"]
    assert router_imports(made_up) == [
        "ioc/api/routers/a.py:1: ioc.api.routers.a imports ioc.api.routers.b"]
