"""The layout is the data flow: imports point down the layers, never up or in a circle.

errors/fileio/registry/progress → graph → attribution → search → (tasks, data) → models
→ explainer/result → runs → analysis → viz → cli. A module may import its own layer
or an earlier one. Imports inside functions count too, and so does a registry entry
named by a string (``Lazy("package.module:name")``): a lazy import neither hides an
upward arrow nor a cycle (the only exceptions are listed, with their reason, in
:data:`ALLOWED`). Imports under ``if TYPE_CHECKING:`` are for annotations and count
for the layers but not for cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "influence_patterns"

#: Layer of each top-level module or package of influence_patterns (lower = nearer the model).
LAYERS = {
    "errors": 0, "fileio": 0, "locking": 0, "registry": 0, "progress": 0, "threads": 0, "__init__": 0,
    "graph": 1,
    "attribution": 2,
    "search": 3,
    "data": 4, "tasks": 4,
    "models": 5,
    "result": 6, "explainer": 6, "config": 6,
    "runs": 7,
    "analysis": 8,
    "viz": 9,
    "cli": 10,
}

#: (importing module, function) → reason. Imports inside these functions may point up
#: the layers and are left out of the cycle check.
ALLOWED = {
    ("influence_patterns.result", "show"): "the result's own presentation methods (inseq style: "
    "a result can show itself); viz is imported when the method is called, so computing "
    "an Explanation never loads the terminal or plotting code",
    ("influence_patterns.result", "plot"): "as show: matplotlib loads only when a figure is asked for",
    ("influence_patterns.result", "_repr_html_"): "as show: the notebook's HTML view of a result",
    ("influence_patterns.result", "interactive"): "as show: the Plotly view, loaded when asked for",
    ("influence_patterns.runs.reader", "_repr_html_"): "as show: the notebook's summary of a run",
    ("influence_patterns.analysis.analyze", "_repr_html_"): "as show: the notebook's summary of an analysis",
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_lazy(node: ast.AST) -> bool:
    """``Lazy("package.module:name")``: a registry entry imported on first lookup is an import."""
    return (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == "Lazy"
            and len(node.args) == 1 and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str))


def _imports(path: Path) -> list[tuple[str, str | None, bool, int]]:
    """(imported project module or name, enclosing function or None, for annotations
    only?, line) for every import of the project in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= {id(n) for n in ast.walk(node)}
    out: list[tuple[str, str | None, bool, int]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and function is None else function
            names: list[str] = []
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                names = [child.module] + [f"{child.module}.{a.name}" for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level:
                raise AssertionError(f"{path}: use absolute imports (line {child.lineno})")
            elif isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif _is_lazy(child):
                module, _, attribute = child.args[0].value.partition(":")  # type: ignore[attr-defined]
                names = [module] + ([f"{module}.{attribute}"] if attribute else [])
            for name in names:
                if name.split(".")[0] == "influence_patterns":
                    out.append((name, function, id(child) in typing_only, child.lineno))
            visit(child, inner)

    visit(tree, None)
    return out


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return 0
    return LAYERS.get(parts[1])


def _files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_the_source_tree_is_found():
    assert len(_files()) > 50  # a wrong SRC would make every other check pass vacuously


def test_every_module_has_a_layer():
    missing = sorted({_module_name(p).split(".")[1] for p in _files() if _module_name(p) != "influence_patterns"} - set(LAYERS))
    assert not missing, f"give these modules a layer in LAYERS: {missing}"


def test_no_upward_import():
    bad = []
    for path in _files():
        me = _module_name(path)
        mine = _layer(me)
        if me == "influence_patterns":
            continue  # the package's front door re-exports the public API
        for name, function, _, line in _imports(path):
            theirs = _layer(name)
            if (me, function) in ALLOWED:
                continue
            if theirs is None and name.count(".") == 1 and name != "influence_patterns.__version__":
                # ``from influence_patterns import Explainer`` would hide the arrow's layer
                bad.append(f"{path.relative_to(SRC)}:{line} imports {name}: import it from its module")
                continue
            if theirs is not None and mine is not None and theirs > mine:
                bad.append(f"{path.relative_to(SRC)}:{line} imports {name}")
    assert not bad, "upward imports:\n" + "\n".join(sorted(set(bad)))


def _import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in _files()}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for me, path in modules.items():
        for name, function, typing_only, _ in _imports(path):
            if typing_only or (me, function) in ALLOWED:
                continue
            # "pkg.mod.Name" -> the longest prefix that is a module
            target = name
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != me and not me.startswith(target + ".") and target != "influence_patterns":
                graph[me].add(target)
    return graph


def test_no_import_cycle():
    """No cycle among the project's modules, counting imports inside functions."""
    graph = _import_graph()
    seen: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if seen.get(n) == 1:
                cycles.append(" → ".join(stack[stack.index(n):] + [n]))
            elif n not in seen:
                visit(n)
        stack.pop()
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checks_can_fail(tmp_path):
    """The walker sees an import inside a function and its enclosing function's name."""
    f = tmp_path / "m.py"
    f.write_text("import os\n\ndef g():\n    from influence_patterns.viz import terminal\n")
    assert _imports(f) == [("influence_patterns.viz", "g", False, 4), ("influence_patterns.viz.terminal", "g", False, 4)]
    # a registry entry named by a string is an import of that module too
    f.write_text('R.register("x", Lazy("influence_patterns.explainer:search"))\n')
    assert _imports(f) == [("influence_patterns.explainer", None, False, 1),
                           ("influence_patterns.explainer.search", None, False, 1)]


def test_library_errors_name_parameters_not_flags():
    """Below the CLI, messages name parameters (``workers``), not flags (``--workers``):
    the library is used without the CLI too. viz may name commands in the report's advice."""
    bad = []
    for path in _files():
        me = _module_name(path)
        if _layer(me) is not None and _layer(me) >= LAYERS["viz"]:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                for s in ast.walk(node.exc):
                    if isinstance(s, ast.Constant) and isinstance(s.value, str) and " --" in " " + s.value:
                        if "pip install" not in s.value and "influence-patterns " not in s.value:
                            bad.append(f"{path.relative_to(SRC)}:{node.lineno}: {s.value.strip()[:60]!r}")
    assert not bad, "flags in library errors:\n" + "\n".join(bad)


def test_loading_does_not_import_defaults_at_module_level():
    """``models.loading`` reads the defaults' registry only when a name needs it (issue 12):
    loading a checkpoint never imports the build recipes."""
    path = SRC / "models" / "loading.py"
    top = [name for name, function, _, _ in _imports(path) if function is None]
    assert top and not any(name.startswith("influence_patterns.models.defaults") for name in top)


# --------------------------------------------------------------------------- function length

#: The longest a function of src/ may be, decorators and docstring included (issue 23).
MAX_FUNCTION_LINES = 80


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES,
                   skip: set[str] = frozenset()) -> list[str]:
    """``path:line name (N lines)`` for every function or method under ``root`` longer than ``limit``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if set(path.relative_to(root).parts[:-1]) & skip:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                size = node.end_lineno - start + 1
                if size > limit:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({size} lines)")
    return found


def test_no_function_is_longer_than_80_lines():
    long = long_functions(SRC)
    assert not long, "split these into typed, documented helpers:\n" + "\n".join(long)


def test_the_length_check_can_fail(tmp_path):
    body = "\n".join(f"    x{k} = {k}" for k in range(MAX_FUNCTION_LINES - 2))
    (tmp_path / "ok.py").write_text(f"@staticmethod\ndef f():\n{body}\n")  # 80 lines with its decorator
    (tmp_path / "inner").mkdir()
    method = body.replace("\n", "\n    ")
    (tmp_path / "inner" / "long.py").write_text(f"class C:\n    @property\n    def g(self):\n    {method}\n        y = 1\n")
    assert long_functions(tmp_path) == ["inner/long.py:3 g (81 lines)"]
    assert long_functions(tmp_path, skip={"inner"}) == []


def test_no_test_module_imports_another():
    """What tests share lives in tests/conftest.py (docs/layout.md, Tests)."""
    tests = Path(__file__).resolve().parent
    found = []
    for path in sorted(tests.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name}:{node.lineno} imports {n}" for n in names if n.split(".")[0].startswith("test_")]
    assert not found, "move shared helpers to tests/conftest.py:\n" + "\n".join(found)
