"""`inferd tune --apply`: the chosen configuration pinned in model.yaml, comments and layout
kept (a round-trip edit), the file replaced atomically and only if what is written loads."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.util import load_yaml_guess_indent

from inferd.errors import SpecError
from inferd.optimize.tuning.space import Config
from inferd.optimize.variants import replace_text
from inferd.spec import parse_spec

SetThreshold = Callable[[Any, float], None]
"""Writes a cascade's chosen threshold into model.yaml's data (the cascade section)."""


def _section(data: Any, key: str) -> Any:
    section = data.get(key)
    if section is None:
        section = data[key] = CommentedMap()
    return section


def pinned(path: Path, config: Config, set_threshold: SetThreshold | None = None) -> str:
    """model.yaml's text with `config` pinned: versions, batching and runtime."""
    text = path.read_text(encoding="utf-8")
    _, indent, offset = load_yaml_guess_indent(text)
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 100
    sequence, offset = indent or 2, offset or 0  # keep the file's "  - item" or "- item"
    yaml.indent(mapping=max(sequence - offset, 2), sequence=sequence, offset=offset)
    data = yaml.load(text)
    versions = CommentedSeq([config.version])
    versions.fa.set_flow_style()  # versions: [2], as people write it
    data["versions"] = versions
    batching = _section(data, "batching")
    batching["max_batch_size"] = config.max_batch_size
    batching["max_delay_ms"] = config.max_delay_ms
    runtime = _section(data, "runtime")
    runtime["threads"] = config.threads
    runtime["device"] = config.device
    if config.threshold is not None:
        if set_threshold is None:
            raise SpecError("a cascade threshold was chosen but nothing can write it")
        set_threshold(data, config.threshold)
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    text = buffer.getvalue()
    parse_spec(YAML(typ="safe").load(text), str(path))  # what is written must load
    return text


def apply(model_dir: Path, config: Config, set_threshold: SetThreshold | None = None) -> None:
    path = model_dir / "model.yaml"
    replace_text(path, pinned(path, config, set_threshold))
