"""The parsed tree: frozen dataclasses that the parser builds and everything else only reads.

Each node keeps its `start:end` span in the source, so evaluation errors can quote the part of
the rule that failed. The tree is walked without recursion wherever that is possible, and its
depth is bounded by the parser, so no rule can exhaust the Python stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Node:
    """A tree node; `start:end` is its source text, which evaluation errors quote."""

    start: int
    end: int

    def children(self) -> tuple[Node, ...]:
        values = (getattr(self, f.name) for f in fields(self))
        nested = (v if isinstance(v, tuple) else (v,) for v in values)
        return tuple(item for group in nested for item in group if isinstance(item, Node))


@dataclass(frozen=True, kw_only=True)
class Literal(Node):
    value: Any  # int, float, str, bool or None


@dataclass(frozen=True, kw_only=True)
class Name(Node):
    path: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class ListNode(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, kw_only=True)
class Subscript(Node):
    target: Node
    key: str | int


@dataclass(frozen=True, kw_only=True)
class Unary(Node):
    op: str  # "not", "-" or "+"
    operand: Node


@dataclass(frozen=True, kw_only=True)
class Binary(Node):
    op: str  # arithmetic or comparison, including "in" and "not in"
    left: Node
    right: Node


@dataclass(frozen=True, kw_only=True)
class BoolOp(Node):
    op: str  # "and" or "or", over any number of operands so long chains stay shallow
    operands: tuple[Node, ...]


@dataclass(frozen=True, kw_only=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


def walk(tree: Node) -> Iterator[tuple[Node, int]]:
    """Every node with its depth, in source order, without recursion."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        stack.extend((child, depth + 1) for child in reversed(node.children()))
