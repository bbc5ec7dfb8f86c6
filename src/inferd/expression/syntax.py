"""The parser: tokens to a tree, by precedence climbing (Pratt), with every size bounded.

Parsing happens once, at load time, so a mistake is a SpecError about model.yaml with a caret
under the column, not a 400 on some later request. The grammar is Python-like; Python words it
does not support, chained comparisons and method calls are refused with a hint. Nesting and
tree depth are capped far below Python's recursion limit, so neither parsing nor evaluation can
exhaust the stack.
"""

from __future__ import annotations

import keyword
from collections.abc import Mapping
from dataclasses import replace
from typing import Final

from inferd.errors import ExpressionError
from inferd.expression.evaluate import BUILTINS, NO_FUNCTIONS, is_number
from inferd.expression.location import located
from inferd.expression.nodes import (
    Binary,
    BoolOp,
    Call,
    ListNode,
    Literal,
    Name,
    Node,
    Subscript,
    Unary,
    walk,
)
from inferd.expression.rule import Expression
from inferd.expression.tokens import Token, scan

MAX_SOURCE: Final = 2_000
MAX_NESTING: Final = 50  # brackets, calls and unary operators inside each other
MAX_TREE_DEPTH: Final = 100  # keeps the recursive evaluation far from Python's stack limit

_CONSTANTS = {"true": True, "false": False, "null": None}
_CONSTANTS.update({"True": True, "False": False, "None": None})
_PYTHON_WORDS = frozenset(keyword.kwlist) - {"and", "or", "not", "in", "True", "False", "None"}
_NOT_NAMES = _PYTHON_WORDS | {"and", "or", "in"}

_COMPARE = 4
_BINDING = {"or": 1, "and": 2, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}
_BINDING.update(dict.fromkeys(("==", "!=", "<", "<=", ">", ">=", "in", "not in"), _COMPARE))
_NOT_BINDING, _SIGN_BINDING = 3, 7


