"""Audio preprocessing: any sound file soundfile reads → the clip or log-mel a model expects.

Decodes WAV/FLAC/OGG/MP3 (libsndfile), refuses clips that are too long before decoding
them, mixes to mono, resamples with soxr, optionally refuses silence and trims quiet edges,
crops or pads to a fixed length and computes a log-mel spectrogram in numpy. The spectrogram
follows librosa's conventions (centred frames, periodic Hann window, Slaney or HTK mel
filters with Slaney area normalization, `power_to_db` with `top_db`), so models trained with
librosa features serve unchanged.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from inferd.errors import BadRequestError
from inferd.spec import AudioStage
from inferd.stages import Item, Preprocess, encoded_bytes, only_value

_KIND = "an audio file (WAV, FLAC, OGG, MP3)"
_AMIN = 1e-10
"""Power floor before taking logs (librosa's `amin`)."""


MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 32
MAX_AMPLITUDE = 1_000.0
"""The largest sample magnitude taken. Float encodings (WAV, AU, CAF, ...) can hold any float,
NaN and infinity included, though sound spans -1.0 to 1.0: beyond 60 dB over full scale a file
is broken or hostile, and its samples would overflow resampling into NaN features."""
SAMPLES_PER_SECOND_BUDGET = 48_000 * 8
"""Decoded samples (all channels) a clip may have per second of `max_duration_s`: eight
channels at 48 kHz. A header can claim any rate and channel count; memory is bounded by this,
not by what the file says."""


def decode_clip(data: bytes, name: str, max_duration_s: float) -> tuple[np.ndarray, int]:
    """A mono float32 clip and its sample rate; a 400 for non-audio, empty, too-long or
    too-large files, refused from the header where it tells and never decoded past the limit
    where it lies (streamed OGG/MP3 may not know their length)."""
    import soundfile  # imported here: only audio models need libsndfile

    try:
        sound = soundfile.SoundFile(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
        raise BadRequestError(
            f"input {name!r} is not an audio file soundfile can read; send WAV, FLAC, OGG "
            "or MP3 bytes"
        ) from None
    with sound:
        rate, channels = int(sound.samplerate), int(sound.channels)
        if not 0 < rate <= MAX_SAMPLE_RATE or not 0 < channels <= MAX_CHANNELS:
            raise BadRequestError(
                f"input {name!r} says it has {channels} channels at {rate} Hz; audio is "
                f"taken with 1-{MAX_CHANNELS} channels at up to {MAX_SAMPLE_RATE} Hz"
            )
        max_frames = int(max_duration_s * rate)
        budget = int(max_duration_s * SAMPLES_PER_SECOND_BUDGET)
        if max_frames * channels > budget:
            max_frames = budget // channels
        if sound.frames > 0:  # the header's length: refuse before decoding anything
            _check_length(sound.frames, rate, name, max_duration_s, max_frames)
        try:
            samples = sound.read(max_frames + 1, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
            raise BadRequestError(f"input {name!r} is a damaged audio file: {error}") from None
    # The header's frame count can be absent or wrong: check what decoded.
    _check_length(samples.shape[0], rate, name, max_duration_s, max_frames)
    if not (np.abs(samples) <= MAX_AMPLITUDE).all():  # NaN compares false too
        raise BadRequestError(
            f"input {name!r} has samples that are NaN, infinite or beyond "
            f"±{MAX_AMPLITUDE:g}; float audio spans -1.0 to 1.0"
        )
    return samples.mean(axis=1, dtype=np.float32), rate


def _check_length(
    frames: int, rate: int, name: str, max_duration_s: float, max_frames: int
) -> None:
    if frames <= 0:
        raise BadRequestError(
            f"input {name!r} is an audio file with no samples (0 s long); send a clip with sound"
        )
    seconds = frames / rate
    if seconds > max_duration_s:
        raise BadRequestError(
            f"input {name!r} is {seconds:.1f} s long, over this model's limit of "
            f"{max_duration_s:g} s; send a shorter clip"
        )
    if frames > max_frames:
        raise BadRequestError(
            f"input {name!r} has {frames} frames of {rate} Hz audio, over the "
            f"{SAMPLES_PER_SECOND_BUDGET} samples per second of max_duration_s this server "
            "decodes; send fewer channels or a lower sample rate"
        )


def resample(clip: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality)."""
    if from_rate == to_rate:
        return clip
    import soxr

    return np.asarray(soxr.resample(clip, from_rate, to_rate, quality="HQ"), dtype=np.float32)


def peak_dbfs(clip: np.ndarray) -> float:
    peak = float(np.abs(clip).max(initial=0.0))
    return 20.0 * float(np.log10(peak)) if peak > 0 else float("-inf")


def trim(clip: np.ndarray, below_peak_db: float) -> np.ndarray:
    """Drop leading and trailing samples quieter than the peak minus `below_peak_db`."""
    magnitude = np.abs(clip)
    loud = np.flatnonzero(magnitude >= magnitude.max() * 10.0 ** (-below_peak_db / 20.0))
    return clip[loud[0] : loud[-1] + 1] if loud.size else clip


def fit_length(clip: np.ndarray, length: int, align: str) -> np.ndarray:
    """Crop or zero-pad to exactly `length` samples, keeping the start or the centre."""
    if clip.size >= length:
        start = 0 if align == "start" else (clip.size - length) // 2
        return clip[start : start + length]
    before = 0 if align == "start" else (length - clip.size) // 2
    return np.pad(clip, (before, length - clip.size - before))


def hz_to_mel(hz: np.ndarray, scale: str) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    # Slaney: linear below 1 kHz, logarithmic above.
    linear_step = 200.0 / 3
    log_start_hz, log_step = 1000.0, np.log(6.4) / 27.0
    mels = hz / linear_step
    high = hz >= log_start_hz
    mels[high] = log_start_hz / linear_step + np.log(hz[high] / log_start_hz) / log_step
    return mels


def mel_to_hz(mels: np.ndarray, scale: str) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    linear_step = 200.0 / 3
    log_start_hz, log_step = 1000.0, np.log(6.4) / 27.0
    log_start_mel = log_start_hz / linear_step
    hz = mels * linear_step
    high = mels >= log_start_mel
    hz[high] = log_start_hz * np.exp(log_step * (mels[high] - log_start_mel))
    return hz


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float, scale: str
) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangular filters, each normalized to unit area (Slaney)."""
    # Bin k is at k * rate / n_fft, which for odd n_fft stops short of rate / 2.
    fft_hz = np.asarray(np.fft.rfftfreq(n_fft, 1.0 / sample_rate), dtype=np.float64)
    edges_mel = np.linspace(
        hz_to_mel(np.array([f_min]), scale)[0], hz_to_mel(np.array([f_max]), scale)[0], n_mels + 2
    )
    edges_hz = mel_to_hz(edges_mel, scale)
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, np.newaxis] - fft_hz[np.newaxis, :]
    rising = -ramps[:-2] / widths[:-1, np.newaxis]
    falling = ramps[2:] / widths[1:, np.newaxis]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, np.newaxis]
    return filters


def hann_window(win_length: int, n_fft: int) -> np.ndarray:
    """A periodic Hann window, zero-padded to n_fft and centred (as librosa does)."""
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win_length) / win_length)
    left = (n_fft - win_length) // 2
    return np.pad(window, (left, n_fft - win_length - left))


