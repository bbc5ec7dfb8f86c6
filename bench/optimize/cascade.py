"""Cascade support-intent → support-intent-minilm against the MiniLM teacher alone, served.

Target (issue 14): the cascade's accuracy within 0.5 pt of the teacher's, at >= 3x its
throughput. In one run, on a copy of the models under `work`:

1. the threshold: `inferd.optimize.cascade` computes accuracy and the share sent on for every
   threshold from one pass of each member over the eval set, and the cheapest within 0.5 pt of
   the teacher is written into the cascade's model.yaml. It is chosen on the eval set it is
   then scored on, so a 5-fold cross-validated accuracy (choose on 4/5, score on the 5th) is
   reported beside it as the honest estimate;
2. accuracy: `inferd evaluate` on the teacher, the small model and the cascade;
3. throughput: one `inferd serve` with all three models on a free loopback port, each driven
   in turn by the built-in load generator (closed loop, the same concurrency levels, eval
   messages as V1 instances); each model's best level counts. The share of served items the
   cascade sent on is read from its `inferd_cascade_items_total` metric.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.harness import ROOT
from bench.harness.report import Figure, figure
from bench.harness.servers import Server, http, inferd_serve
from inferd.optimize.cascade import MemberAnswers, answers, cheapest, points, write_when
from inferd.optimize.evaluate import load_examples
from inferd.repository import ModelRepository
from inferd_bench import BenchConfig, run_bench

SECTION = "cascade"
SMALL, TEACHER, CASCADE = "support-intent", "support-intent-minilm", "support-intent-cascade"
TOLERANCE = 0.005  # accuracy the cascade may give up against the teacher (the target)
CONCURRENCY = (8, 32)
DURATION_S = 8.0
FOLDS = 5


def _teacher_folder() -> Path:
    folder = ROOT / "model_repository" / TEACHER
    if not (folder / "1" / "model.onnx").is_file():
        print(f"building {TEACHER} (examples/support_intent_minilm/build.py) ...", flush=True)
        build = ROOT / "examples" / "support_intent_minilm" / "build.py"
        subprocess.run([sys.executable, str(build)], check=True, cwd=ROOT)
    return folder


def _repository(work: Path) -> Path:
    """support-intent (copied), the teacher (linked) and a cascade over them."""
    repo = work / "repo"
    repo.mkdir()
    shutil.copytree(ROOT / "model_repository" / SMALL, repo / SMALL)
    (repo / TEACHER).symlink_to(_teacher_folder(), target_is_directory=True)
    cascade = repo / CASCADE
    (cascade / "eval").mkdir(parents=True)
    shutil.copyfile(repo / SMALL / "labels.txt", cascade / "labels.txt")
    shutil.copyfile(repo / SMALL / "eval" / "test.jsonl", cascade / "eval" / "test.jsonl")
    (cascade / "model.yaml").write_text(
        f"name: {CASCADE}\ntask: classification\n"
        f'cascade: {{first: {SMALL}, then: {TEACHER}, when: "confidence < 0.8"}}\n'
        "labels: labels.txt\neval: {data: eval/test.jsonl, metric: accuracy}\n",
        encoding="utf-8",
    )
    return repo


def _subset(answered: MemberAnswers, rows: np.ndarray) -> MemberAnswers:
    return MemberAnswers([answered.labels[i] for i in rows], answered.confidence[rows])


def _choose(repo: Path) -> tuple[str, float, float, float]:
    """The threshold (its when, share sent on and eval accuracy), and the 5-fold
    cross-validated accuracy of choosing it that way."""
    examples = load_examples(repo / CASCADE / "eval" / "test.jsonl")
    instances = [instance for instance, _ in examples]
    targets = [str(target) for _, target in examples]
    repository = ModelRepository(repo)
    first, then = (answers(repository.load_one(n), instances) for n in (SMALL, TEACHER))
    teacher_accuracy = float(
        np.mean([label == t for label, t in zip(then.labels, targets, strict=True)])
    )
    chosen = cheapest(points(first, then, targets), teacher_accuracy - TOLERANCE)
    assert chosen is not None
    write_when(repo / CASCADE, chosen.when)
    order = np.random.default_rng(0).permutation(len(targets))
    right = 0
    for fold in range(FOLDS):
        test = order[fold::FOLDS]
        train = np.setdiff1d(order, test)
        train_targets = [targets[i] for i in train]
        train_then = _subset(then, train)
        accuracy = float(np.mean([then.labels[i] == targets[i] for i in train]))
        picked = cheapest(
            points(_subset(first, train), train_then, train_targets), accuracy - TOLERANCE
        )
        assert picked is not None
        for i in test:
            sent = first.confidence[i] < picked.threshold
            right += (then if sent else first).labels[i] == targets[i]
    return chosen.when, chosen.share_sent, chosen.metric, right / len(targets)


def _evaluate(repo: Path, model: str) -> float:
    """`inferd evaluate MODEL` (the CLI), its accuracy."""
    done = subprocess.run(
        [sys.executable, "-m", "inferd.cli", "evaluate", model, "--repo", str(repo)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    found = re.search(r"accuracy = ([0-9.]+)", done.stdout)
    if found is None:
        raise RuntimeError(f"inferd evaluate {model} failed:\n{done.stdout}{done.stderr}")
    print(done.stdout.splitlines()[0], flush=True)
    return float(found.group(1))


def _throughput(server: Server, repo: Path, model: str) -> float:
    result = run_bench(
        BenchConfig(
            url=server.url,
            model=model,
            scenario="sweep",
            concurrency=CONCURRENCY,
            duration_s=DURATION_S,
            warmup_s=2.0,
            eval_data=repo / model,
        )
    )
    for point in result.points:
        print(
            f"  {model} c={point.concurrency}: {point.throughput:,.0f} req/s, "
            f"{point.error_count} errors",
            flush=True,
        )
    return max(p.throughput for p in result.points if p.error_count == 0)


def _sent_share(server: Server) -> float:
    _, _, body = http("GET", server.url + "/metrics")
    counts = {
        member: float(value)
        for member, value in re.findall(
            r'inferd_cascade_items_total\{member="(\w+)",model="' + CASCADE + r'"\} (\S+)',
            body.decode(),
        )
    }
    total = sum(counts.values())
    return counts.get("then", 0.0) / total if total else float("nan")


def run(work: Path) -> list[Figure]:
    repo = _repository(work)
    when, share, chosen_accuracy, cv_accuracy = _choose(repo)
    print(
        f"chosen on the eval set: {when!r} sends {share:.1%} on ({chosen_accuracy:.4f}); "
        f"5-fold cross-validated accuracy of that choice {cv_accuracy:.4f}",
        flush=True,
    )
    accuracy = {model: _evaluate(repo, model) for model in (TEACHER, SMALL, CASCADE)}
    server = inferd_serve("inferd", repo, work / "serve.log", "--log-level", "warning")
    server.start()
    try:
        speed = {model: _throughput(server, repo, model) for model in (TEACHER, CASCADE, SMALL)}
        served_share = _sent_share(server)
    finally:
        server.stop()
    drop = (accuracy[TEACHER] - accuracy[CASCADE]) * 100
    return [
        figure(SECTION, f"teacher accuracy ({TEACHER})", accuracy[TEACHER], "", fmt="{:.4f}"),
        figure(SECTION, f"small accuracy ({SMALL})", accuracy[SMALL], ""),
        figure(SECTION, f"cascade accuracy ({when}, inferd evaluate)", accuracy[CASCADE], ""),
        figure(SECTION, "cascade accuracy drop vs teacher", drop, "pt", "<=", 0.5),
        figure(SECTION, "cascade accuracy, 5-fold cross-validated threshold", cv_accuracy, ""),
        figure(SECTION, "share sent on (eval set)", share, "%"),
        figure(SECTION, "share sent on (served, from metrics)", served_share, "%"),
        figure(SECTION, "teacher throughput", speed[TEACHER], "req/s"),
        figure(SECTION, "cascade throughput", speed[CASCADE], "req/s"),
        figure(SECTION, "small throughput", speed[SMALL], "req/s"),
        figure(
            SECTION,
            "cascade throughput vs teacher",
            speed[CASCADE] / speed[TEACHER],
            "x",
            ">=",
            3.0,
        ),
    ]
