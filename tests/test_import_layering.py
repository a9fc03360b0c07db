"""PrismRL's own imports: no cycle between modules through module-level imports, and every import
(module level or inside a function) follows the layering

    orchestrator -> actors -> (policies, rewards) -> common

with `benchmarks` free to import anything and imported by nothing but the CLI's lazy dispatch
(`orchestrator/cli/bench.py`). `cluster` is the launch kit: it may import `orchestrator` and
below. The imports are read from the source with `ast`; nothing is executed.
"""
from __future__ import annotations

import ast
import os
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("common", "policies", "rewards", "actors", "orchestrator", "cluster", "benchmarks")

# What each top-level package may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "policies": {"common"},
    "rewards": {"common"},
    "actors": {"policies", "rewards", "common"},
    "orchestrator": {"actors", "policies", "rewards", "common"},
    "cluster": {"orchestrator", "actors", "policies", "rewards", "common"},
    "benchmarks": {"orchestrator", "actors", "policies", "rewards", "common", "cluster"},
}
# The one module outside `benchmarks` that may name it, and only inside a function.
BENCH_DISPATCH = "orchestrator.cli.bench"


@dataclass(frozen=True)
class Import:
    source: str       # importing module
    target: str       # imported project module
    line: int
    module_level: bool


def module_name(path: str) -> str:
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def project_modules() -> dict[str, str]:
    """Module name -> file path, for every .py file of the project's packages."""
    found = {}
    for pkg in PACKAGES:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, pkg)):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "__pycache__"))]
            for f in filenames:
                if f.endswith(".py"):
                    path = os.path.join(dirpath, f)
                    found[module_name(path)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(name: str, modules: dict[str, str]) -> str | None:
    """The longest project module that `name` (a dotted import path) is or lies in."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: str, modules: dict[str, str]) -> list[Import]:
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
                continue
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                names = [f"{base}.{a.name}" for a in child.names] + [base]
            else:
                visit(child, module_level)
                continue
            targets = {_resolve(n, modules) for n in names}
            for target in sorted(t for t in targets if t and t != module):
                found.append(Import(module, target, child.lineno, module_level))
    visit(tree, True)
    return found


def all_imports() -> list[Import]:
    modules = project_modules()
    return [imp for m, p in sorted(modules.items()) for imp in imports_of(m, p, modules)]


def cycles(edges: list[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == node:
                            break
                    if len(component) > 1:
                        result.append(sorted(component))
            elif nxt not in index:
                index[nxt] = low[nxt] = counter
                counter += 1
                stack.append(nxt)
                on_stack.add(nxt)
                work.append((nxt, iter(graph[nxt])))
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
    return result


def layering_violations(imports: list[Import]) -> list[str]:
    bad = []
    for imp in imports:
        src_pkg, dst_pkg = imp.source.split(".")[0], imp.target.split(".")[0]
        if src_pkg == dst_pkg:
            continue
        if dst_pkg == "benchmarks" and src_pkg != "benchmarks":
            if imp.source == BENCH_DISPATCH and not imp.module_level:
                continue
            bad.append(f"{imp.source}:{imp.line} imports {imp.target} (only {BENCH_DISPATCH} may, inside a function)")
        elif dst_pkg not in ALLOWED[src_pkg]:
            bad.append(f"{imp.source}:{imp.line} imports {imp.target} ({src_pkg} may import only "
                       f"{', '.join(sorted(ALLOWED[src_pkg])) or 'nothing of PrismRL'})")
    return bad


def test_no_import_cycle_through_module_level_imports():
    edges = [(i.source, i.target) for i in all_imports() if i.module_level]
    assert len(edges) > 200, "the import reader found too few imports: is it reading the project?"
    assert cycles(edges) == []


def test_every_import_follows_the_layering():
    assert layering_violations(all_imports()) == []


def test_the_checks_catch_a_cycle_and_a_layering_breach():
    assert cycles([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]) == [["a", "b", "c"]]
    assert cycles([("a", "b"), ("b", "c")]) == []
    breaches = layering_violations([
        Import("policies.x", "rewards.y", 3, True),
        Import("actors.x", "orchestrator.config.schema", 4, False),
        Import("orchestrator.cli.bench", "benchmarks.gpu", 5, True),
        Import("orchestrator.cli.bench", "benchmarks.gpu", 6, False),
        Import("benchmarks.gpu", "orchestrator.cli.bench", 7, True),
    ])
    assert [b.split(" ")[0] for b in breaches] == ["policies.x:3", "actors.x:4", "orchestrator.cli.bench:5"]


def test_relative_and_from_imports_resolve_to_modules(tmp_path):
    modules = {"pkg": "", "pkg.a": "", "pkg.b": "", "pkg.sub": "", "pkg.sub.c": ""}
    src = tmp_path / "c.py"
    src.write_text("from .. import a\nfrom ..b import thing\nimport pkg.sub\n"
                   "def f():\n    from pkg.sub import c\n")
    found = imports_of("pkg.sub.c", str(src), modules)
    assert [(i.target, i.module_level) for i in found] == [("pkg", True), ("pkg.a", True), ("pkg.b", True),
                                                          ("pkg.sub", True), ("pkg.sub", False)]
