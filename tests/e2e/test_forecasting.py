"""Sequence prediction end to end: the sunspots forecaster over V1 and V2."""

from __future__ import annotations

import json

import numpy as np
import tritonclient.http as triton

from tests.e2e.conftest import BUNDLED, ROOT, Server
from tests.e2e.test_cli import inferd
from tests.support.burst import alone_and_in_a_burst

RECENT = json.loads((ROOT / "examples" / "sunspots" / "samples" / "recent.json").read_text())
HISTORY: list[float] = RECENT["instances"][0]


def test_bare_list_and_keyed_series_give_the_same_forecast(server: Server) -> None:
    with server.client() as http:
        bare = http.post("/v1/models/sunspots:predict", json={"instances": [HISTORY]})
        keyed = http.post("/v1/models/sunspots:predict", json={"instances": [{"series": HISTORY}]})
    assert bare.status_code == 200, bare.text
    forecast = bare.json()["predictions"][0]["forecast"]
    assert len(forecast) == 12
    assert all(0.0 <= value < 400.0 for value in forecast)  # yearly means never exceed ~270
    assert keyed.json() == bare.json()


def test_only_the_latest_window_matters(server: Server) -> None:
    longer = [50.0] * 30 + HISTORY
    with server.client() as http:
        short = http.post("/v1/models/sunspots:predict", json={"instances": [HISTORY]}).json()
        long = http.post("/v1/models/sunspots:predict", json={"instances": [longer]}).json()
    assert short == long


def test_a_series_too_short_for_the_window_is_400(server: Server) -> None:
    with server.client() as http:
        reply = http.post("/v1/models/sunspots:predict", json={"instances": [[10.0, 20.0]]})
        assert reply.status_code == 400
        assert "send at least" in reply.json()["error"]
        assert http.get("/v2/health/ready").status_code == 200


def test_v2_with_tritonclient_matches_v1(server: Server) -> None:
    client = triton.InferenceServerClient(url=server.host_port)
    series = np.asarray([HISTORY], dtype=np.float32)
    tensor = triton.InferInput("series", list(series.shape), "FP32")
    tensor.set_data_from_numpy(series, binary_data=True)
    result = client.infer("sunspots", [tensor])
    with server.client() as http:
        v1 = http.post("/v1/models/sunspots:predict", json={"instances": [HISTORY]}).json()
    np.testing.assert_allclose(
        result.as_numpy("forecast")[0], v1["predictions"][0]["forecast"], rtol=1e-5
    )


def test_batched_forecasts_equal_single_ones(server: Server) -> None:
    examples = [
        json.loads(line)["instance"]
        for line in (BUNDLED / "sunspots" / "eval" / "test.jsonl").read_text().splitlines()[:24]
    ]
    path = "/v1/models/sunspots:predict"
    for alone, batched in alone_and_in_a_burst(server.host_port, path, examples):
        np.testing.assert_allclose(batched["forecast"], alone["forecast"], rtol=1e-5)


def test_forecaster_beats_the_seasonal_naive_baseline() -> None:
    done = inferd("evaluate", "sunspots", "-r", str(BUNDLED))
    assert done.returncode == 0, done.stdout + done.stderr
    text = " ".join(done.stdout.split())
    model = float(text.split("mase = ")[1].split()[0])
    baseline = float(text.split("baseline mase = ")[1].split()[0].rstrip(")"))
    assert model < baseline
