"""The support-intent training recipe: how the model is built, fed, trained and exported, for
examples/support_intent/train.py and for `inferd optimize` (model.yaml `recipe:`).

The model is a fastText-like subword bag: every vocabulary token stands for itself and its
character 2- to 5-grams, each weighted by its inverse document frequency in the training
messages; a message is the masked sum of its tokens' feature vectors divided by the root of the
summed squared weights (close to an L2-normalised TF-IDF vector), and a linear layer turns that
into ten logits. The n-gram weights are what is trained, so a typo or an unseen inflection still
shares most of its n-grams with a known word. For export the n-gram sums are folded into one
[vocab, 10] table (`IntentNet`): the ONNX graph is a Gather, a masked ReduceSum and a division.

Serving transform (inferd's text stage, model.yaml `preprocess`): `Tokenizer.from_file`,
truncation to 64 tokens, one message encoded at a time (ids, attention mask of 1s), and a batch
padded to its longest message with id 0 / mask 0; `serving_encode` is the recipe's copy of it.

`recipe()` reads the committed tokenizer (model_repository/support-intent/tokenizer.json) and
the training split of messages.csv; its unlabeled data, for a teacher to label, are variants of
the training messages with words dropped (`variants`, a fixed seed). Distilling measured better
with these than with typos, swapped neighbours or halves of two messages joined as well
(docs/optimize.md).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from torch import nn

from inferd.optimize.export import OnnxRecipe, export_onnx
from inferd.optimize.recipe import TrainingSet
from inferd.optimize.training import Loss

SEED = 0
TEST_SIZE = 0.2
MAX_LENGTH = 64  # model.yaml max_length: longer messages are cut to 64 tokens
VOCAB_SIZE = 3000  # an upper bound: the trainer stops when no pair is left to merge
NGRAMS = (2, 5)  # character n-gram lengths that stand for each token
EPOCHS = 60
BATCH = 32
LR = 0.1
L2 = 1e-4  # squared-norm penalty on the n-gram weights
VARIANTS = 2  # unlabeled variants made from each training message
DROP = 0.2  # each word of a variant is dropped with this probability
VARIANT_SEED = 5

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MESSAGES = HERE / "messages.csv"
MODEL_DIR = ROOT / "model_repository" / "support-intent"
TOKENS = ("input_ids", "attention_mask")  # model.onnx inputs, in order: int64 [N, L]
ONNX = OnnxRecipe(
    {name: np.ones((2, 8), np.int64) for name in TOKENS},
    outputs=("logits",),
    dynamic={name: {0: "N", 1: "L"} for name in TOKENS},
)


# --- data and tokenizer --------------------------------------------------------------------------


def load_messages() -> tuple[list[str], list[str]]:
    with MESSAGES.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [row["text"] for row in rows], [row["intent"] for row in rows]


def split(
    texts: list[str], intents: list[str]
) -> tuple[list[str], list[str], list[str], list[str]]:
    """The 80/20 stratified split with a fixed seed: train texts, test texts, their intents."""
    from sklearn.model_selection import train_test_split

    train_x, test_x, train_i, test_i = train_test_split(
        texts, intents, test_size=TEST_SIZE, random_state=SEED, stratify=intents
    )
    return train_x, test_x, train_i, test_i


def train_tokenizer(texts: list[str]) -> Tokenizer:
    """A byte-pair tokenizer learnt from `texts`, with `[PAD]` = 0 and `[UNK]` = 1."""
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        special_tokens=["[PAD]", "[UNK]"],
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    assert tokenizer.token_to_id("[PAD]") == 0 and tokenizer.token_to_id("[UNK]") == 1
    # Names the pad token for batch encoders; encoding one message never pads.
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer


def load_serving_tokenizer(path: Path) -> Tokenizer:
    """The tokenizer as inferd's text stage loads it for model.yaml."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=MAX_LENGTH)
    return tokenizer


