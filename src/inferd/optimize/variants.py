"""A model's variants: new version folders that `inferd optimize` makes from an existing one.

A variant is written whole or not at all: `write_variant` fills a hidden staging folder inside
the model folder, renames it to the next version number (one atomic rename), then replaces
model.yaml (written aside and renamed over it) with the variant's record added under
`variants:`. When anything fails, the staging folder is removed and model.yaml is untouched,
so a half-written version never appears. A new variant does not change what is served: when
model.yaml serves the latest version, it is pinned to the versions served before, and the
variant is served once someone chooses it (`inferd tune --apply`, or `versions:`).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.util import load_yaml_guess_indent

from inferd.errors import SpecError
from inferd.repository import selected_versions, version_numbers
from inferd.spec import VariantSpec, load_spec, parse_spec


def tool_versions(packages: Iterable[str]) -> dict[str, str]:
    """Installed versions of the packages that make a variant (absent ones are left out)."""
    found = {}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def next_version(model_dir: Path) -> int:
    return max(version_numbers(model_dir), default=0) + 1


def served_versions(model_dir: Path) -> tuple[int, ...]:
    """The versions the model's model.yaml serves now (after a variant: the pinned ones)."""
    return tuple(selected_versions(load_spec(model_dir), version_numbers(model_dir)))


def round_trip(text: str) -> tuple[YAML, Any]:
    """model.yaml's text loaded for an edit that keeps the comments, order and layout people
    wrote, and the YAML that dumps it back so: with the file's own indentation (its
    "  - item" or "- item" lists are kept, not reflowed)."""
    _, indent, offset = load_yaml_guess_indent(text)
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 100
    sequence, offset = indent or 2, offset or 0
    yaml.indent(mapping=max(sequence - offset, 2), sequence=sequence, offset=offset)
    return yaml, yaml.load(text)


def dumped(yaml: YAML, data: Any, path: Path) -> str:
    """The edited data as text, checked to load as a model.yaml (nothing that does not load
    is ever written)."""
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    text = buffer.getvalue()
    loaded = YAML(typ="safe").load(text)
    parse_spec({"name": path.parent.name, **loaded}, str(path))
    return text


def _plain(value: Any) -> Any:
    """Numbers rounded for reading; tuples as lists; everything else as is."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def recorded(model_dir: Path, version: int, variant: VariantSpec) -> str:
    """model.yaml's text with `variant` recorded as `version` (and the served versions kept)."""
    path = model_dir / "model.yaml"
    spec = load_spec(model_dir)
    if spec is None:
        raise SpecError(f"{model_dir} has no model.yaml to record the variant in")
    yaml, data = round_trip(path.read_text(encoding="utf-8"))
    if data.get("versions", "latest") == "latest":
        served = max((v for v in version_numbers(model_dir) if v != version), default=None)
        if served is not None:
            data["versions"] = [served]
    variants = data.get("variants")
    if variants is None:
        data["variants"] = variants = {}
    variants[version] = _plain(variant.model_dump())
    return dumped(yaml, data, path)


def _mode_of(path: Path | None, default: int) -> int:
    """The permission bits of `path`, or `default` less the process's umask."""
    if path is not None and path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return default & ~umask


def replace_text(path: Path, text: str) -> None:
    """Write `path` aside in its folder, then rename it over the old one (atomic)."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); keep the mode the file had, else the umask's.
        os.chmod(temporary, _mode_of(path, 0o666))
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_variant(
    model_dir: Path, variant: VariantSpec, build: Callable[[Path], VariantSpec | None]
) -> int:
    """Make the next version of the model in `model_dir`: `build(folder)` writes its files
    into an empty staging folder (and may return the record completed with what it measured);
    the version appears, and model.yaml records it, only when `build` returns. The new version
    number is returned."""
    if load_spec(model_dir) is None:
        raise SpecError(f"{model_dir} has no model.yaml; a variant is recorded in it")
    staging = Path(tempfile.mkdtemp(dir=model_dir, prefix=".variant-"))
    os.chmod(staging, _mode_of(None, 0o777))  # mkdtemp's 0700 would hide it from other users
    try:
        built = build(staging)
        final = built if isinstance(built, VariantSpec) else variant
        version = next_version(model_dir)
        text = recorded(model_dir, version, final)
        target = model_dir / str(version)
        staging.rename(target)  # fails, rather than merging, if the folder appeared meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        replace_text(model_dir / "model.yaml", text)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return version


@dataclass(frozen=True)
class Made:
    """What an optimize command wrote: the model, the new version and its record."""

    model: str
    version: int
    variant: VariantSpec
    warnings: tuple[str, ...] = ()
    served: tuple[int, ...] = ()
    """The versions model.yaml serves after it (a variant is never served on its own)."""
