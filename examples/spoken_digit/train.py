"""Train the bundled `spoken-digit` example: a small CNN on log-mel spectrograms of spoken digits.

Run from the repository root, after examples/spoken_digit/synthesize.py (which needs espeak-ng)
has written examples/spoken_digit/data/; needs the `train` extra (torch, onnx, scikit-learn,
which brings scipy and threadpoolctl) and soundfile and soxr, which inferd's audio stage uses:

    .venv/bin/python examples/spoken_digit/synthesize.py   # ~3 min
    .venv/bin/python examples/spoken_digit/train.py        # ~8-10 min on 2 CPU cores, 16 when busy

It writes model_repository/spoken-digit/ (model.yaml, labels.txt, 1/model.onnx,
eval/test.jsonl) and examples/spoken_digit/samples/ (seven.wav and three.wav as espeak-ng
writes them, 22.05 kHz; two.flac, 44.1 kHz stereo; five.ogg, Vorbis), and prints the held-out
accuracy overall and per voice variant, speed, accent and digit. It also prints the mean and
std of the training features in dB, from which MEAN and STD below were rounded.

Every feature the model sees, in training and in every check, is made by inferd's own audio
stage (`inferd.stages.audio.build`) from the bytes of a WAV file, configured from the
`preprocess` entry of the model.yaml this script writes: decode, mix to mono, resample to
16 kHz, trim edges 40 dB below the peak, crop or zero-pad to 1 s around the centre, 40 Slaney
mel bands (n_fft 400, hop 160: 101 frames), dB with an 80 dB floor under the peak, then
(dB - MEAN) / STD. Serving and training cannot drift apart.

Data (see synthesize.py): 18,000 training clips from 75 espeak-ng voice variants at 8 speeds
in 6 accents; the test clips come from 17 other variants at 4 other speeds, in the 6 accents
and 2 accents never used for training; 8 more variants (at the training speeds) are a
validation set that is only watched. Each training clip is rendered COPIES times before
training as a recording might sound: espeak's silence trimmed, 0-0.3 s of silence before and
after, a peak level of -30..-1 dBFS, sometimes room reverberation (a synthetic decaying
impulse response), usually white or pink noise at 10-40 dB SNR, and a sample rate of 8, 16,
22.05 or 44.1 kHz; the WAV bytes go through the audio stage. During training each batch is
further shifted in time (up to 80 ms), shifted by up to 2 mel bands (a crude vocal-tract-length
change) and masked (SpecAugment: two time and two frequency masks).

The model (55k parameters, 220 KiB ONNX) subtracts each spectrogram's maximum first, so a
clip's loudness does not matter (the stage's 80 dB floor is already relative to the peak), then
runs four conv blocks (3x3 conv, batch norm, ReLU; the first with stride 2, two 2x2 max pools)
and takes the maximum over each half of the remaining 12 time steps, which keeps the order of
a word's sounds but not its exact position, before one linear layer. It is exported to ONNX
(opset 17, `mel` [N, 1, 40, 101] → `logits` [N, 10]) and checked against torch with ONNX
Runtime. One torch thread, fixed seeds (rendering seeds per clip, so the worker processes do not
matter) and deterministic algorithms make a rerun write the same bytes.
"""

from __future__ import annotations

import base64
import csv
import io
import math
import multiprocessing
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import soundfile
import soxr
import torch
import yaml
from scipy.fft import next_fast_len
from scipy.signal import fftconvolve
from threadpoolctl import threadpool_limits
from torch import nn

from inferd.optimize.export import (
    OnnxRecipe,
    export_onnx,
    onnx_session,
    reproducible,
    write_jsonl,
    write_labels,
    write_model_yaml,
)
from inferd.spec import AudioStage
from inferd.stages.audio import build

SEED = 0
COPIES = 2  # augmented renders of each training clip, made once before training
EPOCHS = 8
BATCH = 128
LR = 3e-3
WORKERS = 2  # processes that render clips and run the audio stage
EVAL_PER_DIGIT = 16  # held-out clips per digit in eval/test.jsonl
# (dB - MEAN) / STD in the audio stage: the training features' mean and std, rounded.
MEAN = -58.0
STD = 24.0

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
SAMPLES_DIR = HERE / "samples"
MODEL_DIR = ROOT / "model_repository" / "spoken-digit"
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
RECIPE = OnnxRecipe({"mel": np.zeros((2, 1, 40, 101), np.float32)}, ("logits",), opset=17)

