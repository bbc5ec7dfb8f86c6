"""A parsed rule: what a loader inspects once and a request evaluates many times.

`parse` returns an `Expression`; the loader asks it which names it reads, which functions it
calls with which literal arguments, and which literals it compares a name with, so mistakes in
model.yaml are found at load time. Per request, `evaluate` (or `truth`, for a rule that must
decide) computes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from inferd.errors import EvaluationError
from inferd.expression.evaluate import NO_FUNCTIONS, described, evaluate_tree, is_number
from inferd.expression.nodes import Binary, Call, ListNode, Literal, Name, Node, walk


class _NotLiteral:
    def __repr__(self) -> str:
        return "NOT_LITERAL"


NOT_LITERAL: Final[object] = _NotLiteral()
"""What `Expression.calls` reports for an argument that is not a literal."""


@dataclass(frozen=True)
class Function:
    """A caller function: declare `{name: arity}` to `parse`, pass `{name: call}` to `evaluate`."""

    name: str
    arity: int
    call: Callable[..., Any]


@dataclass(frozen=True)
class Expression:
    """A parsed rule: inspect it at load time, evaluate it per request."""

    source: str
    tree: Node = field(repr=False)

    def __str__(self) -> str:
        return self.source

    def names(self) -> frozenset[tuple[str, ...]]:
        """Every name path read, so a loader can check each one exists."""
        return frozenset(node.path for node, _ in walk(self.tree) if isinstance(node, Name))

    def calls(self) -> list[tuple[str, tuple[Any, ...]]]:
        """Every call in source order, literal arguments by value (e.g. a label to check)."""
        literal = lambda node: node.value if isinstance(node, Literal) else NOT_LITERAL  # noqa: E731
        found = (node for node, _ in walk(self.tree) if isinstance(node, Call))
        return [(node.name, tuple(map(literal, node.args))) for node in found]

    def literals_compared_with(self, path: tuple[str, ...]) -> list[Any]:
        """Text and number literals compared (==, !=, in [...]) with exactly `path`."""

        def is_path(node: Node) -> bool:
            return isinstance(node, Name) and node.path == tuple(path)

        def literal(node: Node) -> list[Any]:
            if isinstance(node, Literal) and (isinstance(node.value, str) or is_number(node.value)):
                return [node.value]
            return []

        found: list[Any] = []
        for node, _ in walk(self.tree):
            if isinstance(node, Binary) and node.op in ("==", "!="):
                found += literal(node.right) if is_path(node.left) else []
                found += literal(node.left) if is_path(node.right) else []
            elif isinstance(node, Binary) and node.op in ("in", "not in") and is_path(node.left):
                for item in node.right.children() if isinstance(node.right, ListNode) else ():
                    found += literal(item)
        return found

    def evaluate(
        self, env: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]] = NO_FUNCTIONS
    ) -> Any:
        """The rule's value on `env`; EvaluationError names the subexpression that failed."""
        return evaluate_tree(self.source, self.tree, env, functions)


def truth(
    expression: Expression,
    env: Mapping[str, Any],
    functions: Mapping[str, Callable[..., Any]] = NO_FUNCTIONS,
) -> bool:
    """Evaluate a rule that must decide: true or false (null, an absent value, is false)."""
    value = expression.evaluate(env, functions)
    if value is None or isinstance(value, bool):
        return bool(value)
    raise EvaluationError(f"rule must be true or false, got {described(value)}")
