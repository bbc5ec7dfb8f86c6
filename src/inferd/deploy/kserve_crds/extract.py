"""Refresh the KServe schemas beside this script from a clone of github.com/kserve/kserve.

    python src/inferd/deploy/kserve_crds/extract.py PATH/TO/kserve [--rev v0.15.0]

Keeps only what validation needs: the `openAPIV3Schema` of each CRD's served version (the
full CRD YAML is ten times larger), as JSON with a `$comment` naming the commit it came from;
copies KServe's LICENSE beside them. Update README.md's release and commit after running
it. A maintainer's tool, run by hand: inferd never imports it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CRDS = {
    "servingruntimes": "config/crd/full/serving.kserve.io_servingruntimes.yaml",
    "inferenceservices": "config/crd/full/serving.kserve.io_inferenceservices.yaml",
}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def served_schema(crd: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The served version's name and its openAPIV3Schema (a CRD serves exactly one here)."""
    served = [version for version in crd["spec"]["versions"] if version.get("served")]
    if len(served) != 1:
        names = [version["name"] for version in served]
        raise SystemExit(f"expected one served version, found {names}: update this script")
    return served[0]["name"], served[0]["schema"]["openAPIV3Schema"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="a clone (or bare mirror) of kserve/kserve")
    parser.add_argument("--rev", default="HEAD", help="the commit, tag or branch to read")
    args = parser.parse_args()
    commit = _git(args.repo, "rev-parse", f"{args.rev}^{{commit}}").strip()
    for name, path in CRDS.items():
        crd = yaml.safe_load(_git(args.repo, "show", f"{commit}:{path}"))
        version, schema = served_schema(crd)
        group = crd["spec"]["group"]
        schema = {
            "$comment": f"kserve/kserve {path} at {commit}: {group}/{version}, "
            "openAPIV3Schema only (Apache-2.0, see LICENSE)",
            **schema,
        }
        target = HERE / f"{name}.{version}.json"
        target.write_text(
            json.dumps(schema, separators=(",", ":"), sort_keys=True) + "\n", encoding="utf-8"
        )
        print(f"{target.name}: {target.stat().st_size:,} bytes")
    (HERE / "LICENSE").write_text(_git(args.repo, "show", f"{commit}:LICENSE"), encoding="utf-8")
    print(f"commit {commit}")


if __name__ == "__main__":
    main()
