"""Running one preprocess stage on wire values, as the pipeline does."""

from __future__ import annotations

from collections.abc import Callable

from inferd.stages import Item, Preprocess, Values


def apply(step: Preprocess, values: Values) -> Item:
    """The item after `step` ran on a freshly decoded item of `values`."""
    item = Item.of(values)
    step(item)
    assert item.inputs is values, "a stage must never replace the item's wire inputs"
    return item


def values_after(step: Preprocess) -> Callable[[Values], Values]:
    """`step` as a function from wire values to the values it hands the next stage."""
    return lambda values: apply(step, values).values