MODEL_YAML = f"""\
# The bundled audio-classification example; rebuild with examples/spoken_digit/synthesize.py
# (needs espeak-ng) and examples/spoken_digit/train.py.
name: spoken-digit
task: classification
backend: onnx
description: >-
  Spoken digit classifier ("zero".."nine" → 0-9): a small CNN on log-mel spectrograms,
  trained on English speech synthesized with espeak-ng (many voices, speeds and pitches, with
  noise and reverberation). Send one short clip (WAV, FLAC, OGG, MP3; any sample rate, mono or
  stereo) of one word, at most 30 s long; the word should fall within the middle second.
inputs:
  - {{name: audio, datatype: BYTES, shape: [1]}}
preprocess:
  - type: audio
    input: audio
    output: mel
    sample_rate: 16000
    duration_s: 1.0
    align: center
    trim_db: 40
    max_duration_s: 30
    silence_db: -60
    n_fft: 400
    hop_length: 160
    win_length: null
    n_mels: 40
    f_min: 0.0
    f_max: null
    mel_scale: slaney
    top_db: 80
    mean: {MEAN}
    std: {STD}
    layout: 1MT
postprocess:
  - {{type: classify, output: logits, softmax: auto, top_k: 3}}
labels: labels.txt
batching: {{max_batch_size: 32, max_delay_ms: 0}}
runtime: {{threads: 1}}
eval: {{data: eval/test.jsonl, metric: accuracy, threshold: 0.9}}
"""

STAGE_CONFIG: dict[str, Any] = yaml.safe_load(MODEL_YAML)["preprocess"][0]
RATES = (22050, 16000, 44100, 8000)  # sample rates a training render is written at
RATE_WEIGHTS = (0.4, 0.3, 0.15, 0.15)


# --- recordings and the serving features -------------------------------------------------------


def serving_stage() -> Any:
    """model.yaml's audio stage, exactly as inferd builds it: WAV bytes → [1, 40, 101]."""
    return build(AudioStage.model_validate(STAGE_CONFIG), "audio", "mel")


