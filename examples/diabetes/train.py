"""Train the bundled `diabetes` example: tabular regression on scikit-learn's diabetes data.

Run from the repository root (needs the `train` extra: torch, onnx, scikit-learn):

    .venv/bin/python examples/diabetes/train.py

It writes model_repository/diabetes/ (model.yaml, 1/model.onnx, eval/test.jsonl) and prints
the held-out R² of a ridge model, a small MLP and the mean predictor.

The target is a quantitative measure of disease progression one year after baseline. Clients
send the ten baseline measurements in their raw units (age in years, sex 1/2, BMI, mean blood
pressure, six blood serum measurements s1..s6); the model.yaml tabular stage standardizes them
with the training mean/std and the regress stage turns the model's standardized output back
into the target's units. The ONNX graph therefore sees and returns standardized values only.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_diabetes
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, train_test_split
from torch import nn

from inferd.optimize.export import (
    OnnxRecipe,
    export_onnx,
    onnx_session,
    reproducible,
    rounded,
    write_jsonl,
    write_model_yaml,
    yaml_list,
)

SEED = 0
ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "model_repository" / "diabetes"
RECIPE = OnnxRecipe({"features": np.zeros((2, 10), np.float32)}, outputs=("target",))


def load() -> tuple[np.ndarray, np.ndarray, list[str], bool]:
    """Features in raw units when this scikit-learn can give them, else its scaled version."""
    try:
        data = load_diabetes(scaled=False)
        raw = True
    except TypeError:  # scikit-learn < 1.1 has no `scaled`
        data = load_diabetes()
        raw = False
    return data.data.astype(np.float64), data.target.astype(np.float64), data.feature_names, raw


class MLP(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(10, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers(features)
        return out


# Hyperparameters tried by cross-validation on the training rows (never the test rows).
LEARNING_RATES = (1e-3, 1e-2)
WEIGHT_DECAYS = (1e-2, 1.0)
HIDDEN = (8, 16)
EPOCHS = (100, 300, 1000)  # full-batch steps: the training set is ~350 rows


def fit_mlp(
    x: np.ndarray, y: np.ndarray, lr: float, decay: float, hidden: int, epochs: tuple[int, ...]
) -> dict[int, MLP]:
    """Train one MLP; return a copy of it after each of `epochs` steps."""
    torch.manual_seed(SEED)
    model = MLP(hidden)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=decay)
    inputs = torch.from_numpy(x).float()
    targets = torch.from_numpy(y).float()[:, None]
    snapshots: dict[int, MLP] = {}
    for step in range(1, max(epochs) + 1):
        model.train()
        loss = nn.functional.mse_loss(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step in epochs:
            snapshot = MLP(hidden)
            snapshot.load_state_dict(model.state_dict())
            snapshots[step] = snapshot.eval()
    return snapshots


def choose_mlp(x: np.ndarray, y: np.ndarray) -> tuple[MLP, str]:
    """5-fold cross-validation over a small grid, then a refit on all training rows."""
    folds = list(KFold(5, shuffle=True, random_state=SEED).split(x))
    scores: dict[tuple[float, float, int, int], float] = {}
    for lr, decay, hidden in itertools.product(LEARNING_RATES, WEIGHT_DECAYS, HIDDEN):
        fold_scores: dict[int, list[float]] = {epochs: [] for epochs in EPOCHS}
        for fit_rows, val_rows in folds:
            snapshots = fit_mlp(x[fit_rows], y[fit_rows], lr, decay, hidden, EPOCHS)
            for epochs, model in snapshots.items():
                with torch.no_grad():
                    predicted = model(torch.from_numpy(x[val_rows]).float()).numpy()[:, 0]
                fold_scores[epochs].append(float(r2_score(y[val_rows], predicted)))
        for epochs, values in fold_scores.items():
            scores[(lr, decay, hidden, epochs)] = float(np.mean(values))
    lr, decay, hidden, epochs = max(scores, key=lambda key: scores[key])
    model = fit_mlp(x, y, lr, decay, hidden, (epochs,))[epochs]
    cv = scores[(lr, decay, hidden, epochs)]
    return (
        model,
        f"MLP 10-{hidden}-1 tanh (lr {lr:g}, decay {decay:g}, {epochs} steps, CV R² {cv:.3f})",
    )


def ridge_as_torch(ridge: RidgeCV) -> nn.Module:
    linear = nn.Linear(10, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(np.asarray(ridge.coef_, dtype=np.float32))[None])
        linear.bias.fill_(float(ridge.intercept_))
    return nn.Sequential(linear).eval()


def write_repository(
    names: list[str],
    mean: np.ndarray,
    std: np.ndarray,
    target_mean: float,
    target_std: float,
    test_x: np.ndarray,
    test_y: np.ndarray,
    raw: bool,
    kind: str,
) -> None:
    units = "raw units" if raw else "scikit-learn's scaled units"
    inputs = "\n".join(f"  - {{name: {name}, datatype: FP32, shape: [1]}}" for name in names)
    text = f"""\
