"""The `decide:` rules of model.yaml and the actions (webhook, log, python) a decision
carries out."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from inferd.spec.base import _inside_model_folder, _Strict

_DECISION_NAME = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
PYTHON_ACTION_TIMEOUT_S = 30.0


class WebhookAction(_Strict):
    """POST the decision's event as JSON to a URL, retried with backoff until it is taken."""

    type: Literal["webhook"]
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=5.0, gt=0, le=300)
    max_attempts: int = Field(default=10, ge=1, le=1000)
    backoff_s: float = Field(default=1.0, gt=0)
    """Wait before the second attempt; doubled after each failure."""
    max_backoff_s: float = Field(default=300.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if url.startswith("${"):  # from the environment: checked once it is expanded
            return url
        if not url.startswith(("http://", "https://")) or len(url) < 10:
            raise ValueError(f"url {url!r} must be an http:// or https:// URL")
        return url


class LogAction(_Strict):
    """A structured log line (logger inferd.actions) for each decision."""

    type: Literal["log"]
    level: Literal["debug", "info", "warning", "error"] = "info"


class PythonAction(_Strict):
    """Call `function(event)` from a .py file of the model folder (only with --trust-code)."""

    type: Literal["python"]
    entry: str
    """"file.py:function", the file relative to the model folder."""
    timeout_s: float = Field(default=PYTHON_ACTION_TIMEOUT_S, gt=0, le=3600)
    """A call that has not returned by then is retried later (its thread is left behind)."""

    @field_validator("entry")
    @classmethod
    def _entry(cls, entry: str) -> str:
        file, _, function = entry.partition(":")
        if not file.endswith(".py") or not function.isidentifier():
            raise ValueError(f"entry {entry!r} must look like 'actions.py:function_name'")
        _inside_model_folder(file)
        return entry


ActionSpec = Annotated[WebhookAction | LogAction | PythonAction, Field(discriminator="type")]


class DecideRule(_Strict):
    """When `when` is true for a prediction, the response carries `decision` and its
    actions are recorded in the outbox before the response is sent."""

    decision: str = Field(pattern=_DECISION_NAME)
    when: str
    """An expression over the prediction, the inputs and the request parameters."""
    actions: list[ActionSpec] = Field(default_factory=list)
    description: str = ""
