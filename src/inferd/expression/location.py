"""Where a rule's parse failure points: the column and a caret under the source.

The language's two failures live in `inferd.errors` with every other one: a rule that cannot
be parsed is a mistake in model.yaml (ExpressionError, a SpecError found at load time); a rule
that parses but cannot be computed on one request's values is that request's fault
(EvaluationError, a BadRequestError that quotes the subexpression).
"""

from __future__ import annotations

from inferd.errors import ExpressionError


def located(source: str, position: int, problem: str) -> ExpressionError:
    """`column N: problem`, then the source with a caret under the position."""
    shown = "".join(" " if c.isspace() else c if c.isprintable() else "?" for c in source)
    caret = position
    if len(shown) > 80:  # a window around the position, not 2,000 characters of context
        low = max(0, position - 40)
        high = low + 80
        prefix = "..." if low else ""
        shown = prefix + shown[low:high] + ("..." if high < len(shown) else "")
        caret = position - low + len(prefix)
    message = f"column {position + 1}: {problem}\n  {shown}\n  {' ' * caret}^"
    return ExpressionError(message, position)
