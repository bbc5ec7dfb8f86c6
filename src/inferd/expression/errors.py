"""The language's two failures, kept apart because they belong to different moments.

A rule that cannot be parsed is a mistake in model.yaml (a SpecError, found at load time, with
a caret under the column); a rule that parses but cannot be computed on one request's values is
that request's fault (a BadRequestError that quotes the subexpression).
"""

from __future__ import annotations

from inferd.errors import BadRequestError, SpecError


class ExpressionError(SpecError):
    """A rule that cannot be parsed; `position` is the 0-based offset the caret points at."""

    def __init__(self, message: str, position: int = 0) -> None:
        super().__init__(message)
        self.position = position


class EvaluationError(BadRequestError):
    """A rule that parsed but cannot be computed on this request's values."""


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
