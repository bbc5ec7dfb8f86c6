"""Python actions: a function in a file of the model's folder, run only with --trust-code.

The entry is ``"path/inside/model/folder.py:function"``. The file is loaded once with importlib
(a module per file, a function per (file, name)) and the function is called with the event.
An entry that leaves the model folder is refused: the folder is what an operator trusted.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, cast

ActionFunction = Callable[[dict[str, Any]], Any]


class EntryError(Exception):
    """The entry cannot name a function (bad form, outside the folder, missing): retrying
    cannot help, so the action fails at once."""


def entry_file(folder: str, entry: str) -> tuple[Path, str]:
    """(absolute file, function name) of an entry, refusing one that escapes ``folder``."""
    file_part, sep, name = entry.rpartition(":")
    if not sep or not file_part or not name.isidentifier():
        raise EntryError(
            f"python action entry {entry!r} is not 'path/inside/model/folder.py:function'"
        )
    if not folder:
        raise EntryError(f"python action entry {entry!r} comes without its model folder")
    root = Path(folder).resolve()
    path = (root / file_part).resolve()
    if not path.is_relative_to(root):
        raise EntryError(f"python action entry {entry!r} escapes the model folder {root}")
    if not path.is_file():
        raise EntryError(f"python action entry {entry!r}: there is no file {path}")
    return path, name


class TrustedFunctions:
    """The loaded action functions, cached per (file, function); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._modules: dict[Path, ModuleType] = {}
        self._functions: dict[tuple[Path, str], ActionFunction] = {}

    def load(self, folder: str, entry: str) -> ActionFunction:
        """The entry's function. EntryError when it cannot exist; whatever importing the file
        raises (the file's own code failed) otherwise."""
        path, name = entry_file(folder, entry)
        with self._lock:
            function = self._functions.get((path, name))
            if function is not None:
                return function
            module = self._modules.get(path)
            if module is None:
                module = _import(path)
                self._modules[path] = module
            found = getattr(module, name, None)
            if not callable(found):
                raise EntryError(
                    f"python action entry {entry!r}: {path} defines no function {name}"
                )
            function = cast(ActionFunction, found)
            self._functions[(path, name)] = function
            return function


def _import(path: Path) -> ModuleType:
    module_name = "inferd_action_" + hashlib.sha1(str(path).encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise EntryError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so dataclasses and pickling inside it work
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


__all__ = ["ActionFunction", "EntryError", "TrustedFunctions", "entry_file"]
