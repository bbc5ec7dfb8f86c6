"""Reading model.yaml: YAML, `${VAR}` substitution from the environment (as far as it is
allowed: `environment.py`), validation into a `ModelSpec` with every problem listed by its
path, and the labels file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from inferd.errors import SpecError
from inferd.spec.decide import WebhookAction
from inferd.spec.environment import Environment
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


def load_spec(model_dir: Path, environment: Environment | None = None) -> ModelSpec | None:
    """Read model_dir/model.yaml; None when the folder has none (a plain tensor model).
    `${NAME}` is read from the environment as `environment` allows (default: the names in
    INFERD_ALLOW_ENV)."""
    path = model_dir / "model.yaml"
    if not path.exists():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise SpecError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path} must be a mapping of keys (name, task, backend, ...)")
    environment = environment or Environment.for_process(trust_code=False)
    data = environment.expand_tree(data, str(path), deferred=_used_at_delivery)
    data.setdefault("name", model_dir.name)
    spec = parse_spec(data, str(path))
    _check_webhook_urls(spec, environment, str(path))
    return spec


def _used_at_delivery(at: tuple[str | int, ...]) -> bool:
    """A webhook's url and headers: expanded when it is delivered, never stored expanded."""
    return (
        len(at) >= 5
        and at[0] in ("decide", "alerts")
        and at[2] == "actions"
        and at[4] in ("url", "headers")
    )


def _check_webhook_urls(spec: ModelSpec, environment: Environment, source: str) -> None:
    actions = [action for rule in spec.decide for action in rule.actions]
    actions += [action for alert in spec.alerts for action in alert.actions]
    for action in actions:
        if isinstance(action, WebhookAction) and "${" in action.url:
            url = environment.expand(action.url, source)
            if not url.startswith(("http://", "https://")):
                raise SpecError(
                    f"{source}: the webhook url {action.url!r} expands to {url!r}, which is "
                    "not an http:// or https:// URL"
                )


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
