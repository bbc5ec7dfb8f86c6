"""The decision-rule language on hostile text and hostile values: parsing any string ends in an
Expression or an ExpressionError, and evaluating any parsed rule on any environment (what a
client's request puts there: numbers, text, numpy values, parameters nested as deep as JSON
goes) ends in a value or an EvaluationError. Never another exception, never a hang."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferd.errors import EvaluationError, ExpressionError
from inferd.expression import BUILTINS, Expression, parse, truth
from tests.unit.fuzz.outcome import JSON, examples, outcome, sometimes

FUNCTIONS = {"count": 1, "probability": 1}
NAMES = ["label", "score", "x", "y", "inputs", "parameters", "missing"]
PATHS = [
    *NAMES,
    "inputs.a",
    "inputs.b",
    "parameters.priority",
    "parameters.deep",
    "prediction.label",
]


def check_parse(source: str) -> Expression | None:
    result = outcome(parse, source, FUNCTIONS, refusals=ExpressionError)
    if isinstance(result, ExpressionError):
        assert result.message.startswith("column ")
        assert 0 <= result.position <= len(source)
        return None
    assert isinstance(result, Expression)
    return result


def check_evaluate(expression: Expression, env: dict[str, Any], functions: dict[str, Any]) -> None:
    outcome(expression.evaluate, env, functions, refusals=EvaluationError)
    outcome(truth, expression, env, functions, refusals=EvaluationError)


# --- sources ----------------------------------------------------------------------------------

GRAMMAR_PIECES = [
    *"()[]+-*/%<>=!.,'\"\\ _0123456789eE\t\n",
    *["and ", "or ", "not ", " in ", "true", "null", "x", "label", "abs", "len(", "min("],
    *["count(", "lambda", "is", "**", "&&", "1e999", "9" * 40, "\\u00e9", "é", "parameters."],
    "[0]",
]
GRAMMAR_TEXT = st.lists(st.sampled_from(GRAMMAR_PIECES), max_size=30).map("".join)


def _literal() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-(10**35), 10**35).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.sampled_from(["true", "false", "null", "True", "None", "1e308", "0", "0.0", ".5"]),
        st.text(max_size=8).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
        st.sampled_from(['"malignant"', "'a\\n'", '"\\t\\"\\\\"']),
    )


def _name() -> st.SearchStrategy[str]:
    key = st.sampled_from(['["k"]', "[0]", "[5]", '["a"]', "[1]"])
    return st.builds(
        lambda p, ks: p + "".join(ks), st.sampled_from(PATHS), st.lists(key, max_size=2)
    )


def _compound(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    ops = ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "and", "or", "in", "not in"]
    calls = [*BUILTINS, *FUNCTIONS]
    return st.one_of(
        st.builds(lambda a, op, b: f"{a} {op} {b}", children, st.sampled_from(ops), children),
        st.builds(lambda op, a: f"{op}{a}", st.sampled_from(["not ", "-", "+"]), children),
        children.map(lambda a: f"({a})"),
        st.lists(children, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        st.builds(
            lambda f, args: f"{f}({', '.join(args)})",
            st.sampled_from(calls),
            st.lists(children, min_size=0, max_size=3),
        ),
    )


EXPRESSIONS = st.recursive(_literal() | _name(), _compound, max_leaves=12)


@st.composite
def near_valid(draw: st.DrawFn) -> str:
    """A well-formed expression, now and then with a character dropped, doubled or changed."""
    source = draw(EXPRESSIONS)
    if source and sometimes(draw, 4):
        at = draw(st.integers(0, len(source) - 1))
        change = draw(st.sampled_from(["drop", "double", "replace"]))
        if change == "drop":
            source = source[:at] + source[at + 1 :]
        elif change == "double":
            source = source[:at] + source[at] + source[at:]
        else:
            source = (
                source[:at]
                + draw(st.sampled_from(list("()[]\"'.,=!<>+-*/% x0")))
                + source[at + 1 :]
            )
    return source


# --- environments -----------------------------------------------------------------------------

NUMPY = st.one_of(
    st.floats(width=32).map(np.float32),
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.booleans().map(np.bool_),
    st.lists(st.floats(), max_size=4).map(np.array),
    st.lists(st.integers(0, 255), max_size=4).map(lambda v: np.array(v, dtype=np.uint8)),
    st.just(np.array([b"ab", b"c"], dtype=object)),
    st.just(np.zeros((2, 2))),
)

VALUES = st.one_of(JSON, NUMPY, st.integers(-(2**2000), 2**2000), st.floats())


def _deep(depth: int, leaf: bytes = b"1") -> Any:
    """A list nested `depth` deep, the way orjson reads one from a request's parameters."""
    return orjson.loads(b"[" * depth + leaf + b"]" * depth)


