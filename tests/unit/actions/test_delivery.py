"""The pieces of a delivery that need no receiver: backoff, settings, python entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferd.actions.delivery import max_attempts, retry_delay, setting
from inferd.actions.trusted import EntryError, TrustedFunctions, entry_file


@pytest.mark.parametrize(("attempts", "base"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0)])
def test_the_backoff_doubles_with_jitter(attempts: int, base: float) -> None:
    delays = [retry_delay({}, attempts) for _ in range(200)]
    assert all(0.8 * base <= d <= 1.2 * base for d in delays)
    assert len(set(delays)) > 1  # jittered, so retries of many actions spread out


def test_the_backoff_is_capped_and_follows_the_target() -> None:
    target = {"backoff_s": 0.5, "max_backoff_s": 3.0}
    assert 0.4 <= retry_delay(target, 1) <= 0.6
    assert all(2.4 <= retry_delay(target, n) <= 3.6 for n in (4, 10, 1000))
    assert 240 <= retry_delay({}, 50) <= 360  # default cap 300 s


def test_retry_after_wins_up_to_the_cap() -> None:
    assert retry_delay({"backoff_s": 0.01}, 1, retry_after_s=30) == 30
    assert retry_delay({"max_backoff_s": 5}, 1, retry_after_s=30) == 5
    assert retry_delay({}, 1, retry_after_s=0) == 0


def test_settings_that_are_not_numbers_fall_back_to_the_defaults() -> None:
    assert setting({"timeout_s": "soon"}, "timeout_s", 5.0) == 5.0
    assert setting({"timeout_s": True}, "timeout_s", 5.0) == 5.0
    assert setting({"timeout_s": float("nan")}, "timeout_s", 5.0) == 5.0
    assert setting({"timeout_s": 2}, "timeout_s", 5.0) == 2.0
    assert max_attempts({}) == 10
    assert max_attempts({"max_attempts": 0}) == 1
    assert max_attempts({"max_attempts": 3}) == 3


def test_an_entry_names_a_file_inside_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "hooks").mkdir(parents=True)
    (folder / "hooks" / "act.py").write_text("def go(event):\n    return event\n")
    assert entry_file(str(folder), "hooks/act.py:go") == (
        (folder / "hooks" / "act.py").resolve(),
        "go",
    )
    assert entry_file(str(folder), "./hooks/../hooks/act.py:go")[1] == "go"


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("../secret.py:go", "escapes the model folder"),
        ("hooks/../../secret.py:go", "escapes the model folder"),
        ("{secret}:go", "escapes the model folder"),
        ("link.py:go", "escapes the model folder"),  # a symlink that points outside
        ("act.py", "is not 'path/inside/model/folder.py:function'"),
        ("act.py:not-a-name", "is not 'path/inside/model/folder.py:function'"),
        (":go", "is not 'path/inside/model/folder.py:function'"),
        ("nothing.py:go", "there is no file"),
    ],
)
def test_a_bad_entry_is_refused(tmp_path: Path, entry: str, says: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    secret = tmp_path / "secret.py"
    secret.write_text("def go(event):\n    raise SystemExit\n")
    (folder / "link.py").symlink_to(secret)
    with pytest.raises(EntryError, match=says.replace("(", r"\(").replace(")", r"\)")):
        entry_file(str(folder), entry.format(secret=secret))
    with pytest.raises(EntryError, match="comes without its model folder"):
        entry_file("", "act.py:go")


def test_functions_are_loaded_once_per_file(tmp_path: Path) -> None:
    (tmp_path / "act.py").write_text(
        "LOADS = []\nLOADS.append(1)\n\ndef one(event):\n    return LOADS\n\n"
        "def two(event):\n    return len(LOADS)\n"
    )
    functions = TrustedFunctions()
    one = functions.load(str(tmp_path), "act.py:one")
    assert functions.load(str(tmp_path), "act.py:one") is one
    two = functions.load(str(tmp_path), "act.py:two")
    assert two({}) == 1  # the module ran once for both functions
    with pytest.raises(EntryError, match="defines no function LOADS"):
        functions.load(str(tmp_path), "act.py:LOADS")  # not callable


def test_a_file_that_fails_to_import_is_tried_again(tmp_path: Path) -> None:
    (tmp_path / "act.py").write_text("raise ImportError('no requests module')\n")
    functions = TrustedFunctions()
    with pytest.raises(ImportError, match="no requests module"):
        functions.load(str(tmp_path), "act.py:go")
    (tmp_path / "act.py").write_text("def go(event):\n    return 'ok'\n")
    assert functions.load(str(tmp_path), "act.py:go")({}) == "ok"