def wav_bytes(clip: np.ndarray, rate: int, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(clip, -1.0, 1.0), rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


def fixed_serial_ogg(data: bytes, serial: int = 1) -> bytes:
    """The Ogg file with a fixed stream serial number (libogg picks a random one), so that a
    rerun writes the same bytes; each page's CRC is recomputed."""
    out = bytearray(data)
    start = 0
    while start < len(out):
        assert out[start : start + 4] == b"OggS", "not an Ogg page"
        segments = out[start + 26]
        size = 27 + segments + sum(out[start + 27 : start + 27 + segments])
        out[start + 14 : start + 18] = serial.to_bytes(4, "little")
        out[start + 22 : start + 26] = bytes(4)
        crc = _ogg_crc(bytes(out[start : start + size]))
        out[start + 22 : start + 26] = crc.to_bytes(4, "little")
        start += size
    return bytes(out)


def read_clip(path: Path) -> tuple[np.ndarray, int]:
    clip, rate = soundfile.read(str(path), dtype="float64")
    return clip, int(rate)


def trimmed(clip: np.ndarray, below_peak_db: float, margin: int = 0) -> np.ndarray:
    magnitude = np.abs(clip)
    loud = np.flatnonzero(magnitude >= magnitude.max() * 10.0 ** (-below_peak_db / 20.0))
    return clip[max(0, loud[0] - margin) : loud[-1] + 1 + margin]


def colored_noise(size: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power ∝ 1/f^exponent (0 white, 1 pink), unit variance."""
    length = next_fast_len(size)
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.fft.rfftfreq(length)
    frequencies[0] = frequencies[1]
    noise = np.fft.irfft(spectrum / frequencies ** (exponent / 2), n=length)[:size]
    return np.asarray(noise / noise.std())


def reverb(clip: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: direct sound plus exponentially decaying noise (RT60 0.15-0.6 s)."""
    rt60 = rng.uniform(0.15, 0.6)
    t = np.arange(int(rt60 * rate)) / rate
    response = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60) * rng.uniform(0.05, 0.3)
    response[0] = 1.0
    return np.asarray(fftconvolve(clip, response)[: clip.size + t.size // 2])


def render(clip: np.ndarray, rate: int, rng: np.random.Generator) -> bytes:
    """One random recording of a clean espeak clip, as WAV bytes."""
    word = trimmed(clip, 50.0)
    if rng.random() < 0.3:
        word = reverb(word, rate, rng)
    lead, tail = (rng.uniform(0.0, 0.3, size=2) * rate).astype(int)
    audio = np.concatenate([np.zeros(lead), word, np.zeros(tail)])
    audio *= 10.0 ** (rng.uniform(-30.0, -1.0) / 20.0) / np.abs(audio).max()
    if rng.random() < 0.75:
        speech_power = float(np.mean(audio[lead : lead + word.size] ** 2))
        noise = colored_noise(audio.size, float(rng.integers(0, 2)), rng)
        audio += noise * math.sqrt(speech_power / 10.0 ** (rng.uniform(10.0, 40.0) / 10.0))
    out_rate = int(rng.choice(RATES, p=RATE_WEIGHTS))
    if out_rate != rate:
        audio = soxr.resample(audio, rate, out_rate, quality="HQ")
    return wav_bytes(audio, out_rate)


_STAGE: Any = None


def _features_job(job: tuple[str, int, int]) -> np.ndarray:
    """(file, render seed, copy) → the stage's features; copy -1 is the clip unchanged."""
    global _STAGE
    if _STAGE is None:
        threadpool_limits(1)  # one BLAS thread per worker: more only fight over 2 cores
        _STAGE = serving_stage()
    file, index, copy = job
    path = DATA_DIR / file
    if copy < 0:
        data = path.read_bytes()
    else:
        clip, rate = read_clip(path)
        data = render(clip, rate, np.random.default_rng([SEED, index, copy]))
    features: np.ndarray = _STAGE({"audio": data})["mel"]
    return features


def features(pool: Any, rows: list[dict[str, str]], copies: list[int]) -> np.ndarray:
    """[len(copies), len(rows), 1, 40, 101] stage features of each row, for each copy."""
    jobs = [(row["file"], int(row["index"]), copy) for copy in copies for row in rows]
    out = np.stack(pool.map(_features_job, jobs, chunksize=64))
    return out.reshape(len(copies), len(rows), *out.shape[1:])


# --- the model ---------------------------------------------------------------------------------


def conv_block(channels_in: int, channels_out: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(),
    ]


class SpokenDigitNet(nn.Module):
    """[N, 1, 40, 101] log-mel → [N, 10] logits."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            *conv_block(1, 24, stride=2),  # 20 x 51
            *conv_block(24, 32),
            nn.MaxPool2d(2),  # 10 x 25
            *conv_block(32, 48),
            nn.MaxPool2d(2),  # 5 x 12
            *conv_block(48, 64),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(64 * 5 * 2, 10))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = mel - mel.amax(dim=(2, 3), keepdim=True)  # loudness-invariant: 0 dB at the peak
        x = self.layers(x)
        # Max over time in two halves: keeps the order of a word's sounds, forgets its position.
        x = torch.stack([x[..., :6].amax(dim=3), x[..., 6:].amax(dim=3)], dim=3)
        logits: torch.Tensor = self.head(x)
        return logits


def augment_batch(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Time shift (≤ 8 frames), mel shift (≤ 2 bands) and SpecAugment masks, per example; the
    gaps are filled with the example's own minimum (silence)."""
    n, _, mels, frames = batch.shape
    floor = batch.amin(dim=(2, 3), keepdim=True)
    pad_t, pad_m = 8, 2
    padded = floor.expand(n, 1, mels + 2 * pad_m, frames + 2 * pad_t).clone()
    padded[:, :, pad_m : pad_m + mels, pad_t : pad_t + frames] = batch
    shift_t = torch.randint(0, 2 * pad_t + 1, (n,), generator=generator)
    shift_m = torch.randint(0, 2 * pad_m + 1, (n,), generator=generator)
    out = torch.stack(
        [
            padded[i, :, shift_m[i] : shift_m[i] + mels, shift_t[i] : shift_t[i] + frames]
            for i in range(n)
        ]
    )
    for size, width, axis in ((frames, 10, 3), (frames, 10, 3), (mels, 4, 2), (mels, 4, 2)):
        widths = torch.randint(0, width + 1, (n, 1), generator=generator)
        starts = (torch.rand(n, 1, generator=generator) * (size - widths)).long()
        position = torch.arange(size)[None, :]
        masked = (position >= starts) & (position < starts + widths)
        shape = (n, 1, 1, size) if axis == 3 else (n, 1, size, 1)
        out = torch.where(masked.view(shape), floor, out)
    return out


def train(
    model: nn.Module,
    inputs: np.ndarray,
    labels: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
) -> None:
    """inputs: [COPIES, clips, 1, 40, 101]; each epoch takes one random copy of every clip."""
    rng = np.random.default_rng(SEED)
    generator = torch.Generator().manual_seed(SEED)
    targets = torch.from_numpy(labels).long()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-3)
    steps = EPOCHS * math.ceil(len(labels) / BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=steps)
    for epoch in range(EPOCHS):
        copy = rng.integers(0, inputs.shape[0], size=len(labels))
        order = rng.permutation(len(labels))
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            x = augment_batch(torch.from_numpy(inputs[copy[batch], batch]), generator)
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, targets[batch], label_smoothing=0.05)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += len(batch)
            correct += int((logits.argmax(1) == targets[batch]).sum())
            loss_sum += loss.item() * len(batch)
        model.eval()
        with torch.no_grad():
            val = [
                float((model(torch.from_numpy(x)).argmax(1).numpy() == val_y).mean()) for x in val_x
            ]
        print(
            f"  epoch {epoch + 1:2d}: loss {loss_sum / total:.4f}, augmented train accuracy "
            f"{correct / total:.4f}, val accuracy clean {val[0]:.4f} / rendered {val[1]:.4f}",
            flush=True,
        )


# --- export and checks -------------------------------------------------------------------------


def predict(sess: ort.InferenceSession, inputs: np.ndarray) -> np.ndarray:
    batches = range(0, len(inputs), 256)
    logits = [sess.run(["logits"], {"mel": inputs[i : i + 256]})[0] for i in batches]
    return np.concatenate(logits)


def breakdown(rows: list[dict[str, str]], correct: np.ndarray, key: str) -> str:
    groups: dict[str, list[bool]] = defaultdict(list)
    for row, ok in zip(rows, correct, strict=True):
        groups[row[key]].append(bool(ok))
    order = sorted(groups, key=lambda g: int(g) if g.isdigit() else g.lower())
    return ", ".join(f"{g} {np.mean(groups[g]):.3f}" for g in order)


def load_manifest() -> list[dict[str, str]]:
    with (DATA_DIR / "manifest.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for index, row in enumerate(rows):
        row["index"] = str(index)
    return rows


def eval_clip(path: Path, rng: np.random.Generator, noisy: bool) -> bytes:
    """A held-out clip for eval/test.jsonl: 16 kHz 16-bit mono, trimmed to the word (the
    stage trims the same 40 dB, so only 10 ms margins are kept), optionally with noise."""
    clip, rate = read_clip(path)
    clip = trimmed(soxr.resample(clip, rate, 16000, quality="HQ"), 40.0, margin=160)
    if noisy:
        noise = colored_noise(clip.size, float(rng.integers(0, 2)), rng)
        power = float(np.mean(clip**2)) / 10.0 ** (rng.uniform(20.0, 40.0) / 10.0)
        clip = clip + noise * math.sqrt(power)
    return wav_bytes(clip, 16000)


def write_repository(test: list[dict[str, str]]) -> list[dict[str, Any]]:
    """model.yaml, labels.txt and eval/test.jsonl: EVAL_PER_DIGIT random held-out clips per
    digit, digits interleaved, every other one with white or pink noise at 20-40 dB SNR."""
    write_model_yaml(MODEL_DIR, MODEL_YAML)
    write_labels(MODEL_DIR, range(10))
    rng = np.random.default_rng(SEED)
    by_digit = [[r for r in test if r["label"] == str(d)] for d in range(10)]
    picked = [
        [rows[i] for i in rng.choice(len(rows), EVAL_PER_DIGIT, replace=False)] for rows in by_digit
    ]
    records = []
    for k in range(EVAL_PER_DIGIT):
        for digit in range(10):
            row = picked[digit][k]
            data = eval_clip(DATA_DIR / row["file"], rng, noisy=(k + digit) % 2 == 1)
            b64 = base64.b64encode(data).decode()
            records.append({"instance": {"b64": b64}, "target": row["label"]})
    write_jsonl(MODEL_DIR / "eval" / "test.jsonl", records)
    return records


def write_samples(sess: ort.InferenceSession, test: list[dict[str, str]]) -> None:
    """seven.wav and three.wav exactly as espeak-ng wrote them (22.05 kHz), two.flac (44.1 kHz
    stereo) and five.ogg (Vorbis): random held-out clips (en-us, 150 wpm) classified right with
    p > 0.9."""
    stage = serving_stage()
    rng = np.random.default_rng(SEED)
    if SAMPLES_DIR.exists():
        shutil.rmtree(SAMPLES_DIR)
    SAMPLES_DIR.mkdir(parents=True)

    def as_file(name: str, path: Path) -> bytes:
        if name.endswith(".wav"):
            return path.read_bytes()
        clip, rate = read_clip(path)
        if name.endswith(".flac"):
            clip = soxr.resample(clip, rate, 44100, quality="HQ")
            return wav_bytes(np.stack([clip, 0.6 * clip], axis=1), 44100, "FLAC")
        return fixed_serial_ogg(wav_bytes(clip, rate, "OGG", "VORBIS"))

    for name in ("seven.wav", "three.wav", "two.flac", "five.ogg"):
        label = WORDS.index(name.split(".")[0])
        candidates = [
            r
            for r in test
            if r["label"] == str(label) and r["accent"] == "en-us" and r["speed"] == "150"
        ]
        for i in rng.permutation(len(candidates)):
            row = candidates[i]
            data = as_file(name, DATA_DIR / row["file"])
            logits = predict(sess, stage({"audio": data})["mel"][None])[0]
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            if logits.argmax() == label and probs[label] > 0.9:
                (SAMPLES_DIR / name).write_bytes(data)
                voice = f"{row['accent']}+{row['variant']}, {row['speed']} wpm"
                print(f"sample {name} ({voice}): predicted {label} (p={probs[label]:.3f})")
                break
        else:
            raise RuntimeError(f"no held-out {label} is classified confidently for {name}")


def main() -> None:
    started = time.perf_counter()
    threadpool_limits(1)
    reproducible(SEED, threads=1)  # one thread is also what makes a rerun byte-identical
    if not (DATA_DIR / "manifest.csv").exists():
        raise SystemExit("no data: run examples/spoken_digit/synthesize.py first")
    rows = load_manifest()
    split = {s: [r for r in rows if r["split"] == s] for s in ("train", "val", "test")}
    labels = {s: np.array([int(r["label"]) for r in split[s]]) for s in split}
    print(", ".join(f"{s} {len(split[s])} clips" for s in split))

    print(f"rendering and running the audio stage ({WORKERS} processes) ...", flush=True)
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        train_x = features(pool, split["train"], list(range(COPIES)))
        val_x = features(pool, split["val"], [-1, 0])
        test_x = features(pool, split["test"], [-1, 0])
    db = train_x * STD + MEAN
    print(
        f"features took {time.perf_counter() - started:.0f} s; training dB mean {db.mean():.2f}, "
        f"std {db.std():.2f} (model.yaml: {MEAN}, {STD})"
    )
    del db

    model = SpokenDigitNet()
    print(f"training SpokenDigitNet ({sum(p.numel() for p in model.parameters())} parameters)")
    trained_from = time.perf_counter()
    train(model, train_x, labels["train"], val_x, labels["val"])
    trained = time.perf_counter()

    onnx_path = MODEL_DIR / "1" / "model.onnx"
    check = {"mel": test_x[0, :256]}
    exported = export_onnx(model, onnx_path, RECIPE, check, batch_sizes=(1, 7), atol=1e-4)
    sess = onnx_session(onnx_path)
    print(f"onnx matches torch (max |diff| {exported.max_diff:.2e})")

    print("held-out accuracy (onnx, features from inferd's audio stage):")
    for name, x in (("val voices, clean", val_x[0]), ("val voices, rendered", val_x[1])):
        print(f"  {name}: {float((predict(sess, x).argmax(1) == labels['val']).mean()):.4f}")
    for k, name in enumerate(("clean", "rendered (noise, level, silence, reverb, rate)")):
        correct = predict(sess, test_x[k]).argmax(1) == labels["test"]
        print(f"  test voices and speeds, {name}: {correct.mean():.4f} ({len(correct)} clips)")
        for key in ("variant", "speed", "accent", "label"):
            print(f"    by {key}: {breakdown(split['test'], correct, key)}")

    records = write_repository(split["test"])
    stage = serving_stage()
    inputs = np.stack(
        [stage({"audio": base64.b64decode(r["instance"]["b64"])})["mel"] for r in records]
    )
    predicted = predict(sess, inputs).argmax(1)
    accuracy = float(
        np.mean([str(p) == r["target"] for p, r in zip(predicted, records, strict=True)])
    )
    size_kib = (MODEL_DIR / "eval" / "test.jsonl").stat().st_size / 1024
    print(f"eval/test.jsonl ({len(records)} clips, {size_kib:.0f} KiB): accuracy {accuracy:.4f}")
    assert accuracy >= 0.9, "below the model.yaml threshold"
    write_samples(sess, split["test"])
    print(f"wrote {MODEL_DIR} (model.onnx {onnx_path.stat().st_size / 1024:.0f} KiB)")
    print(
        f"training took {trained - trained_from:.0f} s, everything "
        f"{time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