def power_spectrogram(
    clip: np.ndarray, n_fft: int, hop_length: int, window: np.ndarray
) -> np.ndarray:
    """[n_fft // 2 + 1, frames] power of centred, zero-padded frames."""
    padded = np.pad(clip.astype(np.float64), n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    spectrum = np.fft.rfft(frames * window, axis=1)
    return np.asarray((spectrum.real**2 + spectrum.imag**2).T)


def power_to_db(power: np.ndarray, top_db: float | None) -> np.ndarray:
    db = 10.0 * np.log10(np.maximum(power, _AMIN))
    return np.asarray(np.maximum(db, db.max() - top_db)) if top_db is not None else db


def build(stage: AudioStage, input_name: str, output_name: str) -> Preprocess:
    """A preprocess function for one audio input; configuration is checked once, here."""
    rate = stage.sample_rate
    length = round(stage.duration_s * rate) if stage.duration_s is not None else None
    window = hann_window(stage.win_length or stage.n_fft, stage.n_fft)
    filters = mel_filterbank(
        rate, stage.n_fft, stage.n_mels, stage.f_min, stage.f_max or rate / 2, stage.mel_scale
    )

    def features(clip: np.ndarray) -> np.ndarray:
        if stage.features == "waveform":
            values: np.ndarray = clip.astype(np.float64)
        else:
            power = power_spectrogram(clip, stage.n_fft, stage.hop_length, window)
            # einsum, not `@`: a multi-threaded BLAS call this small thrashes its threads
            # against the model's on a busy server (10x slower than this single-threaded loop).
            values = power_to_db(np.einsum("mf,ft->mt", filters, power), stage.top_db)
            if stage.layout == "TM":
                values = values.T
        values = (values - stage.mean) / stage.std
        if stage.layout in ("1MT", "1T"):
            values = values[np.newaxis]
        return np.ascontiguousarray(values, dtype=np.float32)

    def preprocess(item: Item) -> None:
        data = encoded_bytes(
            only_value(item.values, input_name, "the audio stage"), input_name, _KIND
        )
        clip, clip_rate = decode_clip(data, input_name, stage.max_duration_s)
        if stage.silence_db is not None and peak_dbfs(clip) < stage.silence_db:
            raise BadRequestError(
                f"input {input_name!r} is silent (peak {peak_dbfs(clip):.0f} dBFS, below this "
                f"model's {stage.silence_db:g} dBFS); send a clip with sound in it"
            )
        sent = clip.size
        clip = resample(clip, clip_rate, rate)
        if clip.size == 0:  # a sample or two at a high rate is none at a low one
            raise BadRequestError(
                f"input {input_name!r} is too short: resampled from {clip_rate} Hz to this "
                f"model's {rate} Hz, its {sent} sample(s) leave none; send a longer clip"
            )
        if stage.trim_db is not None:
            clip = trim(clip, stage.trim_db)
        if length is not None:
            clip = fit_length(clip, length, stage.align)
        out: dict[str, Any] = {k: v for k, v in item.values.items() if k != input_name}
        out[output_name] = features(clip)
        item.values = out

    return preprocess


def pad_values(stage: AudioStage, output_name: str) -> dict[str, float]:
    """Variable-length clips are padded along time when batched, if time is the last axis,
    with the value silence has: zero samples, or the dB floor of zero power."""
    if stage.duration_s is not None or stage.layout == "TM":
        return {}
    silence = 0.0 if stage.features == "waveform" else 10.0 * np.log10(_AMIN)
    return {output_name: float((silence - stage.mean) / stage.std)}
