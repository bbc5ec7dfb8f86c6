"""The `cascade:` section of model.yaml: serve a small model and send only the items it is
unsure of on to a bigger one.

    cascade: {first: support-intent, then: support-intent-minilm, when: "confidence < 0.8"}

A cascade model is a folder of its own with this section and no version folders: its two
members are models of the same repository, and the cascade answers with their wire inputs
and outputs. `when` is written in the language of `decide:` rules (inferd.expression) over
the first model's prediction; its names are checked against the members when they load.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from inferd.spec.base import _Strict

_MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class CascadeSpec(_Strict):
    """Which model answers first, which one answers the items it is unsure of, and when."""

    first: str = Field(pattern=_MODEL_NAME)
    """The model every item goes to first (the small, fast one)."""
    then: str = Field(pattern=_MODEL_NAME)
    """The model an item is sent on to when `when` holds for the first model's prediction."""
    when: str = Field(min_length=1)
    """An expression over the first model's prediction (a classifier's `confidence`, `score`,
    `margin`, `label`, `probability("x")`) and the item's `inputs.<name>`: true sends it on."""

    @model_validator(mode="after")
    def _two_models(self) -> CascadeSpec:
        if self.first == self.then:
            raise ValueError(
                f"first and then are both {self.first!r}; a cascade needs two different models"
            )
        return self
