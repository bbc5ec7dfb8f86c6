"""`inferd tune --apply`: the chosen configuration pinned in model.yaml (`Config.settings`,
as the staged folders had it), comments and layout kept (a round-trip edit), the file
replaced atomically and only if what is written loads."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml.comments import CommentedSeq

from inferd.optimize.tuning.space import Config, merge
from inferd.optimize.variants import dumped, replace_text, round_trip


def pinned(path: Path, config: Config) -> str:
    """model.yaml's text with `config` pinned: versions, batching and runtime, or a cascade's
    `when`."""
    yaml, data = round_trip(path.read_text(encoding="utf-8"))
    settings = config.settings()
    if "versions" in settings:
        versions = CommentedSeq(settings["versions"])
        versions.fa.set_flow_style()  # versions: [2], as people write it
        settings["versions"] = versions
    merge(data, settings)
    return dumped(yaml, data, path)


def apply(model_dir: Path, config: Config) -> None:
    path = model_dir / "model.yaml"
    replace_text(path, pinned(path, config))
