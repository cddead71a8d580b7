"""The shape of the package, checked on its source: no import circle, Spark internals in one module,
executor-side code apart from the driver's, no bare numeric timeout in the engine."""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "sparkgd"

# pyspark.ml's extension API for Params, Estimators and Models (what pyspark's own Python estimators and
# its docs for custom ones use): private by name, but the way to write a pyspark.ml stage.
ML_EXTENSION_API = {"_dummy", "_set", "_setDefault", "_copyValues", "_transform", "_fit", "_input_kwargs"}
SPARK_INTERNALS = "sparkgd/engine/_spark.py"
EXECUTOR_SIDE = "sparkgd/engine/executor.py"
CONCURRENT = ("resident.py", "executor.py", "aggregation.py", "turns.py", "channel.py", "blocks.py", "reuse.py",
              "remote.py", "arrow.py", "fs.py")


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


MODULES = _modules()


def _rel(p: pathlib.Path) -> str:
    return str(p.relative_to(PACKAGE.parent))


def _imports(name: str, path: pathlib.Path, everything: bool = False) -> set[str]:
    """The sparkgd modules ``name`` imports anywhere in its source (inside functions too); every module
    imported, with ``everything``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return found if everything else {m for m in found if m in MODULES and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
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

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _defined_names() -> set[str]:
    """Every name sparkgd itself defines: functions, classes, attributes it assigns, parameters."""
    names = set()
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return names


def _private_spark_uses(path: pathlib.Path, ours: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if node.attr not in ours and node.attr not in ML_EXTENSION_API:
                found.append(f"{_rel(path)}:{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("pyspark", "py4j")):
            found += [f"{_rel(path)}:{node.lineno}: import {a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_private_spark_names_are_used_in_engine_spark_only():
    ours = _defined_names() - {"_jvm", "_jsc", "_jdf", "_jrdd", "_active_spark_context", "_gateway", "_jconf"}
    found = [hit for path in MODULES.values() if _rel(path) != SPARK_INTERNALS
             for hit in _private_spark_uses(path, ours)]
    assert found == []
    assert _private_spark_uses(MODULES["sparkgd.engine._spark"], ours)  # the check sees them where they are


def test_the_executor_side_imports_nothing_of_the_driver():
    path = MODULES["sparkgd.engine.executor"]
    driver_side = {m for m in MODULES if m.startswith(("sparkgd.engine", "sparkgd.ml", "sparkgd.rdd", "sparkgd.job"))}
    allowed = {"sparkgd.engine.channel", "sparkgd.engine.timeouts"}
    assert _imports("sparkgd.engine.executor", path) & driver_side <= allowed
    tree = ast.parse(path.read_text())
    spark = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("pyspark")
             for a in n.names}
    assert spark <= {"TaskContext"}  # the executor's own view of Spark, nothing that needs a SparkContext


_TIMED_CALLS = {"settimeout", "wait", "join", "sleep", "create_connection", "acquire", "accept", "get"}
_CLOCKS = ("monotonic", "time.time", "deadline", "since", "started", "start", "now", "left")


def _numbers(node: ast.AST) -> list[ast.Constant]:
    """``node`` if it is a number other than 0 and 1, or such numbers among the arguments of min/max in it."""
    if isinstance(node, ast.Constant):
        return [node] if type(node.value) in (int, float) and node.value not in (0, 1) else []
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("min", "max"):
        return [n for a in node.args for n in _numbers(a)]
    return []


def _bare_timeouts(source: str, where: str) -> list[str]:
    """Numbers given as a timeout or poll interval, or added to or compared with a clock reading."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        nums = []
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            nums += [n for k in node.keywords if k.arg and "timeout" in k.arg for n in _numbers(k.value)]
            if name in _TIMED_CALLS:
                nums += [n for a in node.args for n in _numbers(a)]
        elif isinstance(node, (ast.BinOp, ast.Compare)):
            sides = [node.left, node.right] if isinstance(node, ast.BinOp) else [node.left, *node.comparators]
            if any(any(c in ast.unparse(s) for c in _CLOCKS) for s in sides):
                nums += [s for s in sides if isinstance(s, ast.Constant) and type(s.value) in (int, float)
                         and s.value not in (0, 1)]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.args[len(node.args.args) - len(node.args.defaults):] + node.args.kwonlyargs
            defaults = list(node.args.defaults) + [d for d in node.args.kw_defaults if d is not None]
            nums += [d for a, d in zip(args, defaults) if "timeout" in a.arg and isinstance(d, ast.Constant)
                     and type(d.value) in (int, float)]
        hits += [f"{where}:{n.lineno}: {n.value}" for n in nums]
    return hits


def test_no_bare_numeric_timeout_in_the_engine():
    engine = [p for name, p in MODULES.items() if name.startswith("sparkgd.engine.") and p.name in CONCURRENT]
    assert len(engine) == len(CONCURRENT)
    assert [hit for p in engine for hit in _bare_timeouts(p.read_text(), _rel(p))] == []


@pytest.mark.parametrize("source", ["sock.settimeout(30.0)", "t.join(timeout=5)", "d = time.monotonic() + 2.0",
                                    "ok = now - since >= 0.05", "def f(timeout=20.0):\n    pass",
                                    "c.wait(min(left, 0.5))"])
def test_the_timeout_check_sees_each_form(source):
    assert _bare_timeouts(source, "probe")


def test_the_layout_table_names_every_module_and_only_tests_that_exist():
    import re

    text = (PACKAGE.parent / "docs" / "layout.md").read_text()
    rows = [line.split("|") for line in text.splitlines() if line.startswith("| `")]
    named = {m for r in rows for m in re.findall(r"`([\w/]+\.py)`", r[1])}
    tests = {t for r in rows for t in re.findall(r"`([\w/]+\.py)`", r[3])}
    modules = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py")}
    assert modules - named == set() and named - modules == set()
    assert {t for t in tests if not (PACKAGE.parent / "tests" / t).is_file()} == set()


def test_core_imports_no_spark():
    """core needs no Spark at all: it knows pyspark's vectors and LabeledPoint by their attributes."""
    found = {(name, m) for name, path in MODULES.items() if name.startswith("sparkgd.core")
             for m in _imports(name, path, everything=True) if m.split(".")[0] == "pyspark"}
    assert found == set()
