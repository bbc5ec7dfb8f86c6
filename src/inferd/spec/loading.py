"""Reading model.yaml: YAML, `${VAR}` substitution from the environment, validation into a
`ModelSpec` with every problem listed by its path, and the labels file."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from inferd.errors import SpecError
from inferd.spec.model import ModelSpec

_STAGE_TAGS = {
    "image",
    "tabular",
    "series",
    "text",
    "audio",
    "classify",
    "regress",
    "forecast",
    "detect",
    "webhook",
    "log",
    "python",
}


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"{source} is not valid:"]
    for problem in error.errors():
        # Tagged unions put the tag in the path (preprocess.0.image.size): drop it.
        parts = [
            part
            for i, part in enumerate(problem["loc"])
            if not (i and isinstance(problem["loc"][i - 1], int) and part in _STAGE_TAGS)
        ]
        where = ".".join(str(part) for part in parts) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key (check its spelling; see the docs for the allowed keys)"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def parse_spec(data: dict[str, Any], source: str = "model.yaml") -> ModelSpec:
    """Validate a model.yaml mapping; raise SpecError listing every problem with its path."""
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(_describe(error, source)) from None


def load_spec(model_dir: Path) -> ModelSpec | None:
    """Read model_dir/model.yaml; None when the folder has none (a plain tensor model)."""
    path = model_dir / "model.yaml"
    if not path.exists():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise SpecError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path} must be a mapping of keys (name, task, backend, ...)")
    data = _with_environment(data, str(path))
    data.setdefault("name", model_dir.name)
    return parse_spec(data, str(path))


_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _with_environment(value: Any, source: str) -> Any:
    """Replace `${NAME}` and `${NAME:-default}` in every string value of model.yaml (`$$` is a
    literal `$`). Substitution happens after YAML parsing, so a variable's value is always
    text inside one value and can never add keys to the file."""
    if isinstance(value, dict):
        return {key: _with_environment(item, source) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_environment(item, source) for item in value]
    if not isinstance(value, str) or "$" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found is not None and (found or default is None):
            return found
        if default is not None:
            return default
        raise SpecError(
            f"{source} uses ${{{name}}} but the environment variable {name} is not set; "
            f"set it, or give a default: ${{{name}:-value}}"
        )

    return _VARIABLE.sub(substitute, value)


def load_labels(spec: ModelSpec, model_dir: Path) -> list[str] | None:
    """The class names, from the spec itself or from its labels file."""
    if spec.labels is None:
        return None
    if isinstance(spec.labels, list):
        return spec.labels
    path = model_dir / spec.labels
    if not path.exists():
        raise SpecError(f"labels file {path} does not exist; create it with one label per line")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
