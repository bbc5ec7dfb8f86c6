"""The `inferd` command: thin — it parses, calls the library, and prints."""

from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from inferd.codecs import json_dumps
from inferd.errors import InferdError
from inferd.repository import ModelRepository, discover, load_model

app = typer.Typer(
    help="inferd: serve, query and evaluate models.", no_args_is_help=True, add_completion=False
)
console = Console()
err_console = Console(stderr=True)

DEFAULT_REPO = Path("model_repository")
RepoArg = Annotated[Path, typer.Argument(help="Model repository folder.")]
RepoOption = Annotated[Path, typer.Option("--repo", "-r", help="Model repository folder.")]
TrustOption = Annotated[
    bool,
    typer.Option("--trust-code", help="Allow models that run Python code from their folder."),
]
DataDirOption = Annotated[
    Path,
    typer.Option(
        "--data-dir", help="Folder of the store (prediction log, feedback, action outbox)."
    ),
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="INFERD_STORE",
        help="Store URL instead of DATA_DIR/inferd.db, e.g. postgresql://user@host/db.",
    ),
]
DEFAULT_DATA_DIR = Path(".inferd")


def _store_url(data_dir: Path, store: str | None) -> str:
    from inferd.store import default_store_url

    return store or default_store_url(data_dir)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def parse_size(text: str) -> int:
    """'32MiB', '512k', '1000000' → bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?)(i?b?)\s*", text.lower())
    if not match:
        raise typer.BadParameter(f"{text!r} is not a size; write e.g. 32MiB, 512KB or 1000000")
    number, unit, _ = match.groups()
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]
    return int(float(number) * factor)


@app.command()
def serve(
    repo: RepoArg = DEFAULT_REPO,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    trust_code: TrustOption = False,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="INFERD_API_KEY", help="Require this key on every non-health route."),
    ] = None,
    max_body_size: Annotated[
        str, typer.Option(help="Largest request body accepted, e.g. 32MiB.")
    ] = "32MiB",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    store: StoreOption = None,
    retention_days: Annotated[
        float,
        typer.Option(help="Days logged predictions and delivered actions are kept."),
    ] = 30.0,
) -> None:
    """Serve every model in REPO over HTTP (Open Inference Protocol V2 and KServe V1)."""
    from inferd.app import create_app
    from inferd.errors import ListenError, StartupError
    from inferd.http.server import HttpService

    if not repo.is_dir():
        raise _fail(f"model repository {repo} is not a folder")
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if retention_days <= 0:
        raise _fail("--retention-days must be positive")
    try:
        application = create_app(
            repo,
            trust_code=trust_code,
            api_key=api_key,
            max_body_bytes=parse_size(max_body_size),
            store_url=_store_url(data_dir, store),
            retention_days=retention_days,
        )
    except Exception as error:  # a bad URL, an unreachable database, a read-only folder
        raise _fail(f"cannot open the store: {error}") from None
    service = HttpService(
        application.handle,
        startup=application.startup,
        shutdown=application.shutdown,
        max_body_bytes=application.max_body_bytes,
    )
    try:
        service.run(host, port)
    except (ListenError, StartupError) as error:
        raise _fail(str(error)) from None


def _is_file(text: str) -> bool:
    """Whether a CLI argument names a file (a long JSON value is not a path, not an error)."""
    try:
        return Path(text).is_file()
    except OSError:
        return False


_FEATURE = re.compile(r"^[A-Za-z_][\w.\-]*=")


def _instances(inputs: list[str]) -> list[tuple[str, Any]]:
    """CLI inputs → (source, V1 instance): files, key=value features, JSON values or text."""
    pairs = [text for text in inputs if _FEATURE.match(text) and not _is_file(text)]
    if pairs:
        if len(pairs) != len(inputs):
            raise _fail("give either key=value features or files/values, not both")
        instance: dict[str, Any] = {}
        for pair in pairs:
            key, _, raw = pair.partition("=")
            try:
                instance[key] = json.loads(raw)
            except json.JSONDecodeError:
                instance[key] = raw
        return [("features", instance)]
    out: list[tuple[str, Any]] = []
    for text in inputs:
        if _is_file(text):
            data = Path(text).read_bytes()
            out.append((text, {"b64": base64.b64encode(data).decode("ascii")}))
            continue
        try:
            out.append((text, json.loads(text)))
        except json.JSONDecodeError:
            out.append((text, text))  # plain text, for text models; others say what they take
    return out


def _describe(fields: dict[str, Any]) -> str:
    if "label" in fields and "top_k" in fields:
        top = ", ".join(f"{t['label']} {t['score']:.3f}" for t in fields["top_k"])
        return f"{fields['label']}  (score {fields['score']:.3f}; top: {top})"
    if "detections" in fields:
        found = fields["detections"]
        lines = [f"{len(found)} found" if found else "nothing found"]
        lines += [
            f"  {d['label']} {d['score']:.3f} at [{', '.join(f'{v:.1f}' for v in d['box'])}]"
            for d in found
        ]
        return "\n".join(lines)
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
    )


@app.command()
def predict(
    model: Annotated[str, typer.Argument(help="Model name (a folder of the repository).")],
    inputs: Annotated[
        list[str], typer.Argument(help="Files, key=value features, JSON values or text.")
    ],
    repo: RepoOption = DEFAULT_REPO,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print prediction objects as JSON.")
    ] = False,
    trust_code: TrustOption = False,
) -> None:
    """Run one prediction in-process (no server) and print it."""
    try:
        entry = ModelRepository(repo, trust_code=trust_code).load_one(model)
    except InferdError as error:
        raise _fail(error.message) from None
    if entry.latest is None:
        raise _fail(f"model {model!r} did not load: {'; '.join(entry.errors)}")
    sources = _instances(inputs)
    outcomes = entry.latest.predictive.predict_instances([instance for _, instance in sources])
    failed = False
    for (source, _), outcome in zip(sources, outcomes, strict=True):
        if isinstance(outcome, InferdError):
            failed = True
            err_console.print(f"[red]error:[/red] {source}: {outcome.message}")
        elif as_json:
            typer.echo(json_dumps(outcome.as_json()).decode())
        else:
            prefix = f"{source}: " if len(sources) > 1 else ""
            console.print(prefix + _describe(outcome.fields), highlight=False)
    if failed:
        raise typer.Exit(1)


def _shapes(tensors: list[Any], batched: bool) -> str:
    return ", ".join(
        f"{t.name} {t.datatype}{[-1, *t.shape] if batched else t.shape}" for t in tensors
    )


@app.command()
def models(repo: RepoArg = DEFAULT_REPO, trust_code: TrustOption = False) -> None:
    """List the models of a repository: versions, task, backend, inputs and outputs."""
    try:
        repository = ModelRepository(repo, trust_code=trust_code)
        repository.load()
    except InferdError as error:
        raise _fail(error.message) from None
    table = Table(title=f"models in {repo}")
    for column in ("model", "versions", "task", "backend", "inputs", "outputs", "state"):
        table.add_column(column)
    for entry in repository.entries():
        latest = entry.latest
        spec = entry.spec
        table.add_row(
            entry.name,
            ", ".join(str(v) for v in sorted(entry.versions)) or "-",
            spec.task if spec else "-",
            spec.backend if spec else "-",
            _shapes(latest.inputs, latest.batched) if latest else "-",
            _shapes(latest.outputs, latest.batched) if latest else "-",
            "[green]ok[/green]"
            if not entry.errors
            else "[red]" + "; ".join(entry.errors) + "[/red]",
        )
    console.print(table)


@app.command()
def validate(repo: RepoArg = DEFAULT_REPO, trust_code: TrustOption = False) -> None:
    """Check every model.yaml and artifact in REPO; say exactly what is wrong."""
    from inferd.optimize.evaluate import load_examples

    try:
        folders = discover(repo)
    except InferdError as error:
        raise _fail(error.message) from None
    problems = 0
    for folder in folders:
        entry = load_model(folder, trust_code)
        errors = list(entry.errors)
        if entry.spec is not None and entry.spec.eval is not None:
            try:
                load_examples(folder / entry.spec.eval.data)
            except InferdError as error:
                errors.append(error.message)
        if errors:
            problems += 1
            console.print(f"[red]✗ {entry.name}[/red]")
            for message in errors:
                console.print("    " + message.replace("\n", "\n    "), highlight=False)
        else:
            versions = ", ".join(str(v) for v in sorted(entry.versions))
            console.print(f"[green]✓ {entry.name}[/green] (versions {versions})")
        for model in entry.versions.values():
            model.close()
    if not folders:
        raise _fail(f"{repo} holds no model folders (each needs model.yaml or 1/model.onnx)")
    if problems:
        raise _fail(f"{problems} of {len(folders)} models have problems")
    console.print(f"all {len(folders)} models are valid")


@app.command()
def evaluate(
    model: Annotated[str, typer.Argument(help="Model name.")],
    repo: RepoOption = DEFAULT_REPO,
    trust_code: TrustOption = False,
) -> None:
    """Score a model on the held-out data its model.yaml names; exit 1 below threshold."""
    from inferd.optimize.evaluate import evaluate as run_evaluation

    try:
        entry = ModelRepository(repo, trust_code=trust_code).load_one(model)
        report = run_evaluation(entry)
    except InferdError as error:
        raise _fail(error.message) from None
    verdict = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: ""}[report.passed]
    threshold = f" (threshold {report.threshold})" if report.threshold is not None else ""
    if report.baseline is not None:
        threshold += f"; seasonal-naive baseline {report.metric} = {report.baseline:.4f}"
    console.print(
        f"{report.model} v{report.version}: {report.metric} = {report.value:.4f} on "
        f"{report.count} examples ({report.failed} failed){threshold} {verdict}",
        highlight=False,
        soft_wrap=True,
    )
    if report.per_class is not None:
        scores = ", ".join(f"{label} {ap:.3f}" for label, ap in report.per_class.items())
        console.print(f"  average precision per class: {scores}", highlight=False)
    if report.classes is not None:
        required = report.min_recall or {}
        width = max((len(name) for name in report.classes), default=0)
        for name, counts in report.classes.items():
            precision = "n/a" if counts.precision is None else f"{counts.precision:.4f}"
            recall = "n/a" if counts.recall is None else f"{counts.recall:.4f}"
            need = f" (min recall {required[name]})" if name in required else ""
            console.print(
                f"  {name:<{width}}  precision {precision} ({counts.correct}/{counts.predicted})"
                f"  recall {recall} ({counts.correct}/{counts.support}){need}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    for problem in report.failures:
        console.print(
            f"  failed: {problem}", style="red", markup=False, highlight=False, soft_wrap=True
        )
    if report.passed is False:
        raise typer.Exit(1)


@app.command()
def generate(
    model: Annotated[str, typer.Argument(help="A generation model of the repository.")],
    prompt: Annotated[str, typer.Argument(help="The text to continue.")],
    repo: RepoOption = DEFAULT_REPO,
    max_tokens: Annotated[int, typer.Option(help="Tokens to generate at most.")] = 64,
    temperature: Annotated[float, typer.Option(help="0 is greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option()] = 1.0,
    top_k: Annotated[int, typer.Option()] = 0,
    repetition_penalty: Annotated[float, typer.Option()] = 1.0,
    seed: Annotated[int | None, typer.Option()] = None,
    stop: Annotated[list[str] | None, typer.Option(help="Stop at this text (repeatable).")] = None,
) -> None:
    """Stream a model's continuation of a prompt to the terminal, in-process (no server)."""
    import asyncio

    from inferd.generate.request import SamplingParams

    try:
        entry = ModelRepository(repo).load_one(model)
    except InferdError as error:
        raise _fail(error.message) from None
    latest = entry.latest
    if latest is None:
        raise _fail(f"model {model!r} did not load: {'; '.join(entry.errors)}")
    engine = latest.engine
    if engine is None:
        raise _fail(f"model {model!r} does not generate text; use `inferd predict`")
    params = SamplingParams(
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        repetition_penalty=repetition_penalty,
        seed=seed,
        stop=tuple(stop or ()),
    )

    async def run() -> str | None:
        reason = None
        async for delta in engine.stream(engine.encode(prompt), params):
            typer.echo(delta.text, nl=False)
            reason = delta.finish_reason or reason
        typer.echo()
        return reason

    engine.start()
    try:
        reason = asyncio.run(run())
    except InferdError as error:
        raise _fail(error.message) from None
    finally:
        engine.close()
    err_console.print(f"[dim]({reason})[/dim]", highlight=False)


