"""Evaluation: one walk of a parsed tree over one request's values, in the language's own terms.

Values are first normalised to plain Python (numpy scalars and arrays included), and then the
language's own rules apply rather than Python's: `true` is not `1`, only numbers with numbers and
text with text have an order, a missing name is null, and arithmetic results are bounded. Names
only read the environment mapping, never attributes, so a rule reaches nothing but its inputs.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from inferd.errors import EvaluationError
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
)

MAX_CONCAT: Final = 10_000
MAX_INT_BITS: Final = 1_024  # integer results beyond a double's range are refused too
MAX_VALUE_DEPTH: Final = 64  # lists and objects inside each other in one value

BUILTINS: Final[Mapping[str, int]] = MappingProxyType(
    {"abs": 1, "len": 1, "lower": 1, "max": 2, "min": 2}
)
NO_FUNCTIONS: Final[Mapping[str, Any]] = MappingProxyType({})


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def described(value: Any) -> str:
    """A value for messages, with its kind: `"x" (text)`, `[1, 2] (list)`."""
    return f"{_show(value)} ({_kind(value)})"


def evaluate_tree(
    source: str, tree: Node, env: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]]
) -> Any:
    """The value of `tree` (parsed from `source`) on `env`, calling `functions` by name."""
    return _Evaluation(source, env, functions).value(tree)


def _kind(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return "null" if value is None else "boolean"
    kinds = ((int | float, "number"), (str, "text"), (list, "list"), (Mapping, "object"))
    return next((kind for cls, kind in kinds if isinstance(value, cls)), type(value).__name__)


def _show(value: Any) -> str:
    """A short rendering of a value for messages, in the rules' own spelling."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, list):
        text = "[" + ", ".join(_show(item) for item in value[:5])
        text += ", ...]" if len(value) > 5 else "]"
    else:
        text = "{...}" if isinstance(value, Mapping) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _TooDeep(Exception):
    """A value nested deeper than MAX_VALUE_DEPTH."""


