"""``dsl`` is pure: lark and the standard library, nothing from server or plugins."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import dsl

PACKAGE = Path(dsl.__file__).parent


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_dsl_imports_only_lark_and_the_standard_library():
    allowed = set(sys.stdlib_module_names) | {"lark", "__future__"}
    for path in sorted(PACKAGE.glob("*.py")):
        assert imported_roots(path) <= allowed, (path.name, imported_roots(path) - allowed)


def test_public_api_is_exported():
    for name in dsl.__all__:
        assert hasattr(dsl, name), name
    for name in (
        "parse",
        "parse_bytes",
        "check",
        "fmt",
        "format_program",
        "compile_program",
        "build",
        "Vocabulary",
        "Diagnostic",
        "holds",
        "EvalContext",
    ):
        assert name in dsl.__all__
