"""`inferd tune`: the fastest configuration of a model that meets a p99 bound and a metric
bound, measured under load from the built-in generator (`inferd_bench`, imported here only,
as `inferd bench` does: the server never imports it)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from inferd.cli import common
from inferd.cli.common import DEFAULT_REPO, RepoOption, RichSteps, _fail
from inferd.errors import InferdError

if TYPE_CHECKING:
    from inferd.optimize.tuning.search import Measurement, Trial


def bench_probe(trial: Trial) -> Measurement:
    """One configuration measured by `inferd_bench`: the server scenario (Poisson arrivals,
    latency from the scheduled send time, so queueing counts), searching for the highest
    rate whose p99 holds the bound; or a fixed rate; or a fixed concurrency."""
    import inferd_bench as loadgen
    from inferd.optimize.tuning.search import Measurement

    load, effort = trial.load, trial.effort
    closed = load.kind == "concurrency"
    config = loadgen.BenchConfig(
        url=trial.url,
        model=trial.model,
        scenario="sweep" if closed else "server",
        concurrency=(int(load.value or 1),),
        duration_s=effort.duration_s,
        warmup_s=effort.warmup_s,
        rate=load.value if load.kind == "rate" else None,
        p99_bound_ms=trial.p99_ms,
        search_steps=effort.search_steps,
        eval_data=trial.eval_data,
        timeout_s=max(10.0, trial.p99_ms / 100),
    )
    try:
        result = loadgen.run_bench(config)
    except loadgen.BenchError as error:
        raise InferdError(f"measuring {trial.model}: {error}") from None
    if load.kind == "search":
        passed = [s for s in result.search if s.passed and s.rate == result.best_rate]
        tried = [s for s in result.search if s.p99_ms is not None]
        if passed:
            at = passed[0]
        elif tried:  # none held: the load that came closest
            at = min(tried, key=lambda s: s.p99_ms or 0.0)
        else:
            at = min(result.search, key=lambda s: s.rate)
        point = next((p for p in result.points if p.target_rate == at.rate), None)
        return Measurement(
            rate=result.best_rate,
            p99_ms=at.p99_ms,
            throughput=point.throughput if point else 0.0,
            error_rate=at.error_rate,
            offered=at.rate,
            trials=len(result.search),
        )
    point = result.points[0]
    p99 = point.latency_ms.p99 if point.latency_ms else None
    meets = p99 is not None and p99 <= trial.p99_ms and point.error_rate <= 0.01
    return Measurement(
        rate=(load.value if load.kind == "rate" else point.throughput) if meets else None,
        p99_ms=p99,
        throughput=point.throughput,
        error_rate=point.error_rate,
        offered=load.value if load.kind == "rate" else None,
    )


def _numbers(text: str | None, kind: type[float] | type[int], option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise _fail(f"{option}: {text!r} is not a comma-separated list of numbers") from None


def tune(
    model: Annotated[str, typer.Argument(help="Model name (its folder in the repository).")],
    p99_ms: Annotated[float, typer.Option("--p99-ms", help="The p99 latency bound (ms).")],
    repo: RepoOption = DEFAULT_REPO,
    min_metric: Annotated[
        float | None, typer.Option(help="The task metric must reach this (at most, for errors).")
    ] = None,
    max_drop: Annotated[
        float | None,
        typer.Option(help="The metric may fall at most this much below the best source version."),
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Pin the choice in the model's model.yaml.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Report folder (default: tune-reports/MODEL-TIMESTAMP)."),
    ] = None,
    budget_s: Annotated[
        float, typer.Option(help="Seconds of measuring; a bigger space is searched adaptively.")
    ] = 210.0,
    rate: Annotated[
        float | None,
        typer.Option(help="Measure at this fixed Poisson rate (req/s) instead of searching it."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(help="Measure with this many requests in flight instead (closed loop)."),
    ] = None,
    versions: Annotated[str | None, typer.Option(help="Versions to try, e.g. 1,3.")] = None,
    devices: Annotated[str | None, typer.Option(help="Devices to try, e.g. cpu,cuda.")] = None,
    threads: Annotated[str | None, typer.Option(help="Threads to try, e.g. 1,2.")] = None,
    batch_sizes: Annotated[
        str | None, typer.Option(help="Max batch sizes to try, e.g. 1,8,32.")
    ] = None,
    delays_ms: Annotated[
        str | None, typer.Option(help="Batching delays to try (ms), e.g. 0,0.5,1.")
    ] = None,
) -> None:
    """Measure every variant x device x threads x max batch size x batching delay under load,
    keep those meeting --p99-ms and the metric bound, choose the fastest, write a report
    (table, JSON, Pareto chart); --apply pins the choice in model.yaml."""
    from inferd.optimize.tune import Space
    from inferd.optimize.tune import tune as run_tune
    from inferd.optimize.tuning.choice import Bounds
    from inferd.optimize.tuning.search import Load

    if rate is not None and concurrency is not None:
        raise _fail("give --rate or --concurrency, not both")
    if (rate is not None and not rate > 0) or (concurrency is not None and concurrency < 1):
        raise _fail("--rate and --concurrency must be positive")
    load = (
        Load("rate", rate)
        if rate is not None
        else Load("concurrency", concurrency)
        if concurrency is not None
        else Load()
    )
    space = Space(
        versions=[int(v) for v in _numbers(versions, int, "--versions") or []] or None,
        devices=[d.strip() for d in devices.split(",") if d.strip()] if devices else None,
        threads=[int(v) for v in _numbers(threads, int, "--threads") or []] or None,
        batches=[int(v) for v in _numbers(batch_sizes, int, "--batch-sizes") or []] or None,
        delays_ms=_numbers(delays_ms, float, "--delays-ms"),
    )
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = out or Path("tune-reports") / f"{model}-{stamp}"
    steps = RichSteps()
    try:
        bounds = Bounds(p99_ms, min_metric, max_drop)
        tuned = run_tune(
            repo,
            model,
            bounds,
            bench_probe,
            folder,
            space=space,
            load=load,
            budget_s=budget_s,
            apply=apply,
            steps=steps,
        )
    except InferdError as error:
        raise _fail(error.message) from None
    say = common.console.print
    summary = tuned.summary
    say(f"CPU: {summary.cpu}", highlight=False, soft_wrap=True, markup=False)
    say(f"search: {summary.plan.describe()}", highlight=False, soft_wrap=True, markup=False)
    say(f"report: {tuned.report}", highlight=False, soft_wrap=True, markup=False)
    chosen = tuned.chosen
    if chosen is None:
        common.err_console.print(
            f"[red]no configuration met p99 <= {p99_ms:g} ms and the metric bound[/red]; "
            "the closest:",
            soft_wrap=True,
        )
        for row in tuned.closest:
            m = row.measurement
            held = f"{m.rate:g} req/s" if m.rate is not None else "no load tried"
            say(
                f"  {row.config.label}: p99 {m.p99_ms or float('nan'):.3g} ms "
                f"({held} held the bound), {summary.metric} {row.metric_value:.4g}"
                f"{'' if row.meets_metric else ' (below the metric bound)'}",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )
        if apply:
            common.err_console.print("nothing applied: model.yaml is unchanged")
        raise typer.Exit(1)
    m, c = chosen.measurement, chosen.config
    say(
        f"chosen: {c.label} — {m.rate:g} req/s with p99 {m.p99_ms or 0:.3g} ms, "
        f"{summary.metric} {chosen.metric_value:.4g}",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    if summary.confirmed is not None:
        confirmed = summary.confirmed
        verdict = "held" if confirmed.meets else "did NOT hold"
        say(
            f"re-measured at {confirmed.offered or 0:g} req/s offered: p99 "
            f"{confirmed.p99_ms or 0:.3g} ms ({verdict})",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    settings = (
        f'cascade.when "confidence < {c.threshold:g}" (sends {chosen.share_sent or 0:.1%} on)'
        if c.threshold is not None
        else f"versions: [{c.version}], batching.max_batch_size {c.max_batch_size}, "
        f"batching.max_delay_ms {c.max_delay_ms or 0:g}, runtime.threads {c.threads}, "
        f"runtime.device {c.device}"
    )
    say(
        f"pinned in {repo / model / 'model.yaml'}: {settings}"
        if tuned.applied
        else f"to serve it: inferd tune {model} --p99-ms {p99_ms:g} --apply, or set {settings}",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
