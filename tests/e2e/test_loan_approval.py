"""The worked example of issue 15: `loan-approval` inherits a bias injected into its training
history; replaying applicants and their true outcomes through a real `inferd serve` makes the
report find that bias (the measured gap's interval holds the injected one), while the fair
reference model shows none. Also: cost and energy per prediction, the HTML report, and the
clear answers to feedback and reports that cannot be."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.loan_approval.data import INJECTED_GAP
from tests.e2e.conftest import BUNDLED, ROOT, Server, start_server, stop_server

REPLAY = ROOT / "examples" / "loan_approval" / "replay.jsonl"
PER_REQUEST = 50


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    root = tmp_path_factory.mktemp("loans")
    repo = root / "repo"
    for name in ("loan-approval", "loan-approval-fair"):
        shutil.copytree(BUNDLED / name, repo / name)
    data = root / "data"
    server = start_server(
        repo,
        root / "server.log",
        "--data-dir",
        str(data),
        "--price-per-hour",
        "0.72",
        "--cpu-watts",
        "12",
        "--grid-intensity",
        "400",
        "--monitor-interval",
        "1",
    )
    try:
        yield server, data
    finally:
        stop_server(server.process)


def _replay() -> list[dict[str, Any]]:
    return [json.loads(line) for line in REPLAY.read_text().splitlines() if line.strip()]


def _send(client: httpx.Client, model: str, applicants: list[dict[str, Any]]) -> None:
    """Every applicant as a prediction, then every true outcome as feedback."""
    feedback = []
    for start in range(0, len(applicants), PER_REQUEST):
        chunk = applicants[start : start + PER_REQUEST]
        response = client.post(
            f"/v1/models/{model}:predict", json={"instances": [a["instance"] for a in chunk]}
        )
        assert response.status_code == 200, response.text
        request_id = response.headers["x-request-id"]
        feedback += [
            {"request_id": request_id, "item": i, "truth": a["repaid"]} for i, a in enumerate(chunk)
        ]
    reply = client.post("/v1/feedback", json={"feedback": feedback})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"recorded": len(applicants)}


@pytest.fixture(scope="module")
def reports(served: tuple[Server, Path]) -> dict[str, dict[str, Any]]:
    server, _ = served
    applicants = _replay()
    found = {}
    with httpx.Client(base_url=server.url, timeout=120.0) as client:
        for model in ("loan-approval", "loan-approval-fair"):
            _send(client, model, applicants)
            response = client.get(f"/v1/models/{model}/report")
            assert response.status_code == 200, response.text
            found[model] = response.json()
    return found


def test_the_report_finds_the_injected_bias(reports: dict[str, dict[str, Any]]) -> None:
    version = reports["loan-approval"]["versions"]["1"]
    assert version["predictions"] == version["labelled"] == 2000
    group = version["fairness"]["attributes"]["group"]
    assert group["status"] == "ok", group["message"]
    parity = group["demographic_parity_difference"]
    low, high = parity["ci"]
    assert low <= INJECTED_GAP <= high, (parity, INJECTED_GAP)
    assert group["groups"]["A"]["selection_rate"] > group["groups"]["B"]["selection_rate"]
    # Held to the stricter bar, creditworthy B applicants are denied: unequal odds too.
    assert group["equalized_odds_difference"]["value"] > 0.2


def test_the_fair_reference_shows_none(reports: dict[str, dict[str, Any]]) -> None:
    group = reports["loan-approval-fair"]["versions"]["1"]["fairness"]["attributes"]["group"]
    parity = group["demographic_parity_difference"]
    assert parity["value"] < 0.05 and parity["ci"][1] < INJECTED_GAP / 2
    assert group["equalized_odds_difference"]["value"] < 0.1


def test_accuracy_cost_energy_and_latency_are_reported(
    reports: dict[str, dict[str, Any]],
) -> None:
    version = reports["loan-approval"]["versions"]["1"]
    live = version["accuracy"]
    assert live["status"] == "ok" and live["n"] == 2000
    assert 0.7 < live["value"] < 0.9 and live["ci"][0] < live["value"] < live["ci"][1]
    fair = reports["loan-approval-fair"]["versions"]["1"]["accuracy"]["value"]
    assert fair > live["value"]  # the bias costs accuracy on the true outcome too
    assert version["cost"]["per_1000"] > 0 and version["cost"]["cpu_ms_per_prediction"] > 0
    energy = version["energy"]
    assert energy["method"] in ("estimate", "rapl") and energy["joules_per_1000"] > 0
    assert energy["gco2e_per_1000"] == pytest.approx(energy["joules_per_1000"] * 400 / 3.6e6)
    assert version["latency_ms"]["model"]["p50"] > 0
    assert version["slo"]["p99_ms"] == 50 and version["slo"]["total"] == 2000
    assert version["drift"]["status"] == "ok"  # replay and eval data come from one source
    assert all(f["psi"] < 0.1 for f in version["drift"]["features"].values())
    assert any(
        "cost: CPU time x 0.72 USD per hour" in note for note in reports["loan-approval"]["notes"]
    )


def test_prometheus_has_the_costs(served: tuple[Server, Path], reports: Any) -> None:
    server, _ = served
    text = httpx.get(server.url + "/metrics").text
    for series in (
        'inferd_cpu_seconds_total{model="loan-approval",version="1"}',
        'inferd_cost_total{currency="USD",model="loan-approval",version="1"}',
        'inferd_co2e_grams_total{model="loan-approval",version="1"}',
        'inferd_slo_objective_seconds{model="loan-approval"} 0.05',
        'inferd_slo_attainment{model="loan-approval"}',
    ):
        assert series in text
    assert 'inferd_energy_joules_total{method="' in text


def test_the_bias_alert_fires_through_the_outbox(served: tuple[Server, Path], reports: Any) -> None:
    """model.yaml's approval_gap alert fires for the biased model only, once, as a log action
    delivered from the outbox; the monitor loop's gauges show the gap."""
    server, data = served
    gauge = (
        'inferd_fairness_difference{attribute="group",measure="demographic_parity_difference",'
        'model="loan-approval",version="1"}'
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        log = server.log.read_text()
        delivered = '"action":"approval_gap.0.log"' in log  # the log action's own line
        if delivered and gauge in httpx.get(server.url + "/metrics").text:
            break
        time.sleep(0.5)
    log = server.log.read_text()
    assert "alert approval_gap of loan-approval v1 fired" in log
    assert "alert approval_gap of loan-approval-fair" not in log
    assert log.count("alert approval_gap of loan-approval v1 fired") == 1
    assert '"action":"approval_gap.0.log","model":"loan-approval"' in log
    listed = subprocess.run(
        [sys.executable, "-m", "inferd.cli", "actions", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "approval_gap" in listed.stdout, listed.stdout + listed.stderr


def test_inferd_report_writes_one_html_page(
    served: tuple[Server, Path], reports: Any, tmp_path: Path
) -> None:
    server, data = served
    out = tmp_path / "loans.html"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "inferd.cli",
            "report",
            "loan-approval",
            "--repo",
            str(server.repo),
            "--data-dir",
            str(data),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert page.count("data:image/png;base64,") >= 5  # latency, cost, accuracy, fairness, drift
    assert "demographic parity difference" in page and "energy method" in page
    assert "http://" not in page and 'src="/' not in page  # nothing outside the file


def test_bad_feedback_and_reports_are_4xx(served: tuple[Server, Path], reports: Any) -> None:
    server, _ = served
    with server.client() as client:
        unknown_id = client.post(
            "/v1/feedback", json={"request_id": "nobody", "item": 0, "truth": "approved"}
        )
        assert unknown_id.status_code == 404
        assert "request id 'nobody' item 0" in unknown_id.json()["error"]
        response = client.post(
            "/v1/models/loan-approval:predict", json={"instances": [_replay()[0]["instance"]]}
        )
        rid = response.headers["x-request-id"]
        bad = client.post("/v1/feedback", json={"request_id": rid, "item": 0, "truth": 3})
        assert bad.status_code == 400 and "is a label" in bad.json()["error"]
        bad = client.post("/v1/feedback", json={"request_id": rid, "item": 0, "truth": "maybe"})
        assert bad.status_code == 400 and "not a label of 'loan-approval'" in bad.json()["error"]
        unknown = client.get("/v1/models/nobody/report")
        assert unknown.status_code == 404 and "unknown model" in unknown.json()["error"]
        window = client.get("/v1/models/loan-approval/report?window=-5")
        assert window.status_code == 400 and "?window=" in window.json()["error"]
        assert client.get("/v2/health/ready").status_code == 200
