"""Synthesize the `spoken-digit` data set: the words "zero".."nine" spoken by espeak-ng.

Run from the repository root (needs the espeak-ng program, Debian/Ubuntu:
`apt-get install espeak-ng`; only rebuilding the example needs it, never inferd or its tests):

    .venv/bin/python examples/spoken_digit/synthesize.py     # ~3 min on 2 CPU cores

It writes examples/spoken_digit/data/ (gitignored): wav/<split>/*.wav, the clips exactly as
espeak-ng writes them (22.05 kHz, 16-bit mono, with espeak's own leading and trailing
silence), and manifest.csv (`file,label,word,accent,variant,speed,pitch,split`).
examples/spoken_digit/train.py reads both; noise, gain and silence are added there, at
training time.

A voice is an espeak-ng accent (`en-us`, `en-gb-scotland`, ...) with a voice variant
(`+m3`, `+f2`, `+klatt4`, `+whisper`, ...: 101 of them ship with espeak-ng 1.51), spoken at a
speed (words per minute, `-s`) and a pitch (`-p`, 0..99). The split is by voice and by speed,
never by clip, so the test set measures clips from voices and speeds the model never heard:

- train: TRAIN variants (the other 75) x TRAIN_SPEEDS x each word, REPEATS times,
  each with a random TRAIN accent and a random pitch;
- val: VAL_VARIANTS (8) x TRAIN_SPEEDS x each word, a random TRAIN accent and pitch: held-out
  voices at familiar speeds, for watching training; never used to fit anything;
- test: TEST_VARIANTS (17) x TEST_SPEEDS x each word x every accent, TEST_ACCENTS (2) of
  which never occur in train or val, with a random pitch: unseen variants, unseen speeds and
  partly unseen accents at once.

The mbrola voices that `espeak-ng --voices=en` also lists need the separate mbrola program
and are not used; nor is the variant "Mr serious" (its name has a space). Random choices come
from one seeded generator in a fixed order and espeak-ng is itself deterministic, so a rerun
writes the same files.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SEED = 0
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

TRAIN_ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-029")
TEST_ACCENTS = ("en-gb-x-gbcwmd", "en-us-nyc")  # West Midlands, New York City: test only
ACCENTS = TRAIN_ACCENTS + TEST_ACCENTS


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# espeak-ng 1.51's voice variants (espeak-ng --voices=variant; the files in voices/!v).
VARIANTS = _names(
    """
    Alex Alicia Andrea Andy Annie AnxiousAndy Demonic Denis Diogo Gene Gene2 Henrique Hugo Jacky
    Lee Marco Mario Michael Mike Nguyen RicishayMax RicishayMax2 RicishayMax3 Storm Tweaky
    UniRobot adam anika anikaRobot announcer antonio aunty belinda benjamin boris caleb croak
    david ed edward edward2 f1 f2 f3 f4 f5 fast grandma grandpa gustave iven iven2 iven3 iven4
    john kaukovalta klatt klatt2 klatt3 klatt4 klatt5 klatt6 linda m1 m2 m3 m4 m5 m6 m7 m8
    marcelo max michel miguel norbert pablo paul pedro quincy rob robert robosoft robosoft2
    robosoft3 robosoft4 robosoft5 robosoft6 robosoft7 robosoft8 sandro shelby steph steph2
    steph3 travis victor whisper whisperf zac
"""
)
# Held out by hand so that each kind of voice is represented: plain male and female variants,
# a Klatt-synthesizer one, a whisper (the male `whisper` stays in training), named voices.
TEST_VARIANTS = _names(
    """
    f3 f5 m4 m7 klatt4 whisperf Andy Annie belinda boris david Lee linda norbert quincy steph2
    travis
"""
)
VAL_VARIANTS = _names("f1 m2 klatt2 Alicia caleb iven3 robosoft5 zac")
TRAIN_VARIANTS = tuple(v for v in VARIANTS if v not in TEST_VARIANTS + VAL_VARIANTS)

TRAIN_SPEEDS = (100, 115, 135, 160, 175, 200, 225, 260)  # words per minute; espeak's default 175
TEST_SPEEDS = (125, 150, 190, 240)
REPEATS = 3  # training clips per (variant, speed, word), each with its own accent and pitch

DATA_DIR = Path(__file__).resolve().parent / "data"
WAV_DIR = DATA_DIR / "wav"
MANIFEST = DATA_DIR / "manifest.csv"
FIELDS = ("file", "label", "word", "accent", "variant", "speed", "pitch", "split")


def plan() -> list[dict[str, str]]:
    """Every clip to synthesize, in a fixed order, with its random accent and pitch."""
    rng = np.random.default_rng(SEED)
    rows: list[dict[str, str]] = []

    def add(split: str, word: str, accent: str, variant: str, speed: int) -> None:
        pitch = int(rng.integers(0, 100))
        name = f"{word}_{accent}_{variant}_s{speed}_p{pitch}_{len(rows):05d}.wav"
        rows.append(
            {
                "file": f"wav/{split}/{name}",
                "label": str(WORDS.index(word)),
                "word": word,
                "accent": accent,
                "variant": variant,
                "speed": str(speed),
                "pitch": str(pitch),
                "split": split,
            }
        )

    for split, variants, repeats in (
        ("train", TRAIN_VARIANTS, REPEATS),
        ("val", VAL_VARIANTS, 1),
    ):
        for variant in variants:
            for speed in TRAIN_SPEEDS:
                for word in WORDS:
                    for _ in range(repeats):
                        accent = TRAIN_ACCENTS[rng.integers(len(TRAIN_ACCENTS))]
                        add(split, word, accent, variant, speed)
    for variant in TEST_VARIANTS:
        for speed in TEST_SPEEDS:
            for word in WORDS:
                for accent in ACCENTS:
                    add("test", word, accent, variant, speed)
    return rows


def synthesize(row: dict[str, str]) -> None:
    path = DATA_DIR / row["file"]
    command = [
        "espeak-ng",
        "-v",
        f"{row['accent']}+{row['variant']}",
        "-s",
        row["speed"],
        "-p",
        row["pitch"],
        "-w",
        str(path),
        row["word"],
    ]
    subprocess.run(command, check=True, capture_output=True)
    if path.stat().st_size < 1000:
        raise RuntimeError(f"espeak-ng wrote an empty clip: {' '.join(command)}")


def main() -> None:
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    print(version.strip())
    started = time.perf_counter()
    rows = plan()
    if WAV_DIR.exists():
        shutil.rmtree(WAV_DIR)
    for split in ("train", "val", "test"):
        (WAV_DIR / split).mkdir(parents=True)
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 1)) as pool:
        list(pool.map(synthesize, rows))
    with MANIFEST.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    for split in ("train", "val", "test"):
        chosen = [r for r in rows if r["split"] == split]
        variants = sorted({r["variant"] for r in chosen})
        speeds = sorted({int(r["speed"]) for r in chosen})
        accents = sorted({r["accent"] for r in chosen})
        print(
            f"{split}: {len(chosen)} clips, {len(variants)} variants, speeds {speeds}, "
            f"{len(accents)} accents"
        )
    size_mb = sum((DATA_DIR / r["file"]).stat().st_size for r in rows) / 2**20
    print(
        f"wrote {len(rows)} clips ({size_mb:.0f} MiB) and {MANIFEST} "
        f"in {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