# The bundled tabular-regression example; rebuild with examples/diabetes/train.py.
name: diabetes
task: regression
backend: onnx
description: >-
  Predicts disease progression one year after baseline (a quantitative score, about 25-346)
  for a diabetes patient from ten baseline measurements in {units}: age (years), sex (1/2),
  body mass index, mean blood pressure and six blood serum measurements (s1..s6).
  A {kind} trained on scikit-learn's diabetes dataset.
inputs:
{inputs}
preprocess:
  - type: tabular
    features: {yaml_list(names)}
    output: features
    mean: {yaml_list(mean)}
    std: {yaml_list(std)}
postprocess:
  - type: regress
    output: target
    mean: [{target_mean!r}]
    std: [{target_std!r}]
batching: {{max_batch_size: 64, max_delay_ms: 0}}
runtime: {{threads: 1}}
eval: {{data: eval/test.jsonl, metric: r2, threshold: 0.3}}
"""
    write_model_yaml(MODEL_DIR, text)
    records = []
    for row, target in zip(test_x, test_y, strict=True):
        instance = {name: float(value) for name, value in zip(names, row, strict=True)}
        records.append({"instance": instance, "target": float(target)})
    write_jsonl(MODEL_DIR / "eval" / "test.jsonl", records)


def main() -> None:
    started = time.perf_counter()
    reproducible(SEED, threads=1)

    x, y, names, raw = load()
    train_x, test_x, train_y, test_y = train_test_split(x, y, test_size=0.2, random_state=0)
    print(
        f"diabetes ({'raw' if raw else 'scaled'} features): {len(train_x)} train, "
        f"{len(test_x)} test"
    )

    # Everything is standardized with TRAIN statistics, rounded to what model.yaml stores.
    mean, std = rounded(train_x.mean(0)), rounded(train_x.std(0))
    target_mean, target_std = (float(v) for v in rounded(np.array([train_y.mean(), train_y.std()])))
    z_train, z_test = (train_x - mean) / std, (test_x - mean) / std
    zy_train = (train_y - target_mean) / target_std

    def held_out_r2(model: nn.Module) -> float:
        with torch.no_grad():
            out = model(torch.from_numpy(z_test).float()).numpy()[:, 0]
        return float(r2_score(test_y, out * target_std + target_mean))

    ridge = RidgeCV(alphas=np.logspace(-3, 3, 25)).fit(z_train, zy_train)
    ridge_model = ridge_as_torch(ridge)
    mlp_model, mlp_name = choose_mlp(z_train, zy_train)
    candidates: dict[str, nn.Module] = {
        f"ridge regression (alpha {ridge.alpha_:.3g} by leave-one-out CV)": ridge_model,
        mlp_name: mlp_model,
    }
    scores = {name: held_out_r2(model) for name, model in candidates.items()}
    baseline = float(r2_score(test_y, np.full_like(test_y, train_y.mean())))
    print("held-out R²:")
    for name, score in scores.items():
        print(f"  {name}: {score:.4f}")
    print(f"  mean predictor (train mean): {baseline:.4f}")
    best = max(scores, key=lambda name: scores[name])
    print(f"keeping the {best}")

    # The test rows as the tabular stage standardizes them: float32 (x - mean) / std.
    def standardized(rows: np.ndarray) -> np.ndarray:
        return (rows.astype(np.float32) - mean.astype(np.float32)) / std.astype(np.float32)

    onnx_path = MODEL_DIR / "1" / "model.onnx"
    exported = export_onnx(
        candidates[best], onnx_path, RECIPE, {"features": standardized(test_x)}, batch_sizes=(1, 5)
    )
    print(f"onnx matches torch (max |diff| {exported.max_diff:.1e})")
    kind = "ridge regression" if best.startswith("ridge") else "small neural network (MLP)"
    write_repository(names, mean, std, target_mean, target_std, test_x, test_y, raw, kind)

    # Check the served path end to end: eval/test.jsonl → standardize in float32 as the
    # tabular stage does → ONNX Runtime → inverse-scale.
    sess = onnx_session(onnx_path)
    lines = (MODEL_DIR / "eval" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    raw_rows = np.array([[r["instance"][n] for n in names] for r in records])
    out = sess.run(["target"], {"features": standardized(raw_rows)})[0]
    assert out.shape == (len(records), 1) and out.dtype == np.float32
    served = out[:, 0].astype(np.float64) * target_std + target_mean
    served_r2 = r2_score([r["target"] for r in records], served)
    print(f"eval/test.jsonl through the served path: R² {served_r2:.4f}")
    assert served_r2 >= 0.3, "below the model.yaml threshold"
    print(
        f"wrote {MODEL_DIR} (model.onnx {onnx_path.stat().st_size} bytes) "
        f"in {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
