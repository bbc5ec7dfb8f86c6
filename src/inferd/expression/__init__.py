"""A small, safe expression language for model.yaml decision rules.

Rules such as `label == "malignant" and score >= 0.5` come from model folders, so they are
untrusted text. A hand-written tokenizer and Pratt parser turn them into a tree of frozen
dataclasses, and `Expression.evaluate` walks that tree: Python's eval, compile and ast never
see the source, names only read the environment mapping (never attributes), and every size
that could blow up (source, nesting, literals, arithmetic results) is bounded, so a rule can
fail with a clear message but never hang, exhaust the stack or reach anything but its inputs.

The modules, in dependency order: `errors` (parse and evaluation failures), `nodes` (the tree),
`tokens` (source to tokens), `evaluate` (the tree's value on a request), `rule` (the parsed
`Expression`), `syntax` (tokens to a tree: `parse`).
"""

from __future__ import annotations

from inferd.errors import EvaluationError, ExpressionError
from inferd.expression.evaluate import BUILTINS
from inferd.expression.rule import NOT_LITERAL, Expression, Function, truth
from inferd.expression.syntax import parse

__all__ = [
    "BUILTINS",
    "NOT_LITERAL",
    "EvaluationError",
    "Expression",
    "ExpressionError",
    "Function",
    "parse",
    "truth",
]
