"""One virtual environment per peer, installed on demand from its pinned requirements file.

Each peer gets its own environment because their pins conflict (MLServer holds fastapi and
starlette far behind the others) and because a peer's dependencies must not change what the
others run. An environment is reused while its requirements file (and the Python that made
it) are unchanged: a marker file holds their hash and the versions pip installed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.harness import BenchError

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements"
MARKER = "peers-env.json"

# The distribution whose version names the peer in the table.
DISTRIBUTION = {
    "fastapi": "fastapi",
    "litserve": "litserve",
    "bentoml": "bentoml",
    "mlserver": "mlserver",
    "rayserve": "ray",
}


@dataclass
class PeerEnv:
    peer: str
    path: Path
    versions: dict[str, str]  # distribution → version, as installed
    install_s: float | None  # how long its install took (when it was made)
    reused: bool  # made by an earlier run, with the same pins

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name

    @property
    def version(self) -> str:
        return self.versions.get(DISTRIBUTION[self.peer], "?")


def requirements_digest(peer: str) -> str:
    text = (REQUIREMENTS / f"{peer}.txt").read_bytes()
    return hashlib.sha256(text + sys.version.encode()).hexdigest()


def installed_versions(python: Path, peer: str) -> dict[str, str]:
    names = [DISTRIBUTION[peer], "onnxruntime", "numpy"]
    code = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    out = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout))


def ensure(peer: str, venvs: Path) -> PeerEnv:
    """The peer's environment: reused when its marker matches, else (re)made and installed."""
    path = venvs / peer
    requirements = REQUIREMENTS / f"{peer}.txt"
    if not requirements.exists():
        raise BenchError(f"no pinned requirements for {peer}: {requirements}")
    digest = requirements_digest(peer)
    marker = path / MARKER
    if marker.exists() and (path / "bin" / "python").exists():
        saved = json.loads(marker.read_text())
        if saved.get("digest") == digest:
            return PeerEnv(peer, path, saved["versions"], saved.get("install_s"), reused=True)
    if path.exists():
        shutil.rmtree(path)
    log = venvs / f"{peer}-install.log"
    started = time.monotonic()
    # sys.executable may itself be a virtualenv's; venv creates from its base interpreter.
    steps = [
        [sys.executable, "-m", "venv", str(path)],
        [
            str(path / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "-r",
            str(requirements),
        ],
    ]
    with log.open("wb") as out:
        for argv in steps:
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
            if result.returncode != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise BenchError(f"installing {peer} failed ({' '.join(argv[:4])} ...):\n{tail}")
    seconds = time.monotonic() - started
    versions = installed_versions(path / "bin" / "python", peer)
    marker.write_text(json.dumps({"digest": digest, "versions": versions, "install_s": seconds}))
    return PeerEnv(peer, path, versions, seconds, reused=False)


def ensure_all(peers: list[str], venvs: Path) -> dict[str, PeerEnv | BenchError]:
    """Every peer's environment, installs running in parallel (they wait on the network, not
    the CPU); a peer that fails to install is reported, not fatal to the others."""
    venvs.mkdir(parents=True, exist_ok=True)
    results: dict[str, PeerEnv | BenchError] = {}

    def one(peer: str) -> None:
        pins = ", ".join(
            line.strip()
            for line in (REQUIREMENTS / f"{peer}.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        )
        try:
            env = ensure(peer, venvs)
        except BenchError as error:
            results[peer] = error
            print(f"  {peer}: install FAILED: {error}", flush=True)
            return
        results[peer] = env
        if env.reused:
            print(f"  {peer}: reusing {env.path} ({pins})", flush=True)
        else:
            print(f"  {peer}: installed {pins} in {env.install_s:.0f} s", flush=True)

    with ThreadPoolExecutor(max_workers=len(peers) or 1) as pool:
        list(pool.map(one, peers))
    return {peer: results[peer] for peer in peers}
