"""The layers' import rules: the format layer imports no torch, hydra or pandas; the writer never
imports the reader; the input side imports neither; no circles, counting imports inside functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "aslfr"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """aslfr module -> the aslfr modules it imports anywhere in its body (function-level too)."""
    modules = {module_name(p): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def depth(graph: dict[str, set[str]]) -> int:
    """Longest import chain (modules on it), for an acyclic graph."""
    memo: dict[str, int] = {}

    def d(v):
        if v not in memo:
            memo[v] = 1 + max((d(w) for w in graph[v] if w != v), default=0)
        return memo[v]

    return max(d(v) for v in graph)


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[1:2] == ["commands"] or (parts[-1] == "__main__" and parts[1] != "bench"):  # entry points: `python -m aslfr.convert`
        return "command"
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ("format", "source", "convert", "data", "bench")) \
        else "command"


def test_no_circles():
    graph = import_graph()
    assert cycles(graph) == []
    production = {m: {d for d in deps if _layer(d) != "bench"} for m, deps in graph.items() if _layer(m) != "bench"}
    assert depth(production) <= 9  # merge -> convert.cli -> ... -> format.tfrecord -> format; the bench sits on top


@pytest.mark.parametrize("layer, forbidden", [
    ("format", {"source", "convert", "data", "command", "bench"}),
    ("source", {"convert", "data", "command", "bench"}),
    ("convert", {"data", "command", "bench"}),
    ("data", {"convert", "command", "bench"}),
    ("command", {"bench"}),
])
def test_layers_import_only_below(layer, forbidden):
    graph = import_graph()
    wrong = sorted(f"{m} -> {d}" for m, deps in graph.items() if _layer(m) == layer
                   for d in deps if _layer(d) in forbidden and d not in ("aslfr", "aslfr.errors")
)
    assert not wrong


def test_commands_share_the_public_cli_helper():
    graph = import_graph()
    for command in ("verify", "inspect", "merge", "stats", "synthetic", "convert"):
        assert "aslfr.commands.cli" in graph[f"aslfr.commands.{command}"], command
    private = [p for p in PACKAGE.rglob("*.py") if "import _fail" in p.read_text() or "_fail(" in p.read_text()]
    assert not private


def test_format_layer_imports_no_torch_hydra_or_pandas():
    """Import every module of the format layer in a fresh interpreter and look at sys.modules."""
    mods = sorted(m for m in import_graph() if m.startswith("aslfr.format"))
    code = ("import sys\n" + "".join(f"import {m}\n" for m in mods)
            + "print(sorted(m for m in ('torch', 'hydra', 'pandas', 'omegaconf', 'tfrecord') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
    assert len(mods) >= 8


def test_writer_never_imports_the_reader():
    """Running a conversion's modules in a fresh interpreter loads nothing of aslfr.data."""
    code = ("import sys\nimport aslfr.convert.converter, aslfr.commands.convert, aslfr.convert.merge\n"
            "print(sorted(m for m in sys.modules if m.startswith('aslfr.data')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_record_tools_import_no_torch():
    """verify, stats and inspect decode records with the format layer only."""
    code = ("import sys\nimport aslfr.commands.verify, aslfr.commands.stats, aslfr.format.verify, aslfr.data.summary, aslfr.convert.stats\n"
            "aslfr.convert.stats.from_records([])\n"
            "print('torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"
