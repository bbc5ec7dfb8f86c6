"""Train the bundled `pycoder` example: a small GPT-2 that autocompletes Python code.

Run from the repository root (needs the `train` extra plus transformers, which is only used to
build and save the Hugging Face folder: `.venv/bin/pip install transformers`):

    .venv/bin/python examples/pycoder/train.py                  # ~23 min on 2 idle CPU cores
    .venv/bin/python examples/pycoder/train.py --steps 20 --out /tmp/pycoder   # a smoke test

It writes model_repository/pycoder/ (or --out DIR): model.yaml, 1/config.json,
1/model.safetensors, 1/generation_config.json and 1/tokenizer.json (the Hugging Face layout,
written by `GPT2LMHeadModel.save_pretrained`), and eval/prompts.jsonl (demo prompts). It prints
the data sizes, the tokens/s and loss as it trains, the held-out loss and perplexity, and greedy
completions of a few prompts by the model loaded back from the folder with
`AutoModelForCausalLM.from_pretrained`.

Data: the source of the Python standard library that ships with the interpreter running the
script (`sysconfig.get_paths()["stdlib"]`; the committed model was trained on CPython 3.11.7's,
another version gives a slightly different corpus). Every `.py` file under it, except test
code (any folder named test, tests or idle_test), site-packages, `__pycache__`, generated data
(pydoc_data/ with the help topics, `_sysconfigdata_*`, config-*/ and the gencodec.py character
maps in encodings/) and files that are not UTF-8. A module is held out when the SHA-256 of its
path relative to the stdlib folder, as an integer, is < 3 mod 100 (about 3% of the files; on
3.11.7 these 17: asynchat, asyncio/events, crypt, distutils/__init__, distutils/log,
distutils/version, encodings/shift_jisx0213, functools, idlelib/searchbase, idlelib/squeezer,
lib2to3/fixes/fix_input, lib2to3/fixes/fix_operator, lib2to3/pgen2/tokenize,
multiprocessing/connection, multiprocessing/popen_spawn_posix, multiprocessing/popen_spawn_win32,
unittest/suite). Both the tokenizer and the model see only the other modules.

Tokenizer: byte-level BPE (`tokenizers`; vocabulary 4096 with `<|endoftext|>` = 0, the ByteLevel
decoder, no post-processor: encoding adds no special token). Before the ByteLevel pre-tokenizer
a Split isolates each newline together with the indentation after it, so "\\n    return x" is
"\\n    " + "return" + " x" instead of GPT-2's "\\n   " + " return" + " x". A prompt that ends
in a newline and its indentation, as an editor leaves it, is then tokenized exactly as the same
text is in training, and the model goes on with the statement instead of having to mend a split
space token.

Model: GPT-2 (`GPT2LMHeadModel`), 4 layers, width 256, 4 heads, 512 positions, tied input and
output embeddings, the tanh GELU (`gelu_pytorch_tanh`: the same function as GPT-2's gelu_new,
as one kernel), no dropout: 4,339,200 parameters, 17.4 MB of float32 safetensors. Each file is
`<|endoftext|>` + its text; the files are joined into one token stream. Training runs on windows
of 512 tokens (+1 for the targets) cut from that stream at a random shift each epoch, in a
shuffled order, 4 windows (2,048 tokens) a step; attention crosses the file separators as in
GPT-2's own training. Windows start anywhere in a file, so the model also completes a prompt
given without `<|endoftext|>` in front (inferd's engine adds no special token). AdamW (betas
0.9/0.95, weight decay 0.1 on matrices and embeddings), peak learning rate 2e-3 after 100 warmup
steps, cosine decay to a tenth of it, gradient norm clipped at 1. torch runs 2 threads with
deterministic algorithms; the time goes into matrix products once the AdamW is fused, gelu is
one kernel and deterministic mode no longer fills every new tensor with NaN (together twice as
fast as the defaults). On 800k training tokens (short runs, same schedule shape) a peak of 5e-3
did worse than 2e-3 (held-out loss 5.16 against 5.03 with 8 windows a step) and 4 windows a step
did slightly better than 8 (5.00); the first full run (1,400 steps of 8 windows) reached 3.68.

STEPS is fixed (not a time budget) so that a rerun gives the same files; it was sized from the
measured throughput (~4,600 tokens/s on 2 idle cores) to take about 25 minutes. `--minutes` only
guards against a slow machine: training stops at that bound with a warning (the cosine schedule
then never finishes and the result is not the documented one).

Held-out evaluation: the held-out modules joined the same way, cut into consecutive windows of
512 tokens (the last one shorter), each read from a fresh context; the mean cross-entropy over
every predicted token, its perplexity, and bits per character (tokenizer-independent).

Measured (CPython 3.11.7's stdlib, torch 2.13.0, transformers 5.24.0, 2 CPU cores): 648 training
files (9.93M characters, 2.81M tokens), 17 held-out (197k characters, 54k tokens); 3,000 steps =
6.14M tokens (2.2 epochs) in 22.4 min at 4,570 tokens/s, ~23 min in all. Held-out loss 3.614
nats/token, perplexity 37.1, 1.43 bits/character. The model writes Python-shaped code (indents,
`raise TypeError("...")`, `return NotImplemented`, docstrings) but greedy decoding soon repeats
itself: it is a few-million-parameter demo, not a useful assistant. Sample completions in
examples/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sysconfig
import time
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from torch.nn import functional
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel
from transformers.utils import logging as hf_logging

from inferd.optimize.export import reproducible, write_jsonl, write_model_yaml

SEED = 0
THREADS = 2
HELDOUT_PERCENT = 3  # a module is held out when sha256(relative path) % 100 < this
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__", "pydoc_data"}
EOT = "<|endoftext|>"
VOCAB_SIZE = 4096
N_LAYER = 4
N_EMBD = 256
N_HEAD = 4
N_POSITIONS = 512  # model.yaml's max_context
CONTEXT = 512  # training and evaluation window
BATCH = 4  # windows per step: 2048 tokens
STEPS = 3000  # sized to ~25 min on 2 idle cores (see the module docstring)
WARMUP = 100
LR = 2e-3
MIN_LR = LR / 10
WEIGHT_DECAY = 0.1
BETAS = (0.9, 0.95)
CLIP = 1.0
LOG_EVERY = 50
SAMPLE_TOKENS = 40

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "model_repository" / "pycoder"

MODEL_YAML = """\
# The bundled text-generation example; rebuild with examples/pycoder/train.py.
name: pycoder
task: generation
backend: torch
description: >-
  Python code autocomplete: a 4.3M-parameter GPT-2 trained from scratch on the Python
  standard library's own source; continues a snippet of Python with the next lines.