@st.composite
def environments(draw: st.DrawFn) -> dict[str, Any]:
    env: dict[str, Any] = {name: draw(VALUES) for name in NAMES if draw(st.booleans())}
    env["inputs"] = draw(st.dictionaries(st.sampled_from(["a", "b"]), VALUES, max_size=2) | VALUES)
    parameters = draw(st.dictionaries(st.sampled_from(["priority", "k"]), VALUES, max_size=2))
    if sometimes(draw, 5):
        parameters["deep"] = _deep(draw(st.sampled_from([40, 200, 1_000])))
    env["parameters"] = parameters
    env["prediction"] = {"label": draw(st.text(max_size=4) | VALUES)}
    return env


def _functions(result: Any) -> dict[str, Any]:
    return {"count": lambda label: result, "probability": lambda label: result}


# --- properties -------------------------------------------------------------------------------


@settings(max_examples=examples(400))
@given(st.text(max_size=60))
def test_any_text(source: str) -> None:
    check_parse(source)


@settings(max_examples=examples(400))
@given(GRAMMAR_TEXT)
def test_any_text_of_the_grammar_s_pieces(source: str) -> None:
    check_parse(source)


@settings(max_examples=examples(500))
@given(near_valid(), environments(), VALUES)
def test_near_valid_rules_on_any_values(source: str, env: dict[str, Any], result: Any) -> None:
    expression = check_parse(source)
    if expression is not None:
        check_evaluate(expression, env, _functions(result))


@pytest.mark.parametrize(
    "source",
    [
        "(" * 10_000 + "1" + ")" * 10_000,
        "[" * 10_000 + "]" * 10_000,
        "-" * 10_000 + "1",
        "not " * 5_000 + "x",
        "abs(" * 5_000 + "1" + ")" * 5_000,
        "x" + " + x" * 1_000,
        "x" + " and x" * 1_000,
        "x" + "[0]" * 1_000,
        ".".join(["x"] * 1_000),
        '"' + "a" * 5_000 + '"',
        "9" * 5_000,
        "1" + "e9" * 10,
        "(" * 1_000,
        '"\\' * 1_000,
        "x" * 1_999,
        "x" * 2_001,
    ],
    ids=lambda source: repr(source[:12]) + f"...{len(source)}",
)
def test_sizes_that_could_blow_up(source: str) -> None:
    expression = check_parse(source)
    if expression is not None:
        check_evaluate(expression, {"x": 1}, {})


@pytest.mark.parametrize(
    "source",
    [
        "parameters.deep == 1",
        "parameters.deep == parameters.deep",
        "parameters.deep in [1, 2]",
        "1 in parameters.deep",
        "parameters.deep + parameters.deep",
        "parameters.deep > 1",
        "len(parameters.deep) > 0",
        "parameters.deep[0] == 1",
        "parameters == parameters",
        "parameters.obj == parameters.obj2",
        "parameters.obj.a.a == parameters.obj2.a.a",
        "probability(parameters.deep) > 0",
    ],
)
@pytest.mark.parametrize("depth", [40, 100, 1_000])
def test_values_nested_as_deep_as_json_goes(source: str, depth: int) -> None:
    """A client's parameters reach rules as it sent them: JSON nested up to 1,024 deep."""

    def deep_object() -> Any:
        return orjson.loads(b'{"a":' * depth + b"1" + b"}" * depth)

    env = {"parameters": {"deep": _deep(depth), "obj": deep_object(), "obj2": deep_object()}}
    expression = check_parse(source)
    assert expression is not None
    check_evaluate(expression, env, _functions(_deep(depth)))
