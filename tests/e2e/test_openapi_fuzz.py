"""The served OpenAPI document, fuzzed against a real server with schemathesis: whatever a
client sends to any route (valid, near-valid or garbage), the answer is a success or a 4xx
with a JSON `error`, never a 5xx and never a hang."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.e2e.conftest import BUNDLED, Server, start_server, stop_server


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root: Path = tmp_path_factory.mktemp("openapi")
    running = start_server(BUNDLED, root / "server.log")
    try:
        yield running
    finally:
        stop_server(running.process)


@pytest.fixture(scope="module")
def api_schema(fuzzed_server: Server) -> Any:
    return schemathesis.openapi.from_url(fuzzed_server.url + "/openapi.json")


def test_the_document_lists_every_route_and_the_servers_models(fuzzed_server: Server) -> None:
    document = httpx.get(fuzzed_server.url + "/openapi.json", timeout=10).json()
    assert document["openapi"] == "3.1.0"
    paths = document["paths"]
    for path in ("/v2/models/{model}/infer", "/v1/models/{model}:predict", "/v1/completions"):
        assert path in paths
    model = paths["/v2/models/{model}/infer"]["post"]["parameters"][0]
    assert {"digits", "pycoder", "breast-cancer"} <= set(model["schema"]["enum"])


def test_no_input_is_a_server_error(api_schema: Any) -> None:
    """Every operation, positive and negative data (schemathesis' generators), 15 cases each."""
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 23
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=15,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def call(case: Any) -> None:
                response = case.call(timeout=60)
                if _not_ready(response):  # a readiness answer, not a failure
                    return
                if response.status_code >= 500 or (
                    response.status_code >= 400 and not _says_what_is_wrong(response)
                ):
                    failures.append(
                        f"{case.method} {case.formatted_path} -> {response.status_code}: "
                        f"{response.text[:200]}"
                    )

            try:
                call()
            except Unsatisfiable:  # nothing to get wrong: no parameters and no body
                assert mode is GenerationMode.NEGATIVE
    assert not failures, "\n".join(failures[:20])


def _not_ready(response: Any) -> bool:
    try:
        return response.status_code == 503 and response.json().get("ready") is False
    except ValueError:
        return False


def _says_what_is_wrong(response: Any) -> bool:
    try:
        return isinstance(response.json().get("error"), str)
    except ValueError:
        return False