generation: {max_context: 512}
runtime: {threads: 1}  # one torch thread decodes fastest on a 2-core machine shared with HTTP
"""

# Demo prompts: what an editor would send, most ending where the next statement starts. None ends
# in a space after a word: the tokenizer joins a space to the word that follows it, so the model
# has hardly ever seen a token ending in a space and continues such a prompt badly.
PROMPTS = [
    ("def fibonacci(n):\n    ", "a function body from its name"),
    ("import os\nimport sys\n\n\ndef main():\n    ", "a script's main function"),
    ("class Stack:\n    def __init__(self):\n        ", "a constructor"),
    ("    def __len__(self):\n        return", "a __len__ return value"),
    ("for i in range(", "a for loop header"),
    ("with open(filename", "an open() call's arguments"),
    ('if __name__ == "__main__":\n    ', "the script entry point"),
    ("try:\n    import json\nexcept ImportError:\n    ", "an optional import"),
    ("def read_lines(path):\n    with open(path) as f:\n        ", "reading a file"),
    ("    raise ValueError(", "an exception message"),
    ("def is_prime(n):\n    if n < 2:\n        return False\n    for", "a loop in a function"),
    ("        if not isinstance(value, str):\n            raise", "a type check"),
    ("import re\n\n_pattern = re.compile(r", "a regular expression"),
    ("def __eq__(self, other):\n    if not isinstance(other,", "an __eq__ method"),
    ('def parse_args(argv=None):\n    """', "a docstring"),
    ("parser = argparse.ArgumentParser(", "argparse setup"),
    ("    @property\n    def name(self):\n        ", "a property"),
    ("result = []\nfor key, value in", "iterating over a mapping"),
    ("logger = logging.getLogger(", "a module logger"),
    ("    def close(self):\n        if self._closed:\n            return\n        ", "a method"),
]
SAMPLES = [0, 2, 11, 16, 19]  # the prompts whose completions are printed (and in the README)


# --- data and tokenizer ----------------------------------------------------------------------


def is_heldout(relative: str) -> bool:
    digest = hashlib.sha256(relative.encode("utf-8")).hexdigest()
    return int(digest, 16) % 100 < HELDOUT_PERCENT


