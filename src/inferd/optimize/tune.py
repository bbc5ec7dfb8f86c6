"""`inferd tune`: the fastest way to serve a model that still meets a p99 bound and a metric
bound, found by measuring, on this machine, every variant x device x threads x max batch
size x batching delay (x cascade threshold) under load from the built-in generator.

Each configuration is served by a real `inferd serve` over a temporary repository (the model
repository is never written, unless `apply`). The metric of each version comes from its eval
set; the speed from the `Probe` the caller gives (the CLI's wraps `inferd_bench`, which the
server never imports). A space too big for the time budget is searched by successive
halving. The report (table, JSON, Pareto chart) goes to `out`.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from inferd.errors import NotFoundError, SpecError
from inferd.hardware import cpu
from inferd.optimize.measure import score
from inferd.optimize.progress import SILENT, Steps
from inferd.optimize.tuning import apply as pinning
from inferd.optimize.tuning import cascade, report, staging
from inferd.optimize.tuning.choice import (
    LOWER_IS_BETTER,
    Bounds,
    Row,
    choose,
    closest,
    metric_ok,
    pareto_front,
)
from inferd.optimize.tuning.search import (
    Effort,
    Load,
    Measurement,
    Probe,
    Trial,
    plan,
    successive_halving,
)
from inferd.optimize.tuning.space import (
    Config,
    build_space,
    cascade_space,
    default_batches,
    default_delays,
    default_threads,
    devices,
)
from inferd.repository import ModelRepository, version_numbers

SEARCH = Load()
"""The default load: the highest rate whose p99 holds the bound."""
CONFIRM = Effort(warmup_s=0.5, duration_s=10.0, search_steps=0)
"""The chosen configuration, re-measured at its rate for longer before it is reported."""
CONFIRM_SHARES = (1.0, 0.85, 0.7, 0.55, 0.4)
"""The shares of the found rate tried, in turn, until one holds the bound for 10 s."""
HEADROOM = 0.9
"""The confirmed rate's p99 must stay this far inside the bound: a p99 measured right at the
bound misses it in the next run about half the time, on a machine this noisy."""


@dataclass(frozen=True)
class Space:
    """What to search; None: tune's defaults (every version; cpu and what ONNX Runtime
    offers; 1 thread and all cores; batches 1, 8, 32 and the current; delays 0, bound/10,
    bound/4)."""

    versions: Sequence[int] | None = None
    devices: Sequence[str] | None = None
    threads: Sequence[int] | None = None
    batches: Sequence[int] | None = None
    delays_ms: Sequence[float] | None = None


@dataclass
class Tuned:
    model: str
    rows: list[Row]
    chosen: Row | None
    closest: list[Row]
    summary: report.Summary
    report: Path
    applied: bool = False
    notes: list[str] = field(default_factory=list)


def tune(
    repo: Path,
    model: str,
    bounds: Bounds,
    probe: Probe,
    out: Path,
    *,
    space: Space = Space(),
    load: Load = SEARCH,
    budget_s: float = 210.0,
    apply: bool = False,
    steps: Steps = SILENT,
) -> Tuned:
    """Measure, choose, report (and with `apply`, pin the choice in model.yaml)."""
    started = time.monotonic()
    if not (budget_s > 0 and math.isfinite(budget_s)):
        raise SpecError(f"--budget-s must be a positive number of seconds, not {budget_s}")
    model_dir = repo / model
    if not model_dir.is_dir():
        known = (
            ", ".join(sorted(p.name for p in repo.iterdir() if p.is_dir())) if repo.is_dir() else ""
        )
        raise NotFoundError(f"unknown model {model!r} in {repo}; the models are: {known or 'none'}")
    staging.check_folder(model_dir)
    entry = ModelRepository(repo).load_one(
        model, only=list(space.versions or version_numbers(model_dir))
    )
    spec = entry.spec
    if spec is None:
        raise SpecError(f"model {model!r} has no model.yaml")
    if spec.eval is None:
        raise SpecError(
            f"model {model!r} has no eval: section in its model.yaml; tune measures each "
            "version's metric on held-out data (eval: {data: eval/test.jsonl, metric: ...})"
        )
    if spec.task == "generation":
        raise SpecError(
            "tune measures classifiers, regressors, detectors and forecasters, not "
            "generation models"
        )
    notes: list[str] = []
    metric = spec.eval.metric
    members: list[str] = []
    sent: dict[float, float] = {}
    """A cascade threshold's share of items sent on."""
    if cascade.is_cascade(spec):
        assert spec.cascade is not None
        given = [name for name, value in asdict(space).items() if value is not None]
        if given:
            raise SpecError(
                f"model {model!r} is a cascade: its members serve it with their own settings, "
                f"so it has no {', '.join(given)} to try; tune its members for those"
            )
        members = [spec.cascade.first, spec.cascade.then]
        with steps.step("scoring every cascade threshold on the eval set", total=1) as advance:
            found = cascade.curve(entry)
            advance(1)
        best_source = found.source
        notes.append(f"best source: {spec.cascade.then} alone (every item sent on)")
        limit = _limit(bounds, spec.eval.threshold, metric, best_source, notes)
        kept = cascade.candidates(found.points, limit)
        notes.append(
            f"{len(found.points)} thresholds scored on the eval set; {len(kept)} measured "
            "(the most accurate for each share sent on, thinned)"
        )
        configs = cascade_space([p.threshold for p in kept])
        loaded: list[int] = []
        scored = {p.threshold: p.metric for p in found.points}
        sent = {p.threshold: p.share_sent for p in found.points}

        def metric_of(config: Config) -> float:
            assert config.threshold is not None
            return scored[config.threshold]

    else:
        for message in entry.errors:
            notes.append(f"left out: {message}")
        loaded = sorted(entry.versions)
        if not loaded:
            raise SpecError(f"model {model!r}: no version loaded: {'; '.join(entry.errors)}")
        values: dict[int, float] = {}
        with steps.step(
            f"scoring {len(loaded)} version(s) on the eval set", total=len(loaded)
        ) as advance:
            for number in loaded:
                values[number] = score(entry, number).value
                advance(1)
        for version in entry.versions.values():
            version.close()
        sources = [v for v in loaded if v not in spec.variants] or loaded
        best_source = (min if metric in LOWER_IS_BETTER else max)(values[v] for v in sources)
        limit = _limit(bounds, spec.eval.threshold, metric, best_source, notes)
        configs = build_space(
            loaded,
            space.devices or devices(),
            space.threads or default_threads(cpu().cores),
            space.batches or default_batches(spec.batching.max_batch_size),
            space.delays_ms if space.delays_ms is not None else default_delays(bounds.p99_ms),
        )

        def metric_of(config: Config) -> float:
            assert config.version is not None
            return values[config.version]

    schedule = plan(len(configs), budget_s, load)
    steps.note(f"{len(configs)} configurations; {schedule.describe()}")

    with tempfile.TemporaryDirectory(prefix="inferd-tune-") as tmp:
        work = Path(tmp)
        folders = staging.stage(work / "configs", model_dir, configs)
        companions = staging.stage_members(work / "members", repo, members)
        servers = staging.per_server(model_dir, loaded)
        with staging.Fleet(work, folders, servers, companions) as fleet:

            def measure(config: Config, effort: Effort, under: Load = load) -> Measurement:
                url, name = fleet.url(config), folders[config].name
                clock = time.monotonic()
                measured = probe(Trial(url, name, model_dir, bounds.p99_ms, under, effort))
                return replace(measured, seconds=time.monotonic() - clock)

            measured = successive_halving(
                configs,
                measure,
                schedule,
                eligible=lambda c: metric_ok(metric, metric_of(c), limit),
                steps=steps,
                before_rung=fleet.expect,
            )
            rows = [
                Row(
                    c,
                    metric_of(c),
                    m.measurement,
                    m.rung,
                    metric_ok(metric, metric_of(c), limit),
                    share_sent=None if c.threshold is None else sent[c.threshold],
                )
                for c, m in measured.items()
            ]
            front = pareto_front(rows, metric)
            rows = [replace(r, pareto=r.config in front) for r in rows]
            chosen = choose(rows, metric)
            confirmed = None
            if chosen is not None and load.kind == "search" and chosen.measurement.rate:
                confirmed = _confirm(
                    chosen.config, chosen.measurement.rate, measure, steps, bounds.p99_ms
                )
    if chosen is not None:
        rows = [replace(r, chosen=r.config == chosen.config) for r in rows]
        chosen = next(r for r in rows if r.chosen)
    rows.sort(key=lambda r: (not r.chosen, -r.rung, -(r.measurement.rate or -1.0)))
    near = closest(rows, bounds) if chosen is None else []
    if schedule.adaptive:
        notes.append(
            "screened: configurations measured only in an early rung were not among the fastest "
            "third there; their figures come from a shorter measurement"
        )
    summary = report.Summary(
        model=model,
        metric=metric,
        metric_limit=limit,
        best_source=best_source,
        bounds=bounds,
        plan=schedule,
        cpu=cpu().describe(),
        seconds=time.monotonic() - started,
        chosen=chosen,
        confirmed=confirmed,
        notes=notes,
    )
    folder = report.write(out, rows, summary)
    applied = False
    if apply and chosen is not None:
        pinning.apply(model_dir, chosen.config)
        applied = True
    return Tuned(model, rows, chosen, near, summary, folder, applied, notes)


def _limit(
    bounds: Bounds, threshold: float | None, metric: str, best_source: float, notes: list[str]
) -> float | None:
    """The worst metric allowed: the bound given, else the model's eval threshold."""
    limit = bounds.limit(metric, best_source)
    if limit is None and threshold is not None:
        limit = threshold
        notes.append(f"metric bound: the model's eval threshold ({metric} {limit:g})")
    return limit


def _confirm(
    config: Config,
    rate: float,
    measure: Callable[[Config, Effort, Load], Measurement],
    steps: Steps,
    bound_ms: float,
) -> Measurement:
    """The chosen configuration at its found rate for longer (a short search window is
    optimistic about the tail); where the p99 does not stay within HEADROOM of the bound,
    at 85%, 70%, ... of it: the rate reported is one that held for 10 s, or none."""
    shares = CONFIRM_SHARES
    with steps.step("re-measuring the choice at a fixed rate", total=len(shares)) as advance:
        for share in shares:
            measured = measure(config, CONFIRM, Load("rate", float(f"{rate * share:.3g}")))
            advance(1)
            p99 = measured.p99_ms
            if measured.meets and p99 is not None and p99 <= HEADROOM * bound_ms:
                break
    return measured
