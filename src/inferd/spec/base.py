"""What every section of model.yaml is built from: strict models, file paths that stay inside
the model folder, and the check that scaling values give one number per named thing."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo


def _inside_model_folder(value: str) -> str:
    """Paths in model.yaml name files of the model folder, never files elsewhere."""
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not value.strip():
        raise ValueError(
            f"{value!r} must be a path inside the model folder (no '..', not absolute)"
        )
    return value


ModelFile = Annotated[str, AfterValidator(_inside_model_folder)]
"""A file named in model.yaml, relative to the model (or version) folder."""


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt option must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_per(
    values: list[float] | None, info: ValidationInfo, key: str, what: str
) -> list[float] | None:
    """Check scaling values give one number per named thing (features, outputs)."""
    if values is None:
        return None
    names = info.data.get(key)
    if names is not None and len(values) not in (
        (1, len(names)) if key == "names" else (len(names),)
    ):
        raise ValueError(
            f"{info.field_name} has {len(values)} values but there are {len(names)} {key}; "
            f"give one per {what}"
        )
    if info.field_name == "std" and any(v == 0 for v in values):
        raise ValueError("std must not contain 0")
    return values
