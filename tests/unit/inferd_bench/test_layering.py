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


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


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


def test_the_load_generator_has_no_import_cycle() -> None:
    paths = sorted((SRC / "inferd_bench").rglob("*.py"))
    graph = {
        module_name(path): {name for name, _ in imports(path) if name.startswith("inferd_bench.")}
        for path in paths
    }
    graph.pop("inferd_bench")  # the facade imports everything and nothing imports it back

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(m for m in graph if reaches(m, m, {m}))
    assert cycles == []
