"""The temporary repository and the `inferd serve` the configurations are measured on.

Each configuration becomes a model folder of its own: the source model.yaml with its name and
the configuration's settings (`versions:`, `batching:` and `runtime:`, or a cascade's `when`),
the chosen version folder and the model's other files (labels, tokenizer, eval data) linked,
never copied. A cascade's members are staged once, under their own names, beside every
cascade configuration (`stage_members`): all its thresholds share them. One server holds as
many as fit in memory, so configurations are measured one at a time without restarting it.
Decide-rule actions are left out (a load test must not send webhooks) and so is the
prediction log.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from inferd.errors import InferdError, SpecError
from inferd.optimize.tuning.space import Config, merge
from inferd.spec import parse_spec

MEMORY_BUDGET_BYTES = 2 * 1024**3
"""What the configurations' sessions may hold at once, at ~4x their artifacts' size."""


def configured(data: dict[str, Any], name: str, config: Config | None) -> dict[str, Any]:
    """model.yaml's data for one configuration (None: as written), quiet under load."""
    data = copy.deepcopy(data)
    data["name"] = name
    if config is not None:
        merge(data, config.settings())
    data.pop("prediction_log", None)
    if data.get("decide"):
        data["decide"] = [{**rule, "actions": []} for rule in data["decide"]]
    return data


def _write(folder: Path, model_dir: Path, config: Config | None, versions: Sequence[str]) -> None:
    """`folder`: the model's files linked (its version folders: only `versions`), and its
    model.yaml for `config` written, once it is known to load."""
    source = yaml.safe_load((model_dir / "model.yaml").read_text(encoding="utf-8"))
    folder.mkdir(parents=True)
    for path in model_dir.iterdir():
        if path.name == "model.yaml" or path.name.startswith("."):
            continue
        if not path.name.isdigit() or path.name in versions:
            (folder / path.name).symlink_to(path.resolve())
    data = configured(source, folder.name, config)
    parse_spec(data, str(folder / "model.yaml"))  # a configuration that cannot load fails here
    (folder / "model.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def stage(root: Path, model_dir: Path, configs: Sequence[Config]) -> dict[Config, Path]:
    """Write one model folder per configuration under `root`."""
    folders = {}
    for config in configs:
        folder = root / config.folder(model_dir.name)
        chosen = [] if config.version is None else [str(config.version)]
        _write(folder, model_dir, config, chosen)
        folders[config] = folder
    return folders


def stage_members(root: Path, repo: Path, members: Sequence[str]) -> list[Path]:
    """A cascade's members under `root`, by their own names (the cascade names them), served
    as their model.yaml says."""
    for name in members:
        if not (repo / name / "model.yaml").is_file():
            raise SpecError(
                f"the cascade's member {name!r} is not a model of {repo} (no {repo / name}/"
                "model.yaml); the cascade's `first` and `then` must name models beside it"
            )
    staged = []
    for name in members:
        model_dir = repo / name
        numbers = [p.name for p in model_dir.iterdir() if p.name.isdigit()]
        _write(root / name, model_dir, None, numbers)
        staged.append(root / name)
    return staged


def per_server(model_dir: Path, versions: Sequence[int]) -> int:
    """How many configurations one server may hold: the memory budget over the largest
    version's files (ONNX Runtime holds a few times the file size per session)."""
    largest = max(
        (
            sum(f.stat().st_size for f in (model_dir / str(v)).rglob("*") if f.is_file())
            for v in versions
        ),
        default=0,
    )
    return max(1, MEMORY_BUDGET_BYTES // max(4 * largest, 1))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`inferd serve ROOT` on a free loopback port, in its own process group; ready when
    every model in it is."""

    def __init__(self, root: Path, models: Sequence[str], log: Path, timeout_s: float = 120.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [
            sys.executable,
            "-m",
            "inferd.cli",
            "serve",
            str(root),
            "--port",
            str(self.port),
            "--data-dir",
            str(root.parent / f"data-{self.port}"),
            "--log-level",
            "warning",
        ]
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self._wait(models, timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait(self, models: Sequence[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        waiting = list(models)
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while waiting:
                if self.process.poll() is not None:
                    raise InferdError(f"inferd serve exited early:\n{self._tail()}")
                if time.monotonic() > deadline:
                    raise InferdError(
                        f"inferd serve did not get {waiting[0]} ready in {timeout_s:g} s:\n"
                        f"{self._tail()}"
                    )
                try:
                    if client.get(f"/v2/models/{waiting[0]}/ready").status_code == 200:
                        waiting.pop(0)
                        continue
                except httpx.TransportError:
                    pass
                time.sleep(0.1)

    def _tail(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class Fleet:
    """Servers over the staged configurations, as many at a time as fit: `url(config)`
    starts one (stopping the last) when the configuration is not already served."""

    def __init__(
        self,
        work: Path,
        folders: dict[Config, Path],
        per_server: int,
        members: Sequence[Path] = (),
    ) -> None:
        self.work = work
        self.folders = folders
        self.per_server = per_server
        self.members = list(members)
        """Folders every server holds beside the configurations (a cascade's members)."""
        self.order: list[Config] = list(folders)
        self._server: Server | None = None
        self._serving: set[Config] = set()
        self._count = 0

    def expect(self, configs: Sequence[Config]) -> None:
        """The order the next configurations will be asked for (one server's worth at a
        time is started together)."""
        self.order = list(configs)

    def url(self, config: Config) -> str:
        if self._server is None or config not in self._serving:
            self._start(config)
        assert self._server is not None
        return self._server.url

    def _start(self, config: Config) -> None:
        self.close()
        at = self.order.index(config) if config in self.order else 0
        chunk = [config, *(c for c in self.order[at:] if c != config)][: self.per_server]
        self._count += 1
        root = self.work / f"server-{self._count}" / "repo"
        root.mkdir(parents=True)
        for folder in [*self.members, *(self.folders[c] for c in chunk)]:
            (root / folder.name).symlink_to(folder)
        log = root.parent / "server.log"
        self._server = Server(root, [self.folders[c].name for c in chunk], log)
        self._serving = set(chunk)

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            shutil.rmtree(self._server.log.parent / f"data-{self._server.port}", ignore_errors=True)
        self._server = None
        self._serving = set()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def check_folder(model_dir: Path) -> None:
    if not (model_dir / "model.yaml").is_file():
        raise SpecError(f"{model_dir} has no model.yaml; tune needs one (with an eval: section)")
