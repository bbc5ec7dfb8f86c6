"""The audio stage: decode, mix, resample, trim, fit and librosa-compatible log-mel features."""

from __future__ import annotations

import io
from typing import Any

import librosa
import numpy as np
import pytest
import soundfile
from PIL import Image
from pydantic import ValidationError

from inferd.errors import BadRequestError
from inferd.spec import AudioStage
from inferd.stages import audio
from tests.support.stages import apply

RATE = 16_000
SILENCE_DB = 10 * np.log10(1e-10)
"""The dB value of zero power: librosa's default `amin` floor."""
WAVE = {"features": "waveform", "layout": "T"}


def _encode(clip: np.ndarray, rate: int, fmt: str = "WAV", subtype: str = "FLOAT") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, clip, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def _stage(**options: Any) -> AudioStage:
    return AudioStage.model_validate({"type": "audio", **options})


def _run(data: Any, **options: Any) -> np.ndarray:
    out = apply(audio.build(_stage(**options), "clip", "x"), {"clip": data}).values
    assert set(out) == {"x"}
    tensor = out["x"]
    assert isinstance(tensor, np.ndarray) and tensor.dtype == np.float32
    return tensor


def _error(data: Any, **options: Any) -> str:
    with pytest.raises(BadRequestError) as caught:
        _run(data, **options)
    return caught.value.message


