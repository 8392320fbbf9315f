"""The tree's shape the stage registry promises (issue: stages declared where they live)."""

import ast
import re
from pathlib import Path

import stages
from stages import STAGES

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [*sorted((ROOT / "pipeline").rglob("*.py")), *sorted((ROOT / "stages").glob("*.py")),
           ROOT / "run_pipeline.py"]


def quoted_stage_names(path: Path) -> list[str]:
    """The stage names written as exact string literals in a file, not counting its own stage's."""
    names = {s.name for s in STAGES} - {path.stem if path.parent.name == "stages" else None}
    return [node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and node.value in names]


def test_stage_names_are_written_where_the_stages_are_declared():
    found = {str(p.relative_to(ROOT)): quoted_stage_names(p) for p in SOURCES}
    found = {k: v for k, v in found.items() if v}
    assert sum(map(len, found.values())) <= 10, found


def test_no_stage_module_is_imported_by_the_library_and_no_stage_imports_the_plan():
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        assert not re.search(r"^\s*(from stages\b|import stages\b)", path.read_text(), re.M), path
    for path in sorted((ROOT / "stages").glob("*.py")):
        text = path.read_text()
        assert not re.search(r"\bimport\b.*\b(STAGES|Pipeline|RunPlan)\b", text), path
        assert "importlib" not in text or path.name == "__init__.py", path  # the package discovers its modules


def test_no_function_is_longer_than_60_lines():
    long = [f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for p in SOURCES if p.is_relative_to(ROOT / "pipeline") or p.is_relative_to(ROOT / "stages")
            for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60]
    assert not long, long


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports, at its top or inside a function: `from a.b import c`
    is module a.b.c where that is a module, else a.b."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in known else node.module)
    return found & known


def test_no_import_cycle_between_modules():
    """Every module's imports, lazy ones included, form no cycle (a package's __init__ aside:
    importing a submodule runs it, but it names no submodule that imports it back)."""
    files = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
             for p in [*(ROOT / "pipeline").rglob("*.py"), *(ROOT / "stages").glob("*.py")]}
    graph = {module: imported_modules(path, set(files)) - {module} for module, path in files.items()}
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(graph[module]):
            assert state.get(other) != 1, "import cycle: " + " -> ".join(path[path.index(other):] + [module, other])
            if other not in state:
                visit(other, path + [module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_every_stage_is_declared_in_its_own_module_with_settings_dataclasses():
    assert [s.name for s in STAGES] == [s.run.__name__ for s in STAGES]
    for stage in STAGES:
        assert stage.module == f"{stages.__name__}.{stage.name}", stage
        assert getattr(stages, stage.name).__dict__[stage.name].stage is stage


def test_base_configs_override_only():
    """A `_base_` value equal to its settings dataclass's default is a second source of that default."""
    from pipeline.config import load_config
    from pipeline.stage import settings_schemas

    schemas = settings_schemas(STAGES)
    repeated = []
    for path in sorted((ROOT / "configs" / "_base_").rglob("*.py")):
        cfg = load_config(path)
        for section, cls in schemas.items():
            defaults = {f.name: f.default for f in __import__("dataclasses").fields(cls)}
            for key, value in (cfg.get(section) or {}).items():
                if key in defaults and _same(value, defaults[key]):
                    repeated.append(f"{path.relative_to(ROOT)}: {section}.{key}={value!r}")
    assert not repeated, repeated


def _same(value, default) -> bool:
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return list(value) == list(default)
    return type(value) is type(default) and value == default


