"""The load generator is a client beside the server: the server never loads it, it takes from
`inferd` only the wire helpers, and its own modules import one another one way only."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"
# What a client may share with the server: the wire format and the event loop's choice.
ALLOWED_FROM_INFERD = {"inferd.codecs", "inferd.datatypes", "inferd.errors", "inferd.eventloop"}


def imports(path: Path) -> list[tuple[str, bool]]:
    """(module imported, whether at module level rather than inside a function)."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.append((child.module, top))
            inner = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            visit(child, top and not inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return found


def test_the_server_loads_the_load_generator_only_inside_a_command() -> None:
    for path in sorted((SRC / "inferd").rglob("*.py")):
        for name, top in imports(path):
            if name.split(".")[0] == "inferd_bench":
                assert not top, f"{path}: imports {name} at module level"


def test_the_load_generator_takes_only_the_wire_helpers_from_inferd() -> None:
    for path in sorted((SRC / "inferd_bench").rglob("*.py")):
        for name, _ in imports(path):
            if name.split(".")[0] == "inferd":
                assert name in ALLOWED_FROM_INFERD, f"{path}: imports {name}"
