"""The layers of docs/architecture.md, checked from the code's own imports.

`media` is the ground floor and imports none of the others; `signalling` (transports) and `agent_runtime` (the
agent) build on it and never import each other; `presets` is a catalog that imports neither transports, the agent
nor the API; nothing imports `control_api`; the load tester is a client of the server, not part of it. And no
import cycle among product modules: imports inside functions count (a lazy import is still a dependency), and so do
imports made only for type checking (two modules that name each other's types are one design, split in two files).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("media", "signalling", "agent_runtime", "presets", "control_api", "loadtest")

# package -> packages it must never import
FORBIDDEN = {
    "media": {"signalling", "agent_runtime", "presets", "control_api", "loadtest"},
    "signalling": {"agent_runtime", "presets", "control_api", "loadtest"},
    "agent_runtime": {"signalling", "control_api", "loadtest"},
    "presets": {"signalling", "agent_runtime", "control_api", "loadtest"},
    "control_api": {"loadtest"},
    "loadtest": {"control_api"},
}
# The `talkwire loadtest` subcommand hands over to the load tester; nothing else in the server imports it.
ALLOWED = {("control_api.cli", "loadtest")}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _product_files() -> list[Path]:
    files: list[Path] = []
    for package in PRODUCT:
        folder = ROOT / package
        if folder.is_dir():
            files += [p for p in folder.rglob("*.py") if "migrations" not in p.parts]
    return sorted(files)


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    prefix = ".".join(base + ([child.module] if child.module else []))
                else:
                    prefix = child.module or ""
                found.add(prefix)
                found.update(f"{prefix}.{alias.name}" for alias in child.names)
            visit(child)

    visit(tree)
    return {name for name in found if name.split(".")[0] in PRODUCT}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in _product_files()}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set()
        for name in _imports(path, module):
            # `from a.b import c` names either module a.b.c or a name in a.b: keep the longest that is a module
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def test_layers_only_import_downwards() -> None:
    wrong = []
    for module, targets in _graph().items():
        package = module.split(".")[0]
        for target in targets:
            top = target.split(".")[0]
            if top in FORBIDDEN[package] and (module, top) not in ALLOWED:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), each listed in order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycles() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "modules that import each other:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_walk_sees_the_product() -> None:
    graph = _graph()
    assert "media.leg" in graph and "control_api.app" in graph
    assert "media.frames" in graph["media.leg"]