@app.command()
def actions(
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    store: StoreOption = None,
    state: Annotated[
        str | None, typer.Option(help="Only actions in this state: pending, delivered, failed.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only this model's actions.")] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many (newest first).")] = 50,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Queue the failed actions shown again.")
    ] = False,
) -> None:
    """List the actions in the store's outbox (what the rules decided, and its delivery)."""
    import time

    from inferd.store import open_store

    if state not in (None, "pending", "delivered", "failed"):
        raise _fail(f"--state must be pending, delivered or failed; got {state!r}")
    url = _store_url(data_dir, store)
    if store is None and not (data_dir / "inferd.db").exists():
        raise _fail(f"{data_dir} holds no store yet; start `inferd serve --data-dir {data_dir}`")
    try:
        opened = open_store(url)
    except Exception as error:
        raise _fail(f"cannot open the store {url}: {error}") from None
    try:
        if retry_failed:
            count = opened.retry_failed(model=model)
            console.print(f"{count} failed actions queued again")
            return
        counts = opened.action_counts()
        found = opened.list_actions(state=state, model=model, limit=limit)
    finally:
        opened.close()
    summary = ", ".join(
        f"{m} {s}: {n}" for (m, s), n in sorted(counts.items()) if model in (None, m)
    )
    console.print(summary or "the outbox is empty", highlight=False)
    if not found:
        return
    table = Table("id", "model", "decision", "action", "state", "tries", "when", "request", "note")
    now = time.time()
    for action in found:
        if action.state == "pending" and action.next_attempt_at > now:
            note = f"next try in {action.next_attempt_at - now:.0f}s: {action.last_error or ''}"
        else:
            note = action.last_error or ""
        table.add_row(
            str(action.id),
            action.model,
            action.decision,
            action.action,
            action.state,
            str(action.attempts),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(action.created_at)),
            action.request_id,
            note[:80],
        )
    # Piped or captured output gets whole rows rather than cells cut to 80 columns.
    (console if console.is_terminal else Console(width=200)).print(table)


