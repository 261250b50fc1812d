"""Imports of tasks/, models/, data/ and evaluate.py point one way: no cycle among them, and
``models.loading`` does not import ``models.defaults`` when it is imported (issue 12)."""

from __future__ import annotations

import ast
from pathlib import Path

import influence_patterns

SRC = Path(influence_patterns.__file__).parent
AREA = ("influence_patterns.tasks", "influence_patterns.models", "influence_patterns.data", "influence_patterns.evaluate")


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = ("influence_patterns", *path.relative_to(SRC).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, modules: dict[str, Path], top_level_only: bool = False) -> set[str]:
    """Internal modules ``path`` imports (in functions and TYPE_CHECKING blocks too, unless ``top_level_only``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("influence_patterns"):
            found |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {name for name in found if name in modules}


def test_no_import_cycle_through_tasks_models_data():
    modules = _modules()
    edges = {name: _imports(path, modules) for name, path in modules.items()}
    for start in (m for m in modules if m.startswith(AREA)):
        seen, todo = set(), [start]
        while todo:
            for nxt in edges[todo.pop()]:
                assert nxt != start, f"import cycle through {start}"
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)


def test_loading_does_not_import_defaults_at_module_level():
    modules = _modules()
    top = _imports(modules["influence_patterns.models.loading"], modules, top_level_only=True)
    assert "influence_patterns.models.defaults" not in top
