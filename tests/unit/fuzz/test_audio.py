"""The audio stage on hostile bytes: any bytes, and real WAV/FLAC/OGG/... files with bytes
broken, decode into the finite clip and features the stage promises or are refused with a 400."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from inferd.errors import BadRequestError
from inferd.spec import AudioStage
from inferd.stages import Item, audio
from tests.support.stages import apply
from tests.unit.fuzz.mutations import mutated
from tests.unit.fuzz.outcome import examples, outcome

MAX_DURATION_S = 2.0

# A broken file can make libsndfile seek before the start; soundfile's callback then raises
# inside cffi, which prints it and reports the failure to libsndfile: noise, not a failure.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored from cffi callback <function SoundFile._init_virtual_io"
    ":pytest.PytestUnraisableExceptionWarning"
)


def _encode(clip: np.ndarray, rate: int, fmt: str, subtype: str | None) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, clip, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def _seeds() -> dict[str, bytes]:
    """Short real files: several containers, encodings, rates and channel counts."""
    rng = np.random.default_rng(0)
    mono = (0.3 * rng.standard_normal(800)).clip(-1, 1).astype(np.float32)
    stereo = (0.3 * rng.standard_normal((400, 2))).clip(-1, 1).astype(np.float32)
    cases = [
        ("WAV", "PCM_16", mono, 16_000),
        ("WAV", "PCM_U8", mono, 8_000),
        ("WAV", "FLOAT", stereo, 44_100),
        ("WAV", "DOUBLE", mono, 16_000),
        ("WAV", "ULAW", mono, 8_000),
        ("WAV", "IMA_ADPCM", stereo, 22_050),
        ("WAV", "MS_ADPCM", mono, 16_000),
        ("WAV", "GSM610", mono, 8_000),
        ("WAVEX", "PCM_24", stereo, 48_000),
        ("FLAC", "PCM_16", mono, 16_000),
        ("FLAC", "PCM_24", stereo, 44_100),
        ("OGG", "VORBIS", mono, 16_000),
        ("AIFF", "PCM_16", stereo, 16_000),
        ("AU", "FLOAT", mono, 16_000),
        ("CAF", "ALAC_16", mono, 16_000),
        ("W64", "PCM_16", mono, 16_000),
        ("RF64", "PCM_16", mono, 16_000),
        ("WAV", "FLOAT", mono[:1], 44_100),  # a sample or two: none left at a lower rate
        ("FLAC", "PCM_16", stereo[:2], 48_000),
    ]
    found = {}
    for fmt, subtype, clip, rate in cases:
        try:
            found[f"{fmt}-{subtype}-{len(clip)}"] = _encode(clip, rate, fmt, subtype)
        except (soundfile.LibsndfileError, ValueError, TypeError):
            continue  # not in this build of libsndfile
    return found


SEEDS = _seeds()


@st.composite
def stages(draw: st.DrawFn) -> AudioStage:
    features = draw(st.sampled_from(["log_mel", "waveform"]))
    layouts = ["MT", "1MT", "TM"] if features == "log_mel" else ["T", "1T"]
    return AudioStage(
        type="audio",
        sample_rate=draw(st.sampled_from([8_000, 16_000, 22_050])),
        duration_s=draw(st.none() | st.sampled_from([0.05, 0.5])),
        align=draw(st.sampled_from(["start", "center"])),
        trim_db=draw(st.none() | st.sampled_from([20.0, 60.0])),
        max_duration_s=MAX_DURATION_S,
        silence_db=draw(st.none() | st.just(-60.0)),
        features=features,
        n_fft=draw(st.sampled_from([64, 400])),
        hop_length=draw(st.sampled_from([32, 160])),
        n_mels=draw(st.sampled_from([8, 40])),
        top_db=draw(st.none() | st.just(80.0)),
        layout=draw(st.sampled_from(layouts)),
    )


def check_decode(data: bytes) -> None:
    result = outcome(audio.decode_clip, data, "clip", MAX_DURATION_S)
    if isinstance(result, tuple):
        clip, rate = result
        assert clip.ndim == 1 and clip.dtype == np.float32 and clip.size >= 1
        assert 0 < rate <= audio.MAX_SAMPLE_RATE
        assert clip.size / rate <= MAX_DURATION_S
        assert (np.abs(clip) <= audio.MAX_AMPLITUDE).all(), "NaN, inf or huge samples taken"


def check_stage(stage: AudioStage, data: Any) -> None:
    result = outcome(apply, audio.build(stage, "clip", "x"), {"clip": data})
    if not isinstance(result, Item):
        assert isinstance(result, BadRequestError)
        return
    tensor = result.values["x"]
    assert tensor.dtype == np.float32
    assert np.isfinite(tensor).all()
    assert tensor.ndim == {"MT": 2, "1MT": 3, "TM": 2, "T": 1, "1T": 2}[stage.layout]


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_decodes(name: str) -> None:
    check_decode(SEEDS[name])
    assert isinstance(audio.decode_clip(SEEDS[name], "clip", MAX_DURATION_S), tuple)


@settings(max_examples=examples(150), deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes(data: bytes) -> None:
    check_decode(data)


@settings(max_examples=examples(300), deadline=None)
@given(mutated(list(SEEDS.values())))
def test_mutated_files(data: bytes) -> None:
    check_decode(data)


@settings(max_examples=examples(150), deadline=None)
@given(mutated(list(SEEDS.values())), stages())
def test_mutated_files_through_the_stage(data: bytes, stage: AudioStage) -> None:
    check_stage(stage, np.array([data], dtype=object))


@settings(max_examples=examples(50), deadline=None)
@given(st.sampled_from(["WAV", "AU"]), st.sampled_from(["FLOAT", "DOUBLE"]), st.data())
def test_float_files_with_any_samples(fmt: str, subtype: str, data: Any) -> None:
    """Float encodings hold any value: NaN, infinities, and magnitudes that overflow resampling."""
    odd = st.sampled_from([np.nan, np.inf, -np.inf, 3e38, 1e3, 1001.0, 1.5])
    samples = data.draw(st.lists(st.floats(width=32) | odd, min_size=1, max_size=50))
    encoded = _encode(np.asarray(samples, dtype=np.float32), 8_000, fmt, subtype)
    check_decode(encoded)
    for features, layout in (("log_mel", "MT"), ("waveform", "T")):
        stage = AudioStage(
            type="audio",
            sample_rate=16_000,
            n_fft=16,
            hop_length=8,
            n_mels=4,
            features=features,
            layout=layout,
            trim_db=20.0,
        )
        check_stage(stage, encoded)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 3e38])
def test_samples_that_are_not_sound_are_refused(value: float) -> None:
    """Regression: a float WAV holding NaN, inf or 3e38 (which resampling overflows) was
    accepted, and its features were NaN."""
    clip = np.full(400, 0.5, dtype=np.float32)
    clip[100] = value
    with pytest.raises(BadRequestError) as caught:
        audio.decode_clip(_encode(clip, 8_000, "WAV", "FLOAT"), "clip", MAX_DURATION_S)
    assert caught.value.message == (
        "input 'clip' has samples that are NaN, infinite or beyond ±1000; "
        "float audio spans -1.0 to 1.0"
    )


@pytest.mark.parametrize("trim_db", [None, 20.0])
def test_a_clip_that_resamples_to_nothing_is_refused(trim_db: float | None) -> None:
    """Regression: one sample at 44.1 kHz is none at 8 kHz; trimming it raised ValueError
    (a 500), and without trimming the model got an empty waveform."""
    stage = AudioStage(
        type="audio", sample_rate=8_000, trim_db=trim_db, features="waveform", layout="T"
    )
    data = _encode(np.full(1, 0.5, dtype=np.float32), 44_100, "WAV", "FLOAT")
    with pytest.raises(BadRequestError) as caught:
        apply(audio.build(stage, "clip", "x"), {"clip": data})
    assert caught.value.message == (
        "input 'clip' is too short: resampled from 44100 Hz to this model's 8000 Hz, its "
        "1 sample(s) leave none; send a longer clip"
    )
