"""What a model version's inputs looked like when it was built or evaluated: the reference
its live inputs are compared with for drift (`drift.py`).

Every wire input becomes one or more scalar features: a number is numeric; text with few
distinct values is categorical (a country, a group); other text becomes its length and word
count; an array (an image tensor, a series) its mean and standard deviation. A numeric
feature keeps a sorted sample (at most `SAMPLE` values, evenly spaced), a categorical one its
frequencies. Saved as `profile.json` in the version folder by `inferd evaluate`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PROFILE_FILE = "profile.json"
SAMPLE = 2000
MAX_CATEGORIES = 50


def _unwrap(value: Any) -> Any:
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def raw_features(inputs: Mapping[str, Any]) -> dict[str, float | str]:
    """An input dict as scalar features, text kept as text (its kind is decided later)."""
    features: dict[str, float | str] = {}
    for name, given in inputs.items():
        value = _unwrap(given)
        if _number(value) or isinstance(value, bool):
            features[name] = float(value)
        elif isinstance(value, str):
            features[name] = value
        elif isinstance(value, list):
            try:
                array = np.asarray(value, dtype=np.float64)
            except (ValueError, TypeError):
                continue
            if array.size:
                features[f"{name}.mean"] = float(array.mean())
                features[f"{name}.std"] = float(array.std())
    return features


def _text_features(name: str, text: str) -> dict[str, float]:
    return {f"{name}.length": float(len(text)), f"{name}.words": float(len(text.split()))}


@dataclass(frozen=True)
class Profile:
    """Per feature: ("numeric", sorted sample) or ("categorical", frequencies)."""

    numeric: dict[str, list[float]]
    categorical: dict[str, dict[str, float]]
    text: tuple[str, ...]
    """Text inputs profiled by their length and word count."""
    count: int

    def features(self, inputs: Mapping[str, Any]) -> dict[str, float | str]:
        """An input dict as this profile's features (text split the way the profile did)."""
        features: dict[str, float | str] = {}
        for name, value in raw_features(inputs).items():
            if name in self.text and isinstance(value, str):
                features.update(_text_features(name, value))
            elif name in self.categorical:
                features[name] = str(value)
            elif name in self.numeric and isinstance(value, float):
                features[name] = value
        return features

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "numeric": self.numeric,
            "categorical": self.categorical,
            "text": list(self.text),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        return cls(
            numeric={str(k): [float(v) for v in vs] for k, vs in data["numeric"].items()},
            categorical={
                str(k): {str(c): float(p) for c, p in vs.items()}
                for k, vs in data["categorical"].items()
            },
            text=tuple(str(t) for t in data.get("text", ())),
            count=int(data["count"]),
        )


def build_profile(examples: Iterable[Mapping[str, Any]]) -> Profile:
    """The profile of a set of input dicts (the eval data's instances, the training set)."""
    columns: dict[str, list[float | str]] = {}
    count = 0
    for inputs in examples:
        count += 1
        for name, value in raw_features(inputs).items():
            columns.setdefault(name, []).append(value)
    numeric: dict[str, list[float]] = {}
    categorical: dict[str, dict[str, float]] = {}
    text: list[str] = []
    for name, values in columns.items():
        if all(isinstance(v, float) for v in values):
            numeric[name] = _sample([float(v) for v in values])
            continue
        words = [str(v) for v in values]
        distinct = set(words)
        if len(distinct) <= MAX_CATEGORIES:
            categorical[name] = {c: words.count(c) / len(words) for c in sorted(distinct)}
        else:
            text.append(name)
            for key in (f"{name}.length", f"{name}.words"):
                numeric[key] = _sample([_text_features(name, w)[key] for w in words])
    return Profile(numeric, categorical, tuple(text), count)


def _sample(values: list[float]) -> list[float]:
    ordered = sorted(values)
    if len(ordered) <= SAMPLE:
        return ordered
    picks = np.linspace(0, len(ordered) - 1, SAMPLE).round().astype(int)
    return [ordered[i] for i in picks]


def save_profile(profile: Profile, version_dir: Path) -> Path:
    path = version_dir / PROFILE_FILE
    path.write_text(json.dumps(profile.to_json(), indent=1) + "\n", encoding="utf-8")
    return path


def load_profile(version_dir: Path) -> Profile | None:
    """The version's saved profile; None when it has none or it cannot be read."""
    path = version_dir / PROFILE_FILE
    try:
        return Profile.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


__all__ = [
    "PROFILE_FILE",
    "Profile",
    "build_profile",
    "load_profile",
    "raw_features",
    "save_profile",
]