def read_stdlib() -> tuple[list[tuple[str, str]], list[tuple[str, str]], int]:
    """(train, heldout) lists of (relative path, text), and how many files were skipped."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    train: list[tuple[str, str]] = []
    heldout: list[tuple[str, str]] = []
    skipped = 0
    for path in sorted(stdlib.rglob("*.py")):
        relative = path.relative_to(stdlib).as_posix()
        parts = relative.split("/")
        if SKIP_DIRS & set(parts[:-1]) or parts[0].startswith("config-"):
            continue
        if parts[-1].startswith("_sysconfigdata"):
            continue
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            skipped += 1
            continue
        if "gencodec.py" in text:  # a generated character-map table in encodings/
            skipped += 1
            continue
        (heldout if is_heldout(relative) else train).append((relative, text))
    return train, heldout, skipped


def train_tokenizer(texts: list[str]) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\n[ \t]*"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    assert tokenizer.token_to_id(EOT) == 0
    return tokenizer


def token_stream(tokenizer: Tokenizer, texts: list[str]) -> torch.Tensor:
    """`<|endoftext|>` + text of every file, one int64 stream."""
    eot = tokenizer.token_to_id(EOT)
    ids: list[int] = []
    for encoding in tokenizer.encode_batch(texts, add_special_tokens=False):
        ids.append(eot)
        ids.extend(encoding.ids)
    return torch.tensor(ids, dtype=torch.int64)


def epoch_windows(stream: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """[n, CONTEXT + 1] windows cut from the stream at a random shift, in a random order."""
    shift = int(torch.randint(CONTEXT, (1,), generator=generator))
    count = (len(stream) - shift - 1) // CONTEXT
    starts = shift + CONTEXT * torch.randperm(count, generator=generator)
    return torch.stack([stream[s : s + CONTEXT + 1] for s in starts.tolist()])


def batches(stream: torch.Tensor, steps: int, generator: torch.Generator):
    """`steps` batches of [BATCH, CONTEXT + 1] windows, epoch after epoch."""
    windows = epoch_windows(stream, generator)
    position = 0
    for _ in range(steps):
        if position + BATCH > len(windows):
            windows, position = epoch_windows(stream, generator), 0
        yield windows[position : position + BATCH]
        position += BATCH


# --- model and training ----------------------------------------------------------------------


def build_model(vocab_size: int, eot: int) -> GPT2LMHeadModel:
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=N_POSITIONS,
        n_embd=N_EMBD,
        n_layer=N_LAYER,
        n_head=N_HEAD,
        activation_function="gelu_pytorch_tanh",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eot,
        eos_token_id=eot,
        tie_word_embeddings=True,
    )
    return GPT2LMHeadModel(config)


def learning_rate(step: int, steps: int) -> float:
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(1, steps - WARMUP)
    return MIN_LR + 0.5 * (LR - MIN_LR) * (1 + math.cos(math.pi * progress))


def train(
    model: GPT2LMHeadModel, stream: torch.Tensor, steps: int, minutes: float
) -> tuple[int, float]:
    """Train in place; returns (steps run, seconds)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": WEIGHT_DECAY},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=LR,
        betas=BETAS,
        fused=True,
    )
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    started = time.perf_counter()
    recent: list[float] = []
    done = 0
    for step, batch in enumerate(batches(stream, steps, generator)):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps)
        logits = model(input_ids=batch[:, :-1]).logits
        loss = functional.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        recent.append(float(loss.detach()))
        done = step + 1
        elapsed = time.perf_counter() - started
        if done % LOG_EVERY == 0 or done == steps:
            rate = done * BATCH * CONTEXT / elapsed
            mean = sum(recent) / len(recent)
            print(
                f"  step {done:>5}/{steps}  loss {mean:.3f}  lr {learning_rate(step, steps):.2e}  "
                f"{elapsed / 60:5.1f} min  {rate:.0f} tokens/s",
                flush=True,
            )
            recent = []
        if elapsed > minutes * 60 and done < steps:
            print(f"WARNING: stopped at step {done}/{steps}: --minutes {minutes} ran out")
            break
    model.eval()
    return done, time.perf_counter() - started


@torch.no_grad()
def evaluate(model: GPT2LMHeadModel, stream: torch.Tensor) -> tuple[float, int]:
    """Mean next-token cross-entropy over consecutive CONTEXT windows; (loss, tokens scored)."""
    full = (len(stream) - 1) // CONTEXT
    windows = [stream[i * CONTEXT : (i + 1) * CONTEXT + 1] for i in range(full)]
    groups = [torch.stack(windows[i : i + BATCH]) for i in range(0, full, BATCH)]
    if len(stream) - 1 > full * CONTEXT:
        groups.append(stream[None, full * CONTEXT :])  # the last, shorter window
    total, count = 0.0, 0
    for group in groups:
        logits = model(input_ids=group[:, :-1]).logits
        targets = group[:, 1:]
        loss = functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
        total += float(loss)
        count += targets.numel()
    return total / count, count


# --- writing and checking the folder ---------------------------------------------------------