@app.command()
def bench(
    url: Annotated[str, typer.Argument(help="The server, e.g. http://127.0.0.1:8000")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model to send requests to.")],
    protocol: Annotated[
        str | None,
        typer.Option(help="v2, v2-binary, v1 or openai; default: v1 for --eval, else v2."),
    ] = None,
    scenario: Annotated[
        str, typer.Option(help="single-stream, server, offline or sweep.")
    ] = "sweep",
    concurrency: Annotated[
        str, typer.Option(help="sweep: closed-loop levels, e.g. 1,4,16,64.")
    ] = "1,4,16,64",
    duration: Annotated[float, typer.Option(help="Measured seconds per level.")] = 10.0,
    warmup: Annotated[float, typer.Option(help="Unmeasured seconds before each level.")] = 2.0,
    requests: Annotated[
        int | None,
        typer.Option(help="single-stream: this many instead of --duration; offline: the batch."),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="server: Poisson arrivals per second (no search).")
    ] = None,
    p99_bound_ms: Annotated[
        float | None,
        typer.Option(help="server: find the highest rate whose p99 stays under this."),
    ] = None,
    search_steps: Annotated[int, typer.Option(help="server: bisection steps.")] = 4,
    max_connections: Annotated[
        int, typer.Option(help="server/offline: connections opened at most.")
    ] = 256,
    timeout: Annotated[float, typer.Option(help="Seconds before a request is a timeout.")] = 30.0,
    workers: Annotated[int, typer.Option(help="Generator processes sharing the load.")] = 1,
    samples: Annotated[
        Path | None,
        typer.Option(help="JSONL of request bodies (V2 or V1), or of prompts (openai)."),
    ] = None,
    eval_data: Annotated[
        Path | None,
        typer.Option("--eval", help="An inferd model folder or eval JSONL: its instances/prompts."),
    ] = None,
    shape: Annotated[
        list[str] | None,
        typer.Option(help="Random inputs: an input's whole shape, NAME=1,28,28 (repeatable)."),
    ] = None,
    random_samples: Annotated[int, typer.Option(help="Random inputs: distinct requests.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of random inputs and arrivals.")] = 0,
    max_tokens: Annotated[int, typer.Option(help="openai: tokens per completion.")] = 32,
    ignore_eos: Annotated[
        bool, typer.Option("--ignore-eos", help="openai: always make --max-tokens tokens.")
    ] = False,
    header: Annotated[
        list[str] | None,
        typer.Option(help="Extra request header, 'Name: value' (repeatable)."),
    ] = None,
    json_out: Annotated[
        str | None,
        typer.Option("--json", help="Write the result as JSON to FILE, or - for stdout."),
    ] = None,
    plot_out: Annotated[
        Path | None, typer.Option("--plot", help="Write latency against load as a PNG.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
) -> None:
    """Load-test a running server (V2, V1 or OpenAI-compatible) from this process."""
    import inferd_bench as loadgen

    try:
        config = loadgen.BenchConfig(
            url=url,
            model=model,
            protocol=protocol,  # type: ignore[arg-type]  # checked by BenchConfig.check
            scenario=scenario,  # type: ignore[arg-type]
            concurrency=loadgen.parse_levels(concurrency),
            duration_s=duration,
            warmup_s=warmup,
            requests=requests,
            rate=rate,
            p99_bound_ms=p99_bound_ms,
            search_steps=search_steps,
            max_connections=max_connections,
            timeout_s=timeout,
            workers=workers,
            samples=samples,
            eval_data=eval_data,
            shapes=dict(loadgen.parse_shape(text) for text in shape or []),
            random_samples=random_samples,
            seed=seed,
            max_tokens=max_tokens,
            ignore_eos=ignore_eos,
            headers=dict(loadgen.parse_header(text) for text in header or []),
            progress=not quiet and err_console.is_terminal,
        )
        result = loadgen.run_bench(config)
        if plot_out is not None:
            loadgen.plot(result, plot_out)
    except loadgen.BenchError as error:
        raise _fail(str(error)) from None
    if json_out == "-":
        typer.echo(loadgen.to_json(result).decode(), nl=False)
    else:
        if json_out is not None:
            Path(json_out).write_bytes(loadgen.to_json(result))
        typer.echo(loadgen.markdown(result), nl=False)
    if any(point.errors for point in result.points):
        err_console.print("[yellow]some requests failed; see the errors column[/yellow]")


if __name__ == "__main__":
    app()
