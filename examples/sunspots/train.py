"""Train the bundled `sunspots` example: forecast the next 12 yearly sunspot numbers.

Run from the repository root (needs the `train` extra: torch, onnx, plus statsmodels for the data):

    .venv/bin/python examples/sunspots/train.py

It writes model_repository/sunspots/ (model.yaml, 1/model.onnx, eval/test.jsonl) and
examples/sunspots/samples/recent.json, and prints the chosen window W and architecture with
the validation and test MASE of the model, the seasonal-naive and the naive forecast.

The data is YEARLY: statsmodels ships only the yearly mean sunspot numbers, 1700-2008 (309
values). The example was asked for monthly data; the yearly series is what is available
offline, so the model forecasts the next 12 years, and the season of the MASE and of the
seasonal-naive baseline is the 11-year solar cycle.

Split: training uses the values up to 1948 (forecast origins whose 12-year targets end by
1948); the test set is one example per forecast origin 1949-1997 (targets up to 2008). W and the
architecture are chosen on a validation split carved from the training period: models fitted
on the values up to 1888 forecast from the origins 1889-1937. First W is chosen with the MLP,
then the MLP, a 1-D CNN and a GRU are compared at that W; the winner is refitted on all the
values up to 1948.

Serving contract (the model.yaml stages): the `series` stage takes the last W values of the
client's list, standardized with the training mean/std, as float32 [W]; the graph maps
`window` [N, W] to `forecast` [N, 12] in the same standardized units; the `forecast` stage
undoes the standardization and clips at 0. Inside the graph every model works on sqrt(x + 1)
of the sunspot number x (the classic variance-stabilizing transform for this series) and
adds its nonlinear part to a linear autoregression over the window. The exported model is the
mean of three seeds. With only ~17 solar cycles to learn from, training draws windows from
the training years with random time stretching (cycle lengths vary, ~9-14 years) and amplitude
scaling (cycle heights vary several-fold); a quarter of each batch is unaltered windows.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import statsmodels.api as sm
import torch
from torch import nn

from inferd.optimize.export import (
    OnnxRecipe,
    export_onnx,
    onnx_session,
    reproducible,
    rounded,
    write_jsonl,
    write_model_yaml,
)

SEED = 0
HORIZON = 12  # years forecast
SEASON = 11  # the solar cycle, in years: the MASE scale and the seasonal-naive baseline
FIRST_YEAR = 1700
LAST_TRAIN_YEAR = 1948  # training values: 1700..1948
VAL_ORIGINS = range(1889, 1938)  # validation: fit on values up to 1888, targets up to 1948
TEST_ORIGINS = range(1949, 1998)  # test: targets up to 2008
WINDOWS = (24, 32, 40)
SEEDS = (0, 1, 2)  # the exported model is the mean of one fit per seed
STEPS = 1000
BATCH = 128
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 0.1
STRETCH = (0.8, 1.25)  # augmentation: time stretch factor (log-uniform)
AMPLITUDE = (0.6, 1.6)  # augmentation: amplitude factor (log-uniform)
UNALTERED = 0.25  # share of each batch that is plain windows of the series
RECENT = 60  # years in samples/recent.json

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "model_repository" / "sunspots"
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


def load() -> tuple[np.ndarray, np.ndarray]:
    data = sm.datasets.sunspots.load_pandas().data
    years = data["YEAR"].to_numpy().astype(int)
    values = data["SUNACTIVITY"].to_numpy(dtype=np.float64)
    assert years[0] == FIRST_YEAR and np.all(np.diff(years) == 1)
    return years, values


# --- metric and baselines (on raw values) -------------------------------------------------


def mase(histories: list[np.ndarray], targets: np.ndarray, forecasts: np.ndarray) -> float:
    """Mean over examples of MAE / (mean |h[k] - h[k - SEASON]| over the example's history)."""
    errors = []
    for history, target, forecast in zip(histories, targets, forecasts, strict=True):
        scale = np.abs(history[SEASON:] - history[:-SEASON]).mean()
        errors.append(np.abs(forecast - target).mean() / scale)
    return float(np.mean(errors))


def seasonal_naive(history: np.ndarray) -> np.ndarray:
    """Repeat the last season: step j (1..HORIZON) is h[len(h) - SEASON + (j - 1) % SEASON]."""
    return np.array([history[len(history) - SEASON + (j % SEASON)] for j in range(HORIZON)])


def naive(history: np.ndarray) -> np.ndarray:
    return np.full(HORIZON, history[-1])


# --- models ---------------------------------------------------------------------------------


class MLP(nn.Module):
    def __init__(self, window: int, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(window, hidden), nn.GELU(), nn.Dropout(0.2), nn.Linear(hidden, HORIZON)
        )
        self.linear = nn.Linear(window, HORIZON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x) + self.linear(x)
        return out


class CNN(nn.Module):
    def __init__(self, window: int, channels: int = 8) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(1, channels, 5, stride=2, padding=2), nn.GELU())
        self.head = nn.Linear(channels * ((window + 1) // 2), HORIZON)
        self.linear = nn.Linear(window, HORIZON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.conv(x[:, None, :]).flatten(1)) + self.linear(x)
        return out


class GRU(nn.Module):
    def __init__(self, window: int, hidden: int = 16) -> None:
        super().__init__()
        self.gru = nn.GRU(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, HORIZON)
        self.linear = nn.Linear(window, HORIZON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(x[:, :, None])  # [N, W] -> a sequence of W scalars
        out: torch.Tensor = self.head(states[:, -1]) + self.linear(x)
        return out


class Linear(nn.Module):
    """Reference only (not a candidate): the linear autoregression alone."""

    def __init__(self, window: int) -> None:
        super().__init__()
        self.linear = nn.Linear(window, HORIZON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(x)
        return out


ARCHITECTURES: dict[str, tuple[Callable[[int], nn.Module], str]] = {
    "mlp": (MLP, "MLP (W-16-12, GELU, dropout 0.2)"),
    "cnn": (CNN, "1-D CNN (8 channels, kernel 5, stride 2)"),
    "gru": (GRU, "GRU (16 hidden units, one year per step)"),
    "linear": (Linear, "linear autoregression"),
}
CANDIDATES = ("mlp", "cnn", "gru")


class RootSpace(nn.Module):
    """Standardized values in and out; the core works on standardized sqrt(sunspots + 1)."""

    def __init__(self, core: nn.Module, scaling: dict[str, float]) -> None:
        super().__init__()
        self.core = core
        self.mean, self.std = scaling["mean"], scaling["std"]
        self.root_mean, self.root_std = scaling["root_mean"], scaling["root_std"]

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        roots = torch.sqrt(torch.relu(window * self.std + self.mean) + 1.0)
        out = self.core((roots - self.root_mean) / self.root_std)
        values = torch.square(torch.relu(out * self.root_std + self.root_mean)) - 1.0
        return (values - self.mean) / self.std


class Average(nn.Module):
    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(window) for member in self.members]).mean(0)


# --- data -----------------------------------------------------------------------------------


def standardize(values: np.ndarray, mean: float, std: float) -> np.ndarray:
    """What the `series` stage does: float32 (x - mean) / std."""
    return (values.astype(np.float32) - np.float32(mean)) / np.float32(std)


def origin_examples(values: np.ndarray, origins: range) -> tuple[list[np.ndarray], np.ndarray]:
    """(history before the origin, the next HORIZON values) for each origin year."""
    histories = [values[: origin - FIRST_YEAR] for origin in origins]
    targets = np.stack([values[o - FIRST_YEAR : o - FIRST_YEAR + HORIZON] for o in origins])
    return histories, targets


def augmented_batch(
    series: np.ndarray, window: int, rng: np.random.Generator, mean: float, std: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """BATCH windows+targets read off `series` at random stretch, amplitude and position."""
    length = window + HORIZON
    stretch = np.exp(rng.uniform(*np.log(STRETCH), BATCH))
    amplitude = np.exp(rng.uniform(*np.log(AMPLITUDE), BATCH))
    plain = rng.random(BATCH) < UNALTERED
    stretch[plain], amplitude[plain] = 1.0, 1.0
    start = rng.uniform(0.0, len(series) - 1 - (length - 1) * stretch)
    start[plain] = np.floor(start[plain])
    at = start[:, None] + stretch[:, None] * np.arange(length)[None, :]
    samples = np.interp(at, np.arange(len(series)), series) * amplitude[:, None]
    z = standardize(samples, mean, std)
    return torch.from_numpy(z[:, :window]), torch.from_numpy(z[:, window:])


def fit(
    arch: str, window: int, series: np.ndarray, seed: int, scaling: dict[str, float]
) -> nn.Module:
    """One model trained on windows of `series` (L1 loss, AdamW, cosine decay)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = RootSpace(ARCHITECTURES[arch][0](window), scaling)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + float(np.cos(np.pi * step / STEPS)))
    )
    model.train()
    for _ in range(STEPS):
        inputs, targets = augmented_batch(series, window, rng, scaling["mean"], scaling["std"])
        loss = nn.functional.l1_loss(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


def fit_average(arch: str, window: int, series: np.ndarray, scaling: dict[str, float]) -> Average:
    return Average([fit(arch, window, series, seed, scaling) for seed in SEEDS]).eval()


def forecast(
    model: nn.Module, histories: list[np.ndarray], window: int, mean: float, std: float
) -> np.ndarray:
    """The served path in torch: last W values, standardize, model, inverse, clip at 0."""
    inputs = np.stack([standardize(history[-window:], mean, std) for history in histories])
    with torch.no_grad():
        out = model(torch.from_numpy(inputs)).numpy()
    return np.maximum(out.astype(np.float64) * std + mean, 0.0)


# --- writing ---------------------------------------------------------------------------------


MODEL_YAML = """\
# The bundled forecasting example; rebuild with examples/sunspots/train.py.
name: sunspots
task: forecasting
backend: onnx
description: >-
{description}
inputs:
  - {{name: series, datatype: FP32, shape: [-1]}}
preprocess:
  - {{type: series, input: series, output: window, window: {window}, mean: {mean!r}, std: {std!r}}}
postprocess:
  - {{type: forecast, output: forecast, mean: {mean!r}, std: {std!r}, min_value: 0}}
batching: {{max_batch_size: 64, max_delay_ms: 0}}
runtime: {{threads: 1}}
eval: {{data: eval/test.jsonl, metric: mase, season: {season}, threshold: {threshold}}}
"""


def write_repository(
    window: int,
    mean: float,
    std: float,
    kind: str,
    threshold: float,
    histories: list[np.ndarray],
    targets: np.ndarray,
) -> None:
    description = (
        "Forecasts the yearly mean sunspot number (the international sunspot number as shipped "
        "with statsmodels: yearly values, not monthly) for each of the next 12 years from a list "
        f"of past yearly values, oldest first, at least {window} of them (only the last {window} "
        f"are used). A {kind}, trained on the years {FIRST_YEAR}-{LAST_TRAIN_YEAR}; forecasts are "
        "clipped at 0."
    )
    text = MODEL_YAML.format(
        description=textwrap.fill(description, 94, initial_indent="  ", subsequent_indent="  "),
        window=window,
        mean=mean,
        std=std,
        season=SEASON,
        threshold=f"{threshold:.3f}",
    )
    write_model_yaml(MODEL_DIR, text)
    records = [
        {"instance": [float(v) for v in history], "target": [float(v) for v in target]}
        for history, target in zip(histories, targets, strict=True)
    ]
    write_jsonl(MODEL_DIR / "eval" / "test.jsonl", records)


def main() -> None:
    started = time.perf_counter()
    reproducible(SEED, threads=1)

    years, values = load()
    train = values[: LAST_TRAIN_YEAR - FIRST_YEAR + 1]
    fit_part = values[: VAL_ORIGINS.start - FIRST_YEAR]  # validation fits: up to 1888
    # Standardization with TRAIN statistics, rounded to what model.yaml stores.
    mean, std = float(rounded(train.mean())), float(rounded(train.std()))
    roots = np.sqrt(train + 1.0)
    scaling = {
        "mean": mean,
        "std": std,
        "root_mean": float(rounded(roots.mean())),
        "root_std": float(rounded(roots.std())),
    }
    print(
        f"yearly sunspot numbers {years[0]}-{years[-1]} ({len(values)} values); "
        f"train {FIRST_YEAR}-{LAST_TRAIN_YEAR} (mean {mean}, std {std}); validation origins "
        f"{VAL_ORIGINS.start}-{VAL_ORIGINS.stop - 1} (fits on {FIRST_YEAR}-"
        f"{VAL_ORIGINS.start - 1}); test origins {TEST_ORIGINS.start}-{TEST_ORIGINS.stop - 1}"
    )
    val_histories, val_targets = origin_examples(values, VAL_ORIGINS)
    test_histories, test_targets = origin_examples(values, TEST_ORIGINS)

    def val_mase(model: nn.Module, window: int) -> float:
        return mase(val_histories, val_targets, forecast(model, val_histories, window, mean, std))

    scores: dict[tuple[str, int], float] = {}

    def score(arch: str, window: int) -> float:
        tic = time.perf_counter()
        scores[(arch, window)] = val_mase(fit_average(arch, window, fit_part, scaling), window)
        print(
            f"  {arch:6} W={window}: validation MASE {scores[(arch, window)]:.4f} "
            f"({time.perf_counter() - tic:.1f} s)",
            flush=True,
        )
        return scores[(arch, window)]

    print("choosing W with the MLP:")
    window = min(WINDOWS, key=lambda w: (score("mlp", w), w))
    print(f"choosing the architecture at W={window}:")
    for arch in CANDIDATES[1:]:
        score(arch, window)
    arch = min(CANDIDATES, key=lambda a: scores[(a, window)])
    print("reference (not a candidate):")
    score("linear", window)
    name = ARCHITECTURES[arch][1]
    print(f"W = {window}; keeping the {name}")

    tic = time.perf_counter()
    model = fit_average(arch, window, train, scaling)
    print(f"refitted on {FIRST_YEAR}-{LAST_TRAIN_YEAR} in {time.perf_counter() - tic:.1f} s")
    onnx_path = MODEL_DIR / "1" / "model.onnx"
    test_windows = np.stack([standardize(h[-window:], mean, std) for h in test_histories])
    recipe = OnnxRecipe({"window": np.zeros((2, window), np.float32)}, outputs=("forecast",))
    exported = export_onnx(model, onnx_path, recipe, {"window": test_windows}, batch_sizes=(1, 5))

    baselines = {"seasonal-naive": seasonal_naive, "naive (last value)": naive}
    val_baselines = {
        label: mase(val_histories, val_targets, np.stack([f(h) for h in val_histories]))
        for label, f in baselines.items()
    }
    test_baselines = {
        label: mase(test_histories, test_targets, np.stack([f(h) for h in test_histories]))
        for label, f in baselines.items()
    }
    threshold = test_baselines["seasonal-naive"]
    kind = (
        f"{name.split(' (')[0]} on the square root of the values plus a linear autoregression "
        f"(the mean of {len(SEEDS)} seeds)"
    )
    write_repository(window, mean, std, kind, threshold, test_histories, test_targets)

    # The served path end to end: eval/test.jsonl -> last W values, standardized in float32 ->
    # ONNX Runtime -> inverse-scale, clip.
    sess = onnx_session(onnx_path)
    lines = (MODEL_DIR / "eval" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    histories = [np.array(r["instance"], dtype=np.float64) for r in records]
    windows = np.stack([standardize(h[-window:], mean, std) for h in histories])
    out = sess.run(["forecast"], {"window": windows})[0]
    assert out.shape == (len(records), HORIZON) and out.dtype == np.float32
    served = np.maximum(out.astype(np.float64) * std + mean, 0.0)
    test_mase = mase(histories, np.array([r["target"] for r in records]), served)
    print(f"onnx matches torch (max |diff| {exported.max_diff:.1e})")

    print(f"MASE (season {SEASON})       validation  test")
    print(f"  model                  {scores[(arch, window)]:10.4f}  {test_mase:.4f}")
    for label in baselines:
        print(f"  {label:22} {val_baselines[label]:10.4f}  {test_baselines[label]:.4f}")
    assert test_mase < min(threshold, float(f"{threshold:.3f}")), "not below the threshold"

    SAMPLES_DIR.mkdir(parents=True, exist_ok=True)
    body = {"instances": [[float(v) for v in values[-RECENT:]]]}
    (SAMPLES_DIR / "recent.json").write_text(json.dumps(body) + "\n", encoding="utf-8")
    recent = forecast(model, [values], window, mean, std)[0]
    print(
        f"forecast for {years[-1] + 1}-{years[-1] + HORIZON} from samples/recent.json: "
        + ", ".join(f"{v:.0f}" for v in recent)
    )
    print(
        f"wrote {MODEL_DIR} (model.onnx {onnx_path.stat().st_size} bytes) "
        f"in {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
