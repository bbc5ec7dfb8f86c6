"""What every fuzz test asserts: an input ends in a result or a clean refusal, quickly.

A clean refusal is an `InferdError` with a 4xx status and a message; anything else (a bare
ValueError, a RecursionError, a 500-class InferdError) is a bug the test reports, and so is a
call that runs for longer than `LIMIT_S`: an alarm interrupts it (at the next Python bytecode,
so a loop in Python never hangs the test run) and the elapsed time is checked after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from hypothesis import strategies as st

from inferd.errors import InferdError

T = TypeVar("T")

LIMIT_S = 10.0
"""Far more than any single input here takes; only a hang (or near-hang) comes near it."""


SEARCH = float(os.environ.get("INFERD_FUZZ_SEARCH", "0"))
"""0 in CI: the derandomized examples. A factor when searching for bugs: that many times the
examples, random ones (conftest.py turns derandomizing off)."""


def examples(count: int) -> int:
    """A test's max_examples: `count`, or `count` times INFERD_FUZZ_SEARCH when searching."""
    return round(count * SEARCH) if SEARCH else count


class Hang(AssertionError):
    """The call ran past LIMIT_S."""


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def ring(signum: int, frame: Any) -> None:
        raise Hang(f"the call ran for more than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def clean_refusal(error: InferdError) -> None:
    assert 400 <= error.status_code < 500, f"{type(error).__name__} is a {error.status_code}"
    assert isinstance(error.message, str) and error.message.strip(), "refusal without a message"


def outcome(
    call: Callable[..., T], *args: Any, refusals: type[InferdError] = InferdError
) -> T | InferdError:
    """`call(*args)`, or the clean refusal it raised; any other exception propagates."""
    start = time.perf_counter()
    try:
        with _alarm(LIMIT_S):
            result: T | InferdError = call(*args)
    except refusals as error:
        clean_refusal(error)
        result = error
    elapsed = time.perf_counter() - start
    assert elapsed < LIMIT_S, f"the call took {elapsed:.1f} s"
    return result


# --- JSON values ---------------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
"""JSON leaves, with the awkward ones: huge integers and (through json.dumps) NaN and Infinity."""

JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
"""Any JSON document (plus NaN and Infinity, which json.dumps writes and JSON forbids)."""


def dumps(value: Any) -> bytes:
    """JSON text for any value JSON strategies build, NaN, Infinity and big integers included."""
    return json.dumps(value).encode()


def nested(value: Any, depth: int) -> Any:
    """`value` wrapped in `depth` lists: [[[...value...]]]."""
    for _ in range(depth):
        value = [value]
    return value


def sometimes(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in `one_in` draws (hypothesis favours the ends of a range, not its
    middle, and shrinks towards False)."""
    return draw(st.integers(0, one_in - 1)) == one_in // 2
