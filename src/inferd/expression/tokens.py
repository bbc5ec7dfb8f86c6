"""Source text to tokens, by hand, so nothing of Python's own tokenizer or eval is involved.

Tokens are produced on demand, so the first problem in the source is the one reported, and
every literal is bounded as it is read (digits, string length, finiteness). Operators people
bring from other languages (`&&`, `!`, `=`, `**`) are refused with a hint, not a bare error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any, Final, NamedTuple

from inferd.expression.location import located

MAX_INT_DIGITS: Final = 30
MAX_STRING: Final = 1_000


class Token(NamedTuple):
    kind: str  # "number", "string", "name", "op" or "end"
    text: str
    value: Any
    start: int
    end: int


_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD = re.compile(r"[\w.]+")
_OPS2 = ("==", "!=", "<=", ">=")
_OPS1 = "<>+-*/%()[],."
_REFUSED = {  # longest first: what people type from other languages, and how to say it here
    "**": "the ** operator is not supported",
    "&&": "use 'and' instead of '&&'",
    "||": "use 'or' instead of '||'",
    "=": "use '==' to compare",
    "!": "use 'not' instead of '!'",
}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
_HINT = " ".join("\\" + key for key in _ESCAPES)


def scan(source: str) -> Iterator[Token]:
    """Tokens on demand, so the first problem in the source is the one reported."""
    i = 0
    while i < len(source):
        c = source[i]
        if c.isspace():
            i += 1
            continue
        if c in "'\"":
            token = _string(source, i)
        elif number := _NUMBER.match(source, i):
            token = _number(source, number)
        elif name := _NAME.match(source, i):
            if name.group().startswith("_"):
                raise located(source, i, "names starting with '_' are not allowed")
            token = Token("name", name.group(), None, i, name.end())
        elif source[i : i + 2] in _OPS2:
            token = Token("op", source[i : i + 2], None, i, i + 2)
        elif refused := next((r for r in _REFUSED if source.startswith(r, i)), None):
            raise located(source, i, _REFUSED[refused])
        elif c in _OPS1:
            token = Token("op", c, None, i, i + 1)
        else:
            raise located(source, i, f"unexpected character {c!r}")
        yield token
        i = token.end
    while True:
        yield Token("end", "", None, len(source), len(source))


def _number(source: str, match: re.Match[str]) -> Token:
    text, start, end = match.group(), match.start(), match.end()
    if end < len(source) and (source[end].isalnum() or source[end] in "_."):
        bad = _WORD.match(source, start)
        raise located(source, start, f"invalid number {bad.group() if bad else text!r}")
    if text.isdigit():
        if len(text) > MAX_INT_DIGITS:
            raise located(source, start, f"integer literal longer than {MAX_INT_DIGITS} digits")
        return Token("number", text, int(text), start, end)
    value = float(text)
    if not math.isfinite(value):
        raise located(source, start, "number literal is too large (not finite)")
    return Token("number", text, value, start, end)


def _string(source: str, start: int) -> Token:
    quote, parts, i = source[start], list[str](), start + 1
    while i < len(source) and len(parts) <= MAX_STRING:
        c = source[i]
        if c == quote:
            return Token("string", source[start : i + 1], "".join(parts), start, i + 1)
        if c == "\\":
            escape = source[i + 1 : i + 2]
            if not escape:
                break
            if escape not in _ESCAPES:
                raise located(source, i, f"unsupported escape '\\{escape}'; use one of {_HINT}")
            parts.append(_ESCAPES[escape])
            i += 2
        else:
            parts.append(c)
            i += 1
    if len(parts) > MAX_STRING:
        raise located(source, start, f"string literal longer than {MAX_STRING:,} characters")
    raise located(source, start, "unterminated string")