def _plain(value: Any, depth: int = 0) -> Any:
    """Environment values as plain Python: numpy scalars and arrays via .tolist()/.item(),
    lists and objects at most MAX_VALUE_DEPTH deep (a client's JSON parameters nest up to
    1,024 deep, which every recursive walk of them, Python's own == included, cannot take)."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int | float):
        return int(value) if isinstance(value, int) else float(value)
    if isinstance(value, list | tuple | Mapping):
        if depth >= MAX_VALUE_DEPTH:
            raise _TooDeep
        if isinstance(value, Mapping):
            return {key: _plain(item, depth + 1) for key, item in value.items()}
        return [_plain(item, depth + 1) for item in value]
    for method in ("tolist", "item"):
        if callable(convert := getattr(value, method, None)):
            return _plain(convert(), depth)
    if isinstance(value, numbers.Real):
        return int(value) if isinstance(value, numbers.Integral) else float(value)
    raise TypeError(type(value).__name__)


def _orderable(a: Any, b: Any) -> bool:
    """Numbers with numbers, text with text: nothing else has an order here."""
    return (is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str))


_ARITHMETIC: Final = {"+": operator.add, "-": operator.sub, "*": operator.mul}
_ARITHMETIC.update({"/": operator.truediv, "%": operator.mod})
_ORDER: Final = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _equal(a: Any, b: Any) -> bool:
    """== without Python's coercions: true is not 1, and values of different kinds differ."""
    if _kind(a) != _kind(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


class _Evaluation:
    """One walk of the tree over one request's environment."""

    def __init__(
        self, source: str, env: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]]
    ) -> None:
        self.source, self.env, self.functions = source, env, functions

    def fail(self, node: Node, problem: str) -> EvaluationError:
        return EvaluationError(f"{problem} in: {self.source[node.start : node.end]}")

    def plain(self, node: Node, value: Any) -> Any:
        try:
            return _plain(value)
        except TypeError:
            raise self.fail(node, f"unsupported value of type {type(value).__name__}") from None
        except _TooDeep:
            problem = f"value is nested more than {MAX_VALUE_DEPTH} lists or objects deep"
            raise self.fail(node, problem) from None

    def value(self, node: Node) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Name):
            found: Any = self.env
            for segment in node.path:  # a missing path is null, so absent parameters are safe
                if not isinstance(found, Mapping) or segment not in found:
                    return None
                found = found[segment]
            return self.plain(node, found)
        if isinstance(node, ListNode):
            return list(map(self.value, node.items))  # map: no extra Python frame per level
        if isinstance(node, BoolOp):
            stop = node.op == "or"  # short-circuit on the first true (or) / false (and)
            for operand in node.operands:
                if self.truth(operand, node.op) == stop:
                    return stop
            return not stop
        if isinstance(node, Unary):
            if node.op == "not":
                return not self.truth(node.operand, "not")
            operand = self.value(node.operand)
            if not is_number(operand):
                raise self.fail(node, f"'{node.op}' needs a number, got {self.shown(operand)}")
            return -operand if node.op == "-" else operand
        if isinstance(node, Binary):
            left, right = self.value(node.left), self.value(node.right)
            if node.op in _ARITHMETIC:
                return self.arithmetic(node, left, right)
            return self.compare(node, left, right)
        if isinstance(node, Subscript):
            return self.subscript(node, self.value(node.target))
        if isinstance(node, Call):
            return self.call(node)
        raise AssertionError(f"unknown node {node!r}")

    def shown(self, value: Any) -> str:
        return described(value)

    def truth(self, node: Node, op: str) -> bool:
        value = self.value(node)
        if value is None or isinstance(value, bool):
            return bool(value)  # null is false: a rule about an absent flag does not fire
        raise self.fail(node, f"'{op}' needs true or false, got {self.shown(value)}")

    def arithmetic(self, node: Binary, left: Any, right: Any) -> Any:
        texts = isinstance(left, str) and isinstance(right, str)
        if node.op == "+" and (texts or (isinstance(left, list) and isinstance(right, list))):
            if len(left) + len(right) > MAX_CONCAT:
                raise self.fail(node, f"result would be longer than {MAX_CONCAT:,}")
            return left + right
        if not (is_number(left) and is_number(right)):
            problem = f"'{node.op}' needs numbers, got {self.shown(left)} and {self.shown(right)}"
            raise self.fail(node, problem)
        if node.op in ("/", "%") and right == 0:
            raise self.fail(node, "division by zero")
        try:
            result = _ARITHMETIC[node.op](left, right)
        except OverflowError:
            raise self.fail(node, "result is not a finite number") from None
        big = isinstance(result, int) and result.bit_length() > MAX_INT_BITS
        if big or (isinstance(result, float) and not math.isfinite(result)):
            raise self.fail(node, "result is not a finite number")
        return result

    def compare(self, node: Binary, left: Any, right: Any) -> bool:
        if node.op in ("==", "!="):
            return _equal(left, right) == (node.op == "==")
        if node.op in ("in", "not in"):
            return self.contains(node, left, right) == (node.op == "in")
        if left is None or right is None:
            return False  # an absent value is neither bigger nor smaller than anything
        if not _orderable(left, right):
            problem = f"cannot compare {self.shown(left)} with {self.shown(right)}"
            raise self.fail(node, problem)
        return bool(_ORDER[node.op](left, right))

    def contains(self, node: Binary, item: Any, container: Any) -> bool:
        if container is None:
            return False
        if isinstance(container, list):
            return any(_equal(item, member) for member in container)
        if isinstance(container, str | Mapping) and isinstance(item, str):
            return item in container  # substring of text, or key of an object
        problem = f"cannot look for {self.shown(item)} in {self.shown(container)}"
        raise self.fail(node, problem)

    def subscript(self, node: Subscript, target: Any) -> Any:
        key = node.key
        if isinstance(target, Mapping) and isinstance(key, str):
            if key not in target:
                raise self.fail(node, f"no key {key!r}")
            return self.plain(node, target[key])
        if isinstance(target, list | str) and isinstance(key, int):
            if key >= len(target):
                raise self.fail(node, f"index {key} is out of range (length {len(target)})")
            return target[key]
        raise self.fail(node, f"cannot index {self.shown(target)} with {key!r}")

    def call(self, node: Call) -> Any:
        function = None if node.name in BUILTINS else self.functions.get(node.name)
        if function is None and node.name not in BUILTINS:
            raise self.fail(node, f"function '{node.name}' was not supplied")
        args = list(map(self.value, node.args))
        if function is not None:
            return self.plain(node, function(*args))
        if any(arg is None for arg in args):
            return None  # builtins pass null through, like comparisons with null
        first, last = args[0], args[-1]
        if node.name == "len" and isinstance(first, str | list):
            return len(first)
        if node.name == "abs" and is_number(first):
            return abs(first)
        if node.name == "lower" and isinstance(first, str):
            return first.lower()
        if node.name in ("min", "max") and _orderable(first, last):
            return min(first, last) if node.name == "min" else max(first, last)
        shown = ", ".join(self.shown(arg) for arg in args)
        raise self.fail(node, f"{node.name}() cannot take {shown}")
