"""Audio classification end to end: spoken-digit over V1 (a sound file as base64) and V2
(BYTES), through every decoding path (WAV, stereo FLAC, OGG, other sample rates), and the
clips a server must refuse."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import tritonclient.http as triton

from tests.e2e.conftest import BUNDLED, ROOT, Server, v2_file_request
from tests.e2e.test_cli import inferd
from tests.support.burst import alone_and_in_a_burst

MODEL = "/v1/models/spoken-digit:predict"
SAMPLES = ROOT / "examples" / "spoken_digit" / "samples"
EXAMPLES = [
    json.loads(line)
    for line in (BUNDLED / "spoken-digit" / "eval" / "test.jsonl").read_text().splitlines()
]
SAMPLE_DIGITS = {"seven.wav": "7", "three.wav": "3", "two.flac": "2", "five.ogg": "5"}


def _b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


def _clip(samples: np.ndarray, rate: int, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize("name", sorted(SAMPLE_DIGITS))
def test_a_sound_file_gets_its_digit(server: Server, name: str) -> None:
    """22.05 kHz WAVs, a 44.1 kHz stereo FLAC and an OGG Vorbis all reach the model as the
    same 16 kHz mono log-mel."""
    with server.client() as http:
        reply = http.post(MODEL, json={"instances": [_b64((SAMPLES / name).read_bytes())]})
    assert reply.status_code == 200, reply.text
    prediction = reply.json()["predictions"][0]
    assert prediction["label"] == SAMPLE_DIGITS[name]
    assert len(prediction["top_k"]) == 3


def test_v2_bytes_with_tritonclient_agree_with_v1(server: Server) -> None:
    clips = [base64.b64decode(e["instance"]["b64"]) for e in EXAMPLES[:4]]
    client = triton.InferenceServerClient(url=server.host_port)
    tensor = triton.InferInput("audio", [4, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[c] for c in clips], dtype=np.object_))
    result = client.infer("spoken-digit", [tensor])
    labels = [v.decode() for v in result.as_numpy("label")[:, 0]]
    with server.client() as http:
        v1 = http.post(MODEL, json={"instances": [e["instance"] for e in EXAMPLES[:4]]}).json()
    assert labels == [p["label"] for p in v1["predictions"]]


def test_v2_json_with_base64_bytes(server: Server) -> None:
    body = v2_file_request("audio", base64.b64decode(EXAMPLES[0]["instance"]["b64"]))
    with server.client() as http:
        reply = http.post("/v2/models/spoken-digit/infer", json=body)
        v1 = http.post(MODEL, json={"instances": [EXAMPLES[0]["instance"]]}).json()
    assert reply.status_code == 200, reply.text
    outputs = {o["name"]: o for o in reply.json()["outputs"]}
    assert outputs["label"]["data"] == [v1["predictions"][0]["label"]]


def test_batched_answers_equal_single_answers(server: Server) -> None:
    instances = [e["instance"] for e in EXAMPLES[:24]]
    for alone, batched in alone_and_in_a_burst(server.host_port, MODEL, instances):
        assert batched["label"] == alone["label"]
        assert batched["score"] == pytest.approx(alone["score"], abs=1e-5)


def _refusal(server: Server, data: bytes) -> str:
    with server.client() as http:
        reply = http.post(MODEL, json={"instances": [_b64(data)]})
        assert reply.status_code == 400, reply.text
        # ... and the server keeps serving.
        sample = _b64((SAMPLES / "seven.wav").read_bytes())
        assert http.post(MODEL, json={"instances": [sample]}).status_code == 200
    return str(reply.json()["error"])


def test_a_file_that_is_not_audio_is_400(server: Server) -> None:
    png = (ROOT / "examples" / "digits" / "samples" / "seven.png").read_bytes()
    assert "is not an audio file" in _refusal(server, png)


def test_silence_is_400(server: Server) -> None:
    assert "is silent" in _refusal(server, _clip(np.zeros(16_000), 16_000))


def test_a_zero_length_clip_is_400(server: Server) -> None:
    assert "no samples (0 s long)" in _refusal(server, _clip(np.zeros(0), 16_000))


def test_a_ten_minute_clip_is_400_with_the_limit(server: Server) -> None:
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 600 * 8_000)
    message = _refusal(server, _clip(noise, 8_000, subtype="PCM_U8"))
    assert "600.0 s long, over this model's limit of" in message


def test_empty_bytes_are_400(server: Server) -> None:
    with server.client() as http:
        reply = http.post(MODEL, json={"instances": [{"b64": ""}]})
    assert reply.status_code == 400 and "is empty" in reply.json()["error"]


def test_predict_cli_reads_a_sound_file() -> None:
    done = inferd("predict", "spoken-digit", str(SAMPLES / "seven.wav"), "-r", str(BUNDLED))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "7"


def test_held_out_accuracy_reaches_90_percent() -> None:
    done = inferd("evaluate", "spoken-digit", "-r", str(BUNDLED))
    assert done.returncode == 0, done.stdout + done.stderr
    assert float(done.stdout.split("accuracy = ")[1].split()[0]) >= 0.90


def test_sample_files_are_what_they_claim() -> None:
    """The samples exercise resampling, mixing and formats only if they really differ."""
    found = {name: soundfile.info(str(SAMPLES / name)) for name in SAMPLE_DIGITS}
    assert found["two.flac"].channels == 2 and found["two.flac"].samplerate == 44_100
    assert found["five.ogg"].format == "OGG"
    assert all(Path(SAMPLES / name).stat().st_size < 200_000 for name in SAMPLE_DIGITS)
