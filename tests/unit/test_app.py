"""The composition root's monitoring switches: `--no-monitor` leaves out the accounting, the
objective's counting and the monitor loop; by default a served prediction is charged."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from inferd.app import App, ServerConfig
from tests.e2e.conftest import BUNDLED

APPLICANT = {
    "income": 55.0,
    "debt_ratio": 0.3,
    "credit_history_years": 10.0,
    "savings": 20.0,
    "loan_amount": 10.0,
    "group": "A",
}


@pytest.mark.parametrize("accounting", [True, False])
async def test_monitoring_on_and_off(tmp_path: Path, accounting: bool) -> None:
    shutil.copytree(BUNDLED / "loan-approval", tmp_path / "repo" / "loan-approval")
    app = App(
        ServerConfig(
            tmp_path / "repo",
            store_url=f"sqlite:///{tmp_path / 'inferd.db'}",
            accounting=accounting,
        )
    )
    assert (app.accounting is not None) == accounting and (app.watch is not None) == accounting
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://inferd") as client:
            answer = await client.post(
                "/v1/models/loan-approval:predict", json={"instances": [APPLICANT]}
            )
            assert answer.status_code == 200
            text = (await client.get("/metrics")).text
            report = (await client.get("/v1/models/loan-approval/report")).json()
    finally:
        await app.shutdown()
    charged = 'inferd_cpu_seconds_total{model="loan-approval",version="1"}' in text
    counted = 'inferd_slo_requests_total{met="true",model="loan-approval"' in text
    assert charged == accounting and counted == accounting
    joules = report["versions"]["1"]["energy"]["joules_per_1000"]
    assert (joules is not None) == accounting
    assert ("accounting is off (--no-monitor)" in report["notes"]) != accounting
