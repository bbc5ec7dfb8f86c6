"""Build the `loan-approval` worked example: a credit model that inherits a known bias, and
its fair reference (see data.py for the data and the bias, examples/README.md for the story).

Run from the repository root (needs the `train` extra for scikit-learn and onnx):

    .venv/bin/python -m examples.loan_approval.build      # a few seconds

It writes model_repository/loan-approval/ and model_repository/loan-approval-fair/ (model.yaml,
1/model.onnx, 1/profile.json, eval/test.jsonl) and examples/loan_approval/replay.jsonl: 2,000
new applicants with their true outcome, which the end-to-end test sends as predictions and
then as `/v1/feedback` labels. Both models are logistic regressions (scikit-learn) written
as one ONNX Gemm over the features the model.yaml tabular stage standardizes:

- `loan-approval` learns from 20,000 historical decisions (group B held to a stricter bar)
  and sees `group` as a feature: it inherits the bias.
- `loan-approval-fair` learns from the same applicants' true outcomes and never sees the
  group (its model.yaml still declares and logs it, so fairness can be measured).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.linear_model import LogisticRegression

from examples.loan_approval.data import FEATURES, INJECTED_GAP, LABELS, Applicants, generate
from inferd.monitor.profile import build_profile, save_profile
from inferd.optimize.export import rounded, write_file, write_jsonl, write_model_yaml, yaml_list

ROOT = Path(__file__).resolve().parents[2]
REPO = ROOT / "model_repository"
REPLAY = Path(__file__).with_name("replay.jsonl")
TRAIN_SEED, EVAL_SEED, REPLAY_SEED = 1, 2, 3


def matrix(applicants: Applicants, with_group: bool) -> np.ndarray:
    columns = [applicants.features]
    if with_group:
        columns.append((applicants.group == "B").astype(np.float64)[:, None])
    return np.hstack(columns)


def write_onnx(path: Path, model: LogisticRegression, mean: np.ndarray, std: np.ndarray) -> None:
    """logits = [0, w·x + b] over the standardized features: softmax gives P(approved)."""
    width = mean.size
    weights = np.zeros((2, width), np.float32)
    weights[1] = model.coef_[0]
    bias = np.array([0.0, model.intercept_[0]], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["features", "w", "b"], ["logits"], transB=1)],
        "loan_logistic",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        initializer=[numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    write_file(path, proto.SerializeToString())


MODEL_YAML = """\
# The loan-approval worked example ({what}); rebuild with `python -m examples.loan_approval.build`.
name: {name}
task: classification
backend: onnx
description: >-
  {description}
inputs:
  - {{name: income, datatype: FP32, shape: [1]}}
  - {{name: debt_ratio, datatype: FP32, shape: [1]}}
  - {{name: credit_history_years, datatype: FP32, shape: [1]}}
  - {{name: savings, datatype: FP32, shape: [1]}}
  - {{name: loan_amount, datatype: FP32, shape: [1]}}
  - {{name: group, datatype: BYTES, shape: [1]}}
preprocess:
  - type: tabular
    features: {features}
    output: features
    mean: {mean}
    std: {std}{categories}
postprocess:
  - {{type: classify, output: logits, softmax: true, top_k: 2}}
labels: [denied, approved]
batching: {{max_batch_size: 64, max_delay_ms: 0}}
runtime: {{threads: 1}}
eval: {{data: eval/test.jsonl, metric: accuracy, threshold: {threshold}}}
prediction_log: {{sample_rate: 1.0, inputs: all}}
# The four costs: a latency objective, a week of predictions in the live figures, and
# fairness over the applicant's group (logged with every prediction).
slo: {{p99_ms: 50}}
monitoring: {{window_s: 604800, min_labels: 50}}
fairness: {{attributes: [group], metric: accuracy, positive_label: approved, min_group_size: 50}}
# Checked by the monitor loop (inferd serve --monitor-interval): a warning in the log, through
# the action outbox, when the approval rates of the groups drift more than 10 points apart.
alerts:
  - name: approval_gap
    description: the groups' approval rates are more than 10 points apart
    when: demographic_parity_difference > 0.1
    actions: [{{type: log, level: warning}}]
"""


def build_model(
    name: str,
    train: Applicants,
    test: Applicants,
    with_group: bool,
    description: str,
    what: str,
) -> dict[str, float]:
    x = matrix(train, with_group)
    target = train.approved if with_group else train.repaid
    mean, std = rounded(x.mean(axis=0)), rounded(x.std(axis=0))  # as model.yaml keeps them
    model = LogisticRegression(C=10.0, max_iter=2000).fit((x - mean) / std, target)
    folder = REPO / name
    write_onnx(folder / "1" / "model.onnx", model, mean, std)
    features = [*FEATURES, "group"] if with_group else FEATURES
    approved = model.predict((matrix(test, with_group) - mean) / std).astype(bool)
    accuracy = float((approved == test.repaid).mean())
    rates = {g: float(approved[test.group == g].mean()) for g in ("A", "B")}
    write_model_yaml(
        folder,
        MODEL_YAML.format(
            name=name,
            what=what,
            description=description,
            features=yaml_list(features),
            mean=yaml_list(mean),
            std=yaml_list(std),
            categories="\n    categories: {group: [A, B]}" if with_group else "",
            threshold=np.floor(accuracy * 100) / 100,
        ),
    )
    examples = [
        {"instance": test.instance(i), "target": test.label(test.repaid, i)}
        for i in range(len(test.group))
    ]
    write_jsonl(folder / "eval" / "test.jsonl", examples)
    profile = build_profile(
        {k: [v] for k, v in example["instance"].items()} for example in examples
    )
    save_profile(profile, folder / "1")
    return {"accuracy": accuracy, "rate_A": rates["A"], "rate_B": rates["B"]}


def main() -> None:
    train = generate(20_000, TRAIN_SEED)
    test = generate(2_000, EVAL_SEED)
    biased = build_model(
        "loan-approval",
        train,
        test,
        with_group=True,
        what="it inherits a bias",
        description=(
            "Approves or denies a loan from five application figures and the applicant's "
            "group. Trained on historical decisions that held group B to a stricter bar, so it "
            "approves B less often than equally creditworthy A: a synthetic demo of bias that "
            "inferd's monitoring finds (examples/loan_approval)."
        ),
    )
    fair = build_model(
        "loan-approval-fair",
        train,
        test,
        with_group=False,
        what="the fair reference",
        description=(
            "The fair reference for loan-approval: the same applicants, trained on whether "
            "they repaid, never seeing the group (which is still logged, so its fairness can "
            "be measured). Synthetic data (examples/loan_approval)."
        ),
    )
    replay = generate(2_000, REPLAY_SEED)
    write_jsonl(
        REPLAY,
        (
            {"instance": replay.instance(i), "repaid": replay.label(replay.repaid, i)}
            for i in range(len(replay.group))
        ),
    )
    print(f"injected demographic parity difference (history): {INJECTED_GAP:.4f}")
    for name, figures in (("loan-approval", biased), ("loan-approval-fair", fair)):
        gap = figures["rate_A"] - figures["rate_B"]
        print(
            f"{name}: accuracy on the true outcome {figures['accuracy']:.4f}; approves "
            f"A {figures['rate_A']:.3f}, B {figures['rate_B']:.3f} (gap {gap:+.4f})"
        )
    print(f"labels {LABELS}; replay file {REPLAY.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