def _chirp_and_noise(seconds: float = 0.8, rate: int = RATE) -> np.ndarray:
    """A sweep from 100 Hz to 6 kHz plus seeded noise, as float32 (what a FLOAT WAV holds),
    after 0.1 s of digital silence so the amin and top_db floors both come into play."""
    t = np.arange(round(seconds * rate)) / rate
    sweep = 0.5 * np.sin(2 * np.pi * (100 * t + (6000 - 100) * t**2 / (2 * seconds)))
    clip = sweep + 0.05 * np.random.default_rng(0).standard_normal(t.size)
    clip[: rate // 10] = 0.0
    return clip.astype(np.float32)


def _sine(hz: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


# --- librosa reference ------------------------------------------------------------------------

FEATURE_SETS = [
    pytest.param({}, id="defaults-slaney"),
    pytest.param(
        {"n_fft": 512, "win_length": 400, "hop_length": 128, "n_mels": 64, "mel_scale": "htk"}
        | {"f_min": 20.0, "f_max": 7600.0},
        id="short-window-htk",
    ),
    pytest.param(
        {"n_fft": 401, "win_length": 301, "hop_length": 100, "n_mels": 32, "f_min": 50.0}
        | {"f_max": 6000.0, "top_db": None},
        id="odd-fft-no-floor",
    ),
]


def _librosa_log_mel(clip: np.ndarray, stage: AudioStage) -> np.ndarray:
    """librosa's log-mel for the stage's settings, all in float64."""
    power = librosa.feature.melspectrogram(
        y=clip.astype(np.float64),
        sr=stage.sample_rate,
        n_fft=stage.n_fft,
        hop_length=stage.hop_length,
        win_length=stage.win_length,
        window="hann",
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=stage.n_mels,
        fmin=stage.f_min,
        fmax=stage.f_max,
        htk=stage.mel_scale == "htk",
        norm="slaney",
        dtype=np.float64,
    )
    return np.asarray(librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=stage.top_db))


@pytest.mark.parametrize(
    ("rate", "n_fft", "n_mels", "f_min", "f_max"),
    [
        (16_000, 400, 40, 0.0, 8000.0),
        (22_050, 1024, 80, 30.0, 9000.0),
        (8000, 255, 20, 0.0, 4000.0),
    ],
)
@pytest.mark.parametrize("scale", ["slaney", "htk"])
def test_mel_filterbank_matches_librosa(
    rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float, scale: str
) -> None:
    ours = audio.mel_filterbank(rate, n_fft, n_mels, f_min, f_max, scale)
    htk = scale == "htk"
    reference = librosa.filters.mel(
        sr=rate,
        n_fft=n_fft,
        n_mels=n_mels,
        fmin=f_min,
        fmax=f_max,
        htk=htk,
        norm="slaney",
        dtype=np.float64,
    )
    assert ours.shape == (n_mels, n_fft // 2 + 1)
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("options", FEATURE_SETS)
def test_log_mel_matches_librosa(options: dict[str, Any]) -> None:
    clip = _chirp_and_noise()
    stage = _stage(**options)
    ours = _run(_encode(clip, RATE), **options)
    reference = _librosa_log_mel(clip, stage)
    frames = 1 + (clip.size + 2 * (stage.n_fft // 2) - stage.n_fft) // stage.hop_length
    assert ours.shape == reference.shape == (stage.n_mels, frames)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    ("layout", "arrange"),
    [("MT", lambda m: m), ("1MT", lambda m: m[np.newaxis]), ("TM", lambda m: m.T)],
)
def test_normalized_log_mel_in_each_layout(layout: str, arrange: Any) -> None:
    clip = _chirp_and_noise()
    mean, std = -30.0, 12.5
    ours = _run(_encode(clip, RATE), mean=mean, std=std, layout=layout)
    expected = arrange((_librosa_log_mel(clip, _stage()) - mean) / std)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4 / std)


# --- decoding ---------------------------------------------------------------------------------


def test_16_bit_wav_decodes_to_float() -> None:
    clip = _sine(440, RATE, 0.25)
    out = _run(_encode(clip, RATE, subtype="PCM_16"), **WAVE)
    np.testing.assert_allclose(out, clip, rtol=0, atol=1 / 2**15)


@pytest.mark.parametrize(("right_gain", "mono_gain"), [(0.0, 0.5), (1.0, 1.0)])
def test_stereo_flac_is_the_mean_of_its_channels(right_gain: float, mono_gain: float) -> None:
    clip = _sine(440, RATE, 0.25)
    stereo = np.stack([clip, right_gain * clip], axis=1)
    out = _run(_encode(stereo, RATE, "FLAC", "PCM_16"), **WAVE)
    np.testing.assert_allclose(out, mono_gain * clip, rtol=0, atol=1 / 2**15)


def test_ogg_vorbis_decodes_with_its_duration() -> None:
    clip = _sine(440, RATE)
    out = _run(_encode(clip, RATE, "OGG", "VORBIS"), **WAVE)
    assert abs(out.size - clip.size) <= _stage().hop_length  # within one spectrogram frame


@pytest.mark.parametrize(
    "wrap", [lambda data: data, lambda data: np.array([data], dtype=object)], ids=["bytes", "array"]
)
def test_bytes_and_one_element_arrays_are_accepted(wrap: Any) -> None:
    clip = _sine(440, RATE, 0.1)
    np.testing.assert_array_equal(_run(wrap(_encode(clip, RATE)), **WAVE), clip)


# --- resampling -------------------------------------------------------------------------------


def test_resampling_keeps_duration_and_pitch() -> None:
    out = _run(_encode(_sine(1000, 44_100), 44_100), **WAVE)
    assert out.size == RATE  # still one second
    peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * RATE / out.size
    assert peak_hz == 1000


@pytest.mark.parametrize(("layout", "shape"), [("T", (RATE,)), ("1T", (1, RATE))])
def test_waveform_is_the_resampled_clip(layout: str, shape: tuple[int, ...]) -> None:
    clip = _chirp_and_noise(1.0, 44_100)
    out = _run(_encode(clip, 44_100), features="waveform", layout=layout, duration_s=None)
    expected = librosa.resample(clip, orig_sr=44_100, target_sr=RATE, res_type="soxr_hq")
    assert out.shape == shape
    np.testing.assert_allclose(out.reshape(-1), expected, rtol=0, atol=1e-6)


# --- length -----------------------------------------------------------------------------------

RAMP = np.linspace(-0.9, 0.9, 1001, dtype=np.float32)
"""1001 distinct samples, so any shift shows; the odd excess or shortfall against 800 or 1600
samples pins down the rounding of "center" too (the extra sample goes to the end)."""


@pytest.mark.parametrize(
    ("duration_s", "align", "expected"),
    [
        (0.05, "start", RAMP[:800]),
        (0.05, "center", RAMP[100:900]),  # 201 extra: 100 before
        (0.1, "start", np.concatenate([RAMP, np.zeros(599)])),
        (0.1, "center", np.concatenate([np.zeros(299), RAMP, np.zeros(300)])),
    ],
    ids=["crop-start", "crop-center", "pad-start", "pad-center"],
)
def test_fit_length_crops_and_pads(duration_s: float, align: str, expected: np.ndarray) -> None:
    out = _run(_encode(RAMP, RATE), duration_s=duration_s, align=align, **WAVE)
    np.testing.assert_array_equal(out, expected.astype(np.float32))


@pytest.mark.parametrize(("trim_db", "keeps_quiet_edges"), [(40.0, False), (60.0, True)])
def test_trim_drops_edges_quieter_than_trim_db(trim_db: float, keeps_quiet_edges: bool) -> None:
    # Edges at 1e-3, 54 dB below the 0.5 peak: trimmed at 40 dB, kept at 60 dB.
    def alternating(size: int, level: float) -> np.ndarray:
        return (level * (-1.0) ** np.arange(size)).astype(np.float32)

    loud = alternating(500, 0.5)
    clip = np.concatenate([alternating(300, 1e-3), loud, alternating(200, 1e-3)])
    out = _run(_encode(clip, RATE), trim_db=trim_db, **WAVE)
    np.testing.assert_array_equal(out, clip if keeps_quiet_edges else loud)


# --- refusals ---------------------------------------------------------------------------------


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data", [_png(), np.random.default_rng(1).bytes(2000)], ids=["png", "random"]
)
def test_non_audio_bytes_are_refused(data: bytes) -> None:
    message = _error(data)
    assert "not an audio file" in message and "send WAV, FLAC, OGG" in message


def test_empty_bytes_are_refused() -> None:
    message = _error(b"")
    assert "is empty" in message and "send the bytes of an audio file" in message


def test_wav_with_no_frames_is_refused() -> None:
    message = _error(_encode(np.zeros(0, dtype=np.float32), RATE))
    assert "no samples" in message and "send a clip" in message


def test_too_long_clip_is_refused_from_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    def _no_decoding(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the clip was decoded before its length was checked")

    data = _encode(_sine(440, RATE, 1.0), RATE)
    monkeypatch.setattr(soundfile.SoundFile, "read", _no_decoding)
    message = _error(data, max_duration_s=0.5)
    assert "1.0 s long" in message and "limit of 0.5 s" in message
    assert "send a shorter clip" in message


def test_more_samples_than_the_budget_are_refused_from_the_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """0.4 s is within 0.5 s, but 12 channels at 48 kHz are more samples than the server
    decodes for a 0.5 s limit: an audio bomb is refused before a byte of it is decoded."""

    def _no_decoding(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the clip was decoded before its size was checked")

    clip = np.tile(_sine(440, 48_000, 0.4)[:, None], (1, 12))
    data = _encode(clip, 48_000)
    monkeypatch.setattr(soundfile.SoundFile, "read", _no_decoding)
    message = _error(data, max_duration_s=0.5)
    assert "over the 384000 samples per second" in message
    assert "send fewer channels or a lower sample rate" in message


def test_a_header_claiming_absurd_channels_is_refused() -> None:
    data = _encode(np.zeros((10, 40), dtype=np.float32), RATE)
    message = _error(data)
    assert "40 channels" in message and "1-32 channels" in message


def test_a_length_the_header_hides_is_never_decoded_past_the_limit() -> None:
    """A WAV whose header says nothing of its length (data size 0xFFFFFFFF, as a streaming
    writer leaves it) is read only up to the limit, then refused."""
    data = bytearray(_encode(_sine(440, RATE, 1.0), RATE, subtype="PCM_16"))
    at = data.index(b"data") + 4
    data[at : at + 4] = b"\xff\xff\xff\xff"
    message = _error(bytes(data), max_duration_s=0.5)
    assert "limit of 0.5 s" in message


@pytest.mark.parametrize("level", [0.0, 1e-4], ids=["zeros", "minus-80-dbfs"])
def test_silence_is_refused_below_silence_db(level: float) -> None:
    clip = _sine(440, RATE, 0.1) * np.float32(level / 0.5)
    message = _error(_encode(clip, RATE), silence_db=-60.0)
    assert "is silent" in message and "send a clip with sound" in message


def test_silence_is_accepted_without_silence_db() -> None:
    out = _run(_encode(np.zeros(1600, dtype=np.float32), RATE), silence_db=None)
    np.testing.assert_array_equal(out, np.full_like(out, SILENCE_DB))


# --- batch padding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "silence"),
    [
        ({"layout": "MT", "mean": -40.0, "std": 20.0}, SILENCE_DB),
        ({"layout": "1MT", "mean": -40.0, "std": 20.0}, SILENCE_DB),
        ({"features": "waveform", "layout": "T", "mean": 0.1, "std": 2.0}, 0.0),
        ({"features": "waveform", "layout": "1T", "mean": 0.1, "std": 2.0}, 0.0),
    ],
)
def test_variable_length_pads_time_with_the_silence_value(
    options: dict[str, Any], silence: float
) -> None:
    pads = audio.pad_values(_stage(**options), "x")
    assert pads == {"x": pytest.approx((silence - options["mean"]) / options["std"])}
    # ...which is what a silent stretch of a real clip becomes.
    out = _run(_encode(np.zeros(1600, dtype=np.float32), RATE), **options)
    np.testing.assert_allclose(out, pads["x"], rtol=1e-6)


@pytest.mark.parametrize(
    "options",
    [{"duration_s": 1.0}, {"layout": "TM"}, {"duration_s": 1.0, **WAVE}],
    ids=["fixed-log-mel", "time-first", "fixed-waveform"],
)
def test_fixed_length_or_time_first_declares_no_padding(options: dict[str, Any]) -> None:
    assert audio.pad_values(_stage(**options), "x") == {}


# --- spec -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"features": "waveform", "layout": "MT"}, 'goes with features "waveform"'),
        ({"features": "log_mel", "layout": "1T"}, 'goes with features "waveform"'),
        ({"n_fft": 256, "win_length": 400}, "win_length must not exceed n_fft"),
        ({"sample_rate": 16_000, "f_max": 9000.0}, "above half the sample rate"),
        ({"duration_s": 30.0, "max_duration_s": 10.0}, "must not exceed max_duration_s"),
    ],
)
def test_inconsistent_specs_are_rejected(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        _stage(**options)