class _Parser:
    """Pratt parser: one Python frame pair per bracket level, and that nesting is counted."""

    def __init__(self, source: str, functions: Mapping[str, int]) -> None:
        self.source, self.functions = source, functions
        self.tokens = scan(source)
        self.buffer: list[Token] = []
        self.previous: Token | None = None
        self.nesting = 0

    def peek(self, ahead: int = 0) -> Token:
        while len(self.buffer) <= ahead:
            self.buffer.append(next(self.tokens))
        return self.buffer[ahead]

    def take(self) -> Token:
        self.previous = self.buffer.pop(0) if self.buffer else next(self.tokens)
        return self.previous

    def at(self, op: str) -> bool:
        token = self.peek()
        return token.kind == "op" and token.text == op

    def error(self, position: int, problem: str) -> ExpressionError:
        return located(self.source, position, problem)

    def unexpected(self, token: Token, expected: str) -> ExpressionError:
        if token.kind == "end":
            return self.error(token.start, f"expected {expected} at the end")
        if token.kind == "name" and token.text == "is":
            return self.error(token.start, "use '==' or '!=' instead of 'is'")
        if token.kind == "name" and token.text in _PYTHON_WORDS:
            return self.error(token.start, f"'{token.text}' is not supported in expressions")
        return self.error(token.start, f"expected {expected}, got {token.text!r}")

    def enter(self, token: Token) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            problem = f"expression is nested too deeply (more than {MAX_NESTING} levels)"
            raise self.error(token.start, problem)

    def infix(self) -> str | None:
        token = self.peek()
        if token.kind == "op" and token.text in _BINDING:
            return token.text
        if token.kind == "name" and token.text in ("and", "or", "in"):
            return token.text
        if token.kind == "name" and token.text == "not":
            following = self.peek(1)  # only here: looking further could report a later error
            return "not in" if following.kind == "name" and following.text == "in" else None
        return None

    def expression(self, min_binding: int) -> Node:
        left = self.prefix()
        while (op := self.infix()) is not None and _BINDING[op] > min_binding:
            self.take()
            if op == "not in":
                self.take()
            right = self.expression(_BINDING[op])
            if op in ("and", "or"):
                flat = isinstance(left, BoolOp) and left.op == op
                operands = (
                    (*left.operands, right) if isinstance(left, BoolOp) and flat else (left, right)
                )
                left = BoolOp(op=op, operands=operands, start=left.start, end=right.end)
            else:
                left = Binary(op=op, left=left, right=right, start=left.start, end=right.end)
            following = self.infix()
            if _BINDING[op] == _COMPARE and following and _BINDING[following] == _COMPARE:
                problem = "comparisons cannot be chained; use 'and', e.g. 'a < b and b < c'"
                raise self.error(self.peek().start, problem)
        return left

    def prefix(self) -> Node:
        token = self.peek()
        if token.kind in ("number", "string"):
            self.take()
            return Literal(value=token.value, start=token.start, end=token.end)
        if token.kind == "name" and token.text in _CONSTANTS:
            self.take()
            return Literal(value=_CONSTANTS[token.text], start=token.start, end=token.end)
        if (token.kind, token.text) in (("name", "not"), ("op", "-"), ("op", "+")):
            self.take()
            self.enter(token)
            operand = self.expression(_NOT_BINDING if token.text == "not" else _SIGN_BINDING)
            self.nesting -= 1
            if token.text != "not" and isinstance(operand, Literal) and is_number(operand.value):
                value = -operand.value if token.text == "-" else operand.value
                return Literal(value=value, start=token.start, end=operand.end)
            return Unary(op=token.text, operand=operand, start=token.start, end=operand.end)
        if token.kind == "op" and token.text in ("(", "["):
            self.take()
            self.enter(token)
            if token.text == "[":
                items, close = self.sequence(token, "]")
                node: Node = ListNode(items=tuple(items), start=token.start, end=close.end)
            else:
                inner = self.expression(0)
                node = replace(inner, start=token.start, end=self.expect(")", token).end)
            self.nesting -= 1
            return node
        if token.kind == "name" and token.text not in _NOT_NAMES:
            return self.name(self.take())
        if token.kind == "end":
            if self.previous is None:
                raise self.error(0, "empty expression")
            after = f"expected an expression after {self.previous.text!r}"
            raise self.error(self.previous.start, after)
        raise self.unexpected(token, "an expression")

    def name(self, first: Token) -> Node:
        if self.at("("):
            return self.call(first)
        path, end = [first.text], first.end
        while self.at("."):
            self.take()
            segment = self.peek()
            if segment.kind != "name":
                raise self.unexpected(segment, "a name after '.'")
            path.append(self.take().text)
            end = segment.end
        if self.at("("):
            problem = "method calls are not supported; pass the value instead, e.g. lower(label)"
            raise self.error(self.peek().start, problem)
        node: Node = Name(path=tuple(path), start=first.start, end=end)
        while self.at("["):
            opener, key = self.take(), self.peek()
            if key.kind != "string" and not (key.kind == "number" and isinstance(key.value, int)):
                raise self.unexpected(key, "a text or whole-number key")
            self.take()
            node = Subscript(
                target=node, key=key.value, start=first.start, end=self.expect("]", opener).end
            )
        return node

    def call(self, name: Token) -> Call:
        arity = self.functions.get(name.text)
        if arity is None:
            allowed = ", ".join(sorted(self.functions))
            raise self.error(name.start, f"unknown function '{name.text}'; allowed: {allowed}")
        opener = self.take()
        self.enter(opener)
        args, close = self.sequence(opener, ")")
        self.nesting -= 1
        if len(args) != arity:
            plural = "" if arity == 1 else "s"
            problem = f"{name.text}() takes {arity} argument{plural}, got {len(args)}"
            raise self.error(name.start, problem)
        return Call(name=name.text, args=tuple(args), start=name.start, end=close.end)

    def sequence(self, opener: Token, close: str) -> tuple[list[Node], Token]:
        items: list[Node] = []
        while not self.at(close):
            items.append(self.expression(0))
            if not self.at(","):
                break
            self.take()
        return items, self.expect(close, opener)

    def expect(self, op: str, opener: Token) -> Token:
        if self.at(op):
            return self.take()
        if self.peek().kind == "end":
            raise self.error(opener.start, f"{opener.text!r} is never closed")
        raise self.unexpected(self.peek(), repr(op))


def parse(source: str, functions: Mapping[str, int] = NO_FUNCTIONS) -> Expression:
    """Parse once, at load time, so a mistake is a SpecError about model.yaml, not a 400 later.

    `functions` maps each caller function (besides `BUILTINS`) to its exact arity.
    """
    if clash := sorted(BUILTINS.keys() & functions.keys()):
        raise ValueError(f"functions {clash} clash with the builtins")
    if len(source) > MAX_SOURCE:
        raise located(source, MAX_SOURCE, f"expression is longer than {MAX_SOURCE:,} characters")
    parser = _Parser(source, {**BUILTINS, **functions})
    tree = parser.expression(0)
    if parser.peek().kind != "end":
        raise parser.unexpected(parser.peek(), "an operator or the end")
    for node, depth in walk(tree):
        if depth > MAX_TREE_DEPTH:
            problem = f"expression has more than {MAX_TREE_DEPTH} levels of operations; split it"
            raise located(source, node.start, problem)
    return Expression(source, tree)
