"""The package's layers, checked on its imports (docs/architecture.md, "Layers").

Module-level imports only (a function may import a later layer lazily; ``TYPE_CHECKING``
blocks are for annotations): the graph is acyclic, each layer imports only from the layers
before it, and the run engine's isolation rules hold.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tdabench

ROOT = Path(tdabench.__file__).resolve().parent

#: Layers in import order: a module may import only from its own layer or earlier ones.
#: A module is matched by its longest listed prefix.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("tdabench.errors", "tdabench.compat", "tdabench.run.measure", "tdabench.run.tempfiles", "tdabench.run.pool", "tdabench.methods.lm",
     "tdabench.formats.names", "tdabench.formats.gptdynamics_release", "tdabench.recorder.lexicon", "tdabench.recorder.tokenizer",
     "tdabench.recorder.generate", "tdabench.hookspecs"),
    ("tdabench.data", "tdabench.config", "tdabench.scores", "tdabench.scoring", "tdabench.formats.jsonl", "tdabench.methods.guards",
     "tdabench.methods.zero_line", "tdabench.sources.splits"),
    ("tdabench.simulator", "tdabench.formats", "tdabench.results.provenance", "tdabench.results.record"),
    ("tdabench.methods", "tdabench.run.views", "tdabench.run.worker", "tdabench.run.executors", "tdabench.run.registry",
     "tdabench.sources.synthetic", "tdabench.results", "tdabench.recorder"),
    ("tdabench.run.context", "tdabench.run.cells", "tdabench.run.report", "tdabench.sources", "tdabench.testing"),
    ("tdabench.run",),
    ("tdabench.leaderboard",),
    ("tdabench.cli", "tdabench"),
)


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p) for p in ROOT.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """tdabench modules imported at module level (``from tdabench import x`` counts as ``tdabench.x``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for n in ast.walk(node):
            if isinstance(n, ast.ImportFrom) and n.module and n.module.split(".")[0] == "tdabench":
                subs = {f"{n.module}.{a.name}" for a in n.names} & MODULES
                out |= subs or {n.module}
            elif isinstance(n, ast.Import):
                out |= {a.name for a in n.names if a.name.split(".")[0] == "tdabench"}
    return out


def _layer(module: str) -> int:
    best, layer = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, layer = len(p), i
    assert layer >= 0, f"{module} is in no layer of tests/test_layers.py"
    return layer


GRAPH = {_name(p): _imports(p) for p in sorted(ROOT.rglob("*.py"))}


def test_every_module_imports_only_earlier_layers() -> None:
    bad = [f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
           for m, deps in GRAPH.items() for d in deps if d not in ("tdabench", m) and _layer(d) > _layer(m)]
    assert not bad, "\n".join(bad)


def test_the_import_graph_is_acyclic() -> None:
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in GRAPH.get(m, ()):
            if d in ("tdabench", m) or d not in GRAPH:
                continue
            assert state.get(d) != 1, "import cycle: " + " -> ".join([*stack, m, d])
            if d not in state:
                visit(d, [*stack, m])
        state[m] = 2

    for m in GRAPH:
        if m not in state:
            visit(m, [])


def test_the_run_engine_keeps_the_truth_from_methods() -> None:
    # The worker sees only what views built: no benchmark, no results, no runner.
    assert {d for d in GRAPH["tdabench.run.worker"] if d.startswith("tdabench")} <= {"tdabench.simulator", "tdabench.run.measure"}
    # Results know nothing of the engine that writes them; the leaderboard reads results only.
    for m, deps in GRAPH.items():
        if m.startswith("tdabench.results"):
            assert not {d for d in deps if d.startswith(("tdabench.run", "tdabench.leaderboard", "tdabench.cli"))}, m
        if m.startswith("tdabench.leaderboard"):
            assert not deps & {"tdabench.run.cells", "tdabench.run.runner", "tdabench.run.views", "tdabench.run.worker"}, m
        if m.startswith("tdabench.methods"):
            assert all(d.startswith(("tdabench.methods", "tdabench.simulator", "tdabench.data", "tdabench.errors", "tdabench.config"))
                       for d in deps), m