def serving_encode(tokenizer: Tokenizer, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Texts → (input_ids, attention_mask) int64 [N, L], as the text stage and batcher do it.

    Each text is encoded on its own (ids, a mask of 1s); the batch is padded on the right to
    its longest item with id 0 and mask 0.
    """
    encodings = [tokenizer.encode(text) for text in texts]
    length = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(texts), length), np.int64)
    mask = np.zeros((len(texts), length), np.int64)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.attention_mask)] = encoding.attention_mask
    return ids, mask


# --- unlabeled variants for a teacher to label ---------------------------------------------------


def variants(texts: Sequence[str], per_text: int, seed: int = VARIANT_SEED) -> list[str]:
    """`per_text` variants of each text, each word dropped with probability `DROP`; the same
    on every run, none equal to a text given or to another variant."""
    rng = np.random.default_rng(seed)
    seen = set(texts)
    made = []
    for _ in range(per_text):
        for text in texts:
            words = text.split()
            changed = " ".join([w for w in words if rng.random() >= DROP] or words[:1])
            if changed not in seen:
                seen.add(changed)
                made.append(changed)
    return made


# --- the model -----------------------------------------------------------------------------------


def token_features(
    tokenizer: Tokenizer, train_ids: np.ndarray, train_mask: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Each vocabulary token's features (itself and its character n-grams) and their idf.

    Returns feature indices [V, K] (padded with F, the number of features) and weights [V, K]
    (the feature's smoothed idf over the training messages, 0 for padding), and F.
    """
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    assert [i for _, i in vocab] == list(range(len(vocab)))
    per_token: list[list[str]] = []
    for token, i in vocab:
        if i == 0:  # [PAD] stands for nothing
            per_token.append([])
            continue
        features = {"token:" + token}
        if not token.startswith("["):
            word = f"<{token}>"
            for n in range(NGRAMS[0], NGRAMS[1] + 1):
                features.update(word[j : j + n] for j in range(len(word) - n + 1))
        per_token.append(sorted(features))
    names = sorted({f for features in per_token for f in features})
    index = {name: k for k, name in enumerate(names)}
    token_index = [[index[f] for f in features] for features in per_token]

    document_frequency = np.zeros(len(names))
    for ids, mask in zip(train_ids, train_mask, strict=True):
        present = {k for t in set(ids[mask == 1].tolist()) for k in token_index[t]}
        document_frequency[sorted(present)] += 1
    n = len(train_ids)
    idf = np.log((1 + n) / (1 + document_frequency)) + 1  # scikit-learn's smooth idf

    width = max(len(row) for row in token_index)
    feature_ids = np.full((len(vocab), width), len(names), np.int64)
    weights = np.zeros((len(vocab), width), np.float32)
    for t, row in enumerate(token_index):
        feature_ids[t, : len(row)] = row
        weights[t, : len(row)] = idf[row]
    return torch.from_numpy(feature_ids), torch.from_numpy(weights), len(names)


def pooled_logits(
    scores: torch.Tensor,
    squares: torch.Tensor,
    bias: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    mask = attention_mask.to(scores.dtype)
    total = (scores[input_ids] * mask.unsqueeze(-1)).sum(1)
    norm = (squares[input_ids] * mask).sum(1, keepdim=True).clamp(min=1e-6).sqrt()
    return total / norm + bias


class IntentNet(nn.Module):
    """(input_ids, attention_mask) int64 [N, L] → logits [N, C]; what model.onnx computes.

    `scores[t]` is token t's contribution to the logits and `squares[t]` the sum of its
    squared feature weights; padding positions (mask 0) contribute nothing. Built from a
    model.onnx, the table and bias are parameters (fine-tuning trains them directly).
    """

    def __init__(
        self,
        scores: torch.Tensor,
        squares: torch.Tensor,
        bias: torch.Tensor,
        trainable: bool = False,
    ) -> None:
        super().__init__()
        self.register_buffer("squares", squares)
        if trainable:
            self.scores = nn.Parameter(scores)
            self.bias = nn.Parameter(bias)
        else:
            self.register_buffer("scores", scores)
            self.register_buffer("bias", bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return pooled_logits(self.scores, self.squares, self.bias, input_ids, attention_mask)

    def folded(self) -> IntentNet:
        return IntentNet(
            self.scores.detach().clone(), self.squares.clone(), self.bias.detach().clone()
        ).eval()


class SubwordBag(nn.Module):
    """The training form of IntentNet: the per-token scores are sums of n-gram weights."""

    def __init__(
        self, feature_ids: torch.Tensor, weights: torch.Tensor, features: int, classes: int
    ) -> None:
        super().__init__()
        self.register_buffer("feature_ids", feature_ids)
        self.register_buffer("weights", weights)
        self.register_buffer("squares", (weights**2).sum(1))
        self.ngram = nn.Embedding(features + 1, classes, padding_idx=features)
        nn.init.normal_(self.ngram.weight, std=0.01)
        with torch.no_grad():
            self.ngram.weight[features].zero_()
        self.bias = nn.Parameter(torch.zeros(classes))

    def scores(self) -> torch.Tensor:
        return (self.ngram(self.feature_ids) * self.weights.unsqueeze(-1)).sum(1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return pooled_logits(self.scores(), self.squares, self.bias, input_ids, attention_mask)

    def folded(self) -> IntentNet:
        with torch.no_grad():
            return IntentNet(
                self.scores().detach().clone(),
                self.squares.clone(),
                self.bias.detach().clone(),
            ).eval()


def read_table(onnx_path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scores [V, C], squares [V], bias [C]) from a model.onnx this recipe exported."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    arrays = [numpy_helper.to_array(init) for init in graph.initializer]
    tables = [a for a in arrays if a.ndim == 2 and a.dtype == np.float32]
    if len(tables) != 1:
        raise ValueError(f"{onnx_path} is not a support-intent subword table (no [V, C] weight)")
    scores = tables[0]
    vectors = [a for a in arrays if a.ndim == 1 and a.dtype == np.float32]
    squares = [a for a in vectors if len(a) == scores.shape[0]]
    bias = [a for a in vectors if len(a) == scores.shape[1]]
    if len(squares) != 1 or len(bias) != 1:
        raise ValueError(f"{onnx_path}: cannot tell the squared weights and bias apart")
    return tuple(torch.from_numpy(a.copy()) for a in (scores, squares[0], bias[0]))  # type: ignore[return-value]


# --- the recipe ----------------------------------------------------------------------------------


class SupportIntentRecipe:
    """The Recipe protocol (inferd.optimize.recipe) for the subword bag over one tokenizer
    and one set of training messages."""

    epochs = EPOCHS
    batch_size = BATCH

    def __init__(
        self,
        tokenizer: Tokenizer,
        texts: list[str],
        intents: list[str],
        labels: list[str],
        unlabeled: list[str] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.texts = texts
        self.intents = intents
        self.labels = labels
        self.unlabeled = [] if unlabeled is None else unlabeled

    def build(self, onnx_path: Path | None) -> nn.Module:
        if onnx_path is not None:
            return IntentNet(*read_table(onnx_path), trainable=True).eval()
        torch.manual_seed(SEED)  # a fresh model is the same every time
        ids, mask = serving_encode(self.tokenizer, self.texts)
        return SubwordBag(*token_features(self.tokenizer, ids, mask), len(self.labels)).eval()

    def load_data(self) -> TrainingSet:
        return TrainingSet(list(self.texts), list(self.intents), list(self.unlabeled))

    def encode(
        self, instances: Sequence[Any], rng: np.random.Generator | None
    ) -> tuple[torch.Tensor, ...]:
        """The serving transform; training does not augment (rng unused): the variants are
        unlabeled data, for a teacher to label."""
        ids, mask = serving_encode(self.tokenizer, [str(text) for text in instances])
        return torch.from_numpy(ids), torch.from_numpy(mask)

    def train_step(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        inputs: tuple[torch.Tensor, ...],
        loss: Loss,
    ) -> float:
        total = loss(model(*inputs))
        if isinstance(model, SubwordBag):
            total = total + L2 * model.ngram.weight.pow(2).sum()
        optimizer.zero_grad()
        total.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        return float(total.detach())

    def optimizer(self, model: nn.Module, lr_scale: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(model.parameters(), lr=LR * lr_scale, weight_decay=0.0)

    def schedule(
        self, optimizer: torch.optim.Optimizer, total_steps: int
    ) -> torch.optim.lr_scheduler.LRScheduler:
        max_lr = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, total_steps=total_steps
        )

    def export(self, model: nn.Module, folder: Path) -> None:
        folded = model.folded() if isinstance(model, SubwordBag | IntentNet) else model
        ids, mask = serving_encode(self.tokenizer, self.texts[:64])
        export_onnx(
            folded,
            folder / "model.onnx",
            ONNX,
            dict(zip(TOKENS, (ids, mask), strict=True)),
            rtol=1e-5,
        )


def recipe(model_dir: Path = MODEL_DIR) -> SupportIntentRecipe:
    """The committed model's recipe: its tokenizer, the training split, and `VARIANTS`
    unlabeled variants of each training message."""
    texts, intents = load_messages()
    train_x, _, train_i, _ = split(texts, intents)
    labels = sorted(set(intents))
    tokenizer = load_serving_tokenizer(model_dir / "tokenizer.json")
    return SupportIntentRecipe(tokenizer, train_x, train_i, labels, variants(train_x, VARIANTS))