def write_repository(out: Path, model: GPT2LMHeadModel, tokenizer: Tokenizer) -> None:
    version = out / "1"
    version.mkdir(parents=True, exist_ok=True)
    for stale in version.glob("*"):
        stale.unlink()
    model.save_pretrained(version)
    tokenizer.save(str(version / "tokenizer.json"))
    write_model_yaml(out, MODEL_YAML)
    prompts = [{"prompt": prompt, "note": note} for prompt, note in PROMPTS]
    write_jsonl(out / "eval" / "prompts.jsonl", prompts)


@torch.no_grad()
def complete(model: torch.nn.Module, tokenizer: Tokenizer, prompt: str) -> str:
    """Greedy continuation of SAMPLE_TOKENS tokens (fewer at `<|endoftext|>`), as engine input:
    the prompt is encoded without special tokens."""
    ids = torch.tensor([tokenizer.encode(prompt, add_special_tokens=False).ids])
    eot = tokenizer.token_to_id(EOT)
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=SAMPLE_TOKENS,
        do_sample=False,
        eos_token_id=eot,
        pad_token_id=eot,
    )
    return tokenizer.decode(out[0, ids.shape[1] :].tolist())


def check_saved(out: Path, model: GPT2LMHeadModel, stream: torch.Tensor) -> torch.nn.Module:
    """Load the folder as transformers and tokenizers do; its logits must equal the model's."""
    loaded = AutoModelForCausalLM.from_pretrained(out / "1", dtype=torch.float32).eval()
    Tokenizer.from_file(str(out / "1" / "tokenizer.json"))
    window = stream[None, :CONTEXT]
    with torch.no_grad():
        diff = (loaded(input_ids=window).logits - model(input_ids=window).logits).abs().max()
    assert float(diff) == 0.0, f"the reloaded model's logits differ by {float(diff)}"
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODEL_DIR, help="the folder to write")
    parser.add_argument("--steps", type=int, default=STEPS, help="a quick check: fewer steps")
    parser.add_argument("--minutes", type=float, default=40.0, help="stop training after this")
    args = parser.parse_args()

    started = time.perf_counter()
    reproducible(SEED, THREADS)
    # Deterministic mode would also fill every new tensor with NaN: slow, and not needed here.
    torch.utils.deterministic.fill_uninitialized_memory = False
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    train_files, heldout_files, skipped = read_stdlib()
    print(f"stdlib: {sysconfig.get_paths()['stdlib']}")
    for name, files in (("train", train_files), ("held-out", heldout_files)):
        chars = sum(len(text) for _, text in files)
        print(f"{name}: {len(files)} files, {chars:,} characters")
    print(f"skipped (not UTF-8 or a generated character map): {skipped} files")
    print(f"held-out modules: {', '.join(path for path, _ in heldout_files)}")

    tokenizer = train_tokenizer([text for _, text in train_files])
    train_stream = token_stream(tokenizer, [text for _, text in train_files])
    heldout_stream = token_stream(tokenizer, [text for _, text in heldout_files])
    heldout_chars = sum(len(text) for _, text in heldout_files)
    print(
        f"tokenizer: vocab {tokenizer.get_vocab_size()}; tokens train {len(train_stream):,}, "
        f"held-out {len(heldout_stream):,} ({time.perf_counter() - started:.0f} s so far)"
    )

    eot = tokenizer.token_to_id(EOT)
    model = build_model(tokenizer.get_vocab_size(), eot)
    parameters = sum(p.numel() for p in model.parameters())
    print(
        f"model: GPT-2, {N_LAYER} layers, width {N_EMBD}, {N_HEAD} heads, "
        f"{N_POSITIONS} positions, {parameters:,} parameters"
    )
    tokens = args.steps * BATCH * CONTEXT
    print(
        f"training: {args.steps} steps of {BATCH} x {CONTEXT} tokens = {tokens:,} tokens "
        f"({tokens / len(train_stream):.2f} epochs)"
    )
    steps, seconds = train(model, train_stream, args.steps, args.minutes)
    rate = steps * BATCH * CONTEXT / seconds
    print(f"trained {steps} steps in {seconds / 60:.1f} min ({rate:.0f} tokens/s)")

    loss, scored = evaluate(model, heldout_stream)
    bits = loss * scored / math.log(2) / heldout_chars
    print(
        f"held-out: loss {loss:.4f} nats/token, perplexity {math.exp(loss):.2f}, "
        f"{bits:.3f} bits/character ({scored:,} tokens)"
    )

    write_repository(args.out, model, tokenizer)
    loaded = check_saved(args.out, model, heldout_stream)
    print("reloaded with AutoModelForCausalLM: logits equal the trained model's")
    for index in SAMPLES:
        prompt = PROMPTS[index][0]
        completion = complete(loaded, tokenizer, prompt)
        print(f"--- prompt {prompt!r}, completion {completion!r}:\n{prompt}{completion}")
    for path in sorted(args.out.rglob("*")):
        if path.is_file():
            print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    print(f"total {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
