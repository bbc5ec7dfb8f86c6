"""A concurrent burst is batched, and every batched answer equals the single answer."""

from __future__ import annotations

import base64
import json
import re

import httpx

from tests.e2e.conftest import BUNDLED, Server
from tests.support.burst import burst


def _batch_histogram(metrics: str, model: str) -> tuple[float, float]:
    def value(name: str) -> float:
        pattern = rf'^inferd_batch_size_{name}{{model="{model}",version="1"}} (\S+)$'
        match = re.search(pattern, metrics, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    return value("sum"), value("count")


async def test_burst_is_batched_and_answers_match_singles(server: Server) -> None:
    lines = (BUNDLED / "digits" / "eval" / "test.jsonl").read_text().splitlines()[:48]
    instances = [json.loads(line)["instance"] for line in lines]
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        singles = []
        for instance in instances:  # one at a time: nothing to batch with
            reply = await http.post("/v1/models/digits:predict", json={"instances": [instance]})
            singles.append(reply.json()["predictions"][0])
        before = _batch_histogram((await http.get("/metrics")).text, "digits")
        bodies = [
            json.dumps({"instances": [instance]}).encode()
            for instance in instances
            for _ in range(2)
        ]
        host, port = server.host_port.split(":")
        replies = await burst(host, int(port), "/v1/models/digits:predict", bodies)
        after = _batch_histogram((await http.get("/metrics")).text, "digits")
    items = after[0] - before[0]
    batches = after[1] - before[1]
    assert items == 2 * len(instances)
    assert items / batches > 1.0, f"{items} items ran in {batches} batches"
    for position, (status, reply) in enumerate(replies):
        assert status == 200
        batched = reply["predictions"][0]
        single = singles[position // 2]
        assert batched["label"] == single["label"]
        for got, want in zip(batched["top_k"], single["top_k"], strict=True):
            assert got["label"] == want["label"]
            assert abs(got["score"] - want["score"]) < 1e-5


async def test_v2_burst_binary_matches_single(server: Server) -> None:
    png = base64.b64encode((BUNDLED.parent / "examples/digits/samples/seven.png").read_bytes())
    body = {
        "inputs": [
            {
                "name": "image",
                "datatype": "BYTES",
                "shape": [1, 1],
                "data": [png.decode()],
                "parameters": {"content_type": "base64"},
            }
        ]
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        single = (await http.post("/v2/models/digits/infer", json=body)).json()
    host, port = server.host_port.split(":")
    replies = await burst(
        host, int(port), "/v2/models/digits/infer", [json.dumps(body).encode()] * 32
    )
    want = {o["name"]: o["data"] for o in single["outputs"]}
    for status, reply in replies:
        assert status == 200
        got = {o["name"]: o["data"] for o in reply["outputs"]}
        assert got["label"] == want["label"] == ["7"]
        assert (
            max(
                abs(a - b) for a, b in zip(got["probabilities"], want["probabilities"], strict=True)
            )
            < 1e-5
        )


def test_metrics_cover_every_stage(server: Server) -> None:
    with server.client() as http:
        http.post("/v1/models/affine:predict", json={"instances": [[1, 2, 3, 4]]})
        text = http.get("/metrics").text
    for stage in ("queue", "preprocess", "model", "postprocess", "total"):
        assert f'inferd_stage_seconds_count{{model="affine",stage="{stage}"}}' in text
    assert 'inferd_requests_total{model="affine",protocol="v1",status="200"}' in text
    assert 'inferd_queue_depth{model="affine",version="1"}' in text
