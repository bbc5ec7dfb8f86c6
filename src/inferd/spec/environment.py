"""Which environment variables a model.yaml may read, and reading them.

A model folder can come from anyone, while the server's environment holds its secrets (the
API key, database passwords). So `${NAME}` in model.yaml is expanded only for names the
operator allowed (`--allow-env NAME` or `INFERD_ALLOW_ENV`), or for any name with
`--trust-code`; another name is an error when it is set or has no default (`${NAME:-default}`
of an unset name gives the default, reading nothing). A webhook's url and headers keep their
`${NAME}` until the moment of delivery, so the secrets they carry are never written into the
store's outbox.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from inferd.errors import SpecError

ALLOW_ENV_VARIABLE = "INFERD_ALLOW_ENV"
"""Names model.yaml may read, separated by commas or spaces (what `--allow-env` adds to)."""

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Path = tuple[str | int, ...]
"""Where a value sits in model.yaml: keys and list positions."""


@dataclass(frozen=True)
class Environment:
    """The variables model.yaml may read: `allowed` names, or every one when None."""

    allowed: frozenset[str] | None = frozenset()

    @classmethod
    def for_process(cls, trust_code: bool, allow: Collection[str] = ()) -> Environment:
        """Every name with `--trust-code`; otherwise `allow` and INFERD_ALLOW_ENV's names."""
        if trust_code:
            return cls(None)
        listed = re.split(r"[\s,]+", os.environ.get(ALLOW_ENV_VARIABLE, ""))
        return cls(frozenset(name for name in [*allow, *listed] if name))

    def expand(self, text: str, source: str) -> str:
        """`text` with `${NAME}` and `${NAME:-default}` replaced (`$$` is a literal `$`)."""
        if "$" not in text:
            return text

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if self.allowed is not None and name not in self.allowed:
                if found is None and default is not None:
                    return default  # nothing of the environment is read
                raise SpecError(
                    f"{source} uses ${{{name}}}, but a model.yaml reads only the environment "
                    f"variables the operator allows: start the server with --allow-env {name} "
                    f"(or set {ALLOW_ENV_VARIABLE}={name}), or with --trust-code"
                )
            if found is not None and (found or default is None):
                return found
            if default is not None:
                return default
            raise SpecError(
                f"{source} uses ${{{name}}} but the environment variable {name} is not set; "
                f"set it, or give a default: ${{{name}:-value}}"
            )

        return _VARIABLE.sub(substitute, text)

    def expand_tree(self, value: Any, source: str, deferred: Callable[[Path], bool]) -> Any:
        """Every string in a parsed model.yaml expanded, except where `deferred(path)`: those
        are only checked now (allowed and set) and expanded where they are used. Expansion
        happens after YAML parsing, so a value can never add keys to the file."""
        return self._tree(value, source, deferred, ())

    def _tree(self, value: Any, source: str, deferred: Callable[[Path], bool], at: Path) -> Any:
        if isinstance(value, dict):
            return {k: self._tree(v, source, deferred, (*at, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._tree(v, source, deferred, (*at, i)) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        expanded = self.expand(value, source)
        return value if deferred(at) else expanded
