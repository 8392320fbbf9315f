"""A digest of the code a stage runs: its module and every module of this project that
it imports, transitively (read from the import statements, nothing is executed).

A stage's fingerprint includes it, so an edited stage or helper makes the cached
output stale, as an edited config section does.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# How stages are run and logged, not what they compute: an edit here re-runs nothing.
NOT_HASHED = frozenset({"pipeline.runner", "pipeline.log", "pipeline.source_hash"})


@functools.lru_cache(maxsize=None)
def source_digest(module: str) -> str:
    """sha256 (16 hex digits) over the sources of `module` and its project imports."""
    digest = hashlib.sha256()
    for name, path in sorted(project_modules(module).items()):
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def project_modules(module: str) -> dict[str, Path]:
    """{module name: source file} of `module` and the project modules it reaches."""
    found: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in found or name in NOT_HASHED:
            continue
        path = _project_file(name)
        if path is None:
            continue
        found[name] = path
        todo.extend(_imports(name, path))
    return found


def _project_file(name: str) -> Path | None:
    """The module's file if it is this project's (resolved on disk: nothing is imported)."""
    base = PROJECT_ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@functools.lru_cache(maxsize=None)
def _imports(name: str, path: Path) -> tuple[str, ...]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]  # `from pkg import module`
    return tuple(names)
