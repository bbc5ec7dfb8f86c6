"""The request id a client sends: used as given, or refused whole (never trimmed)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from inferd.api.common import client_request_id
from inferd.errors import BadRequestError


def _sent(value: str) -> Any:
    return SimpleNamespace(headers={"x-request-id": value})


def test_a_usable_id_is_kept() -> None:
    assert client_request_id(_sent("case-17:a/b+c=d@e")) == "case-17:a/b+c=d@e"


@pytest.mark.parametrize("value", ["case-17\n", "case 17", "", "x" * 129, "case-17\r\n"])
def test_an_unusable_id_is_refused(value: str) -> None:
    with pytest.raises(BadRequestError, match="X-Request-Id must be 1-128 characters"):
        client_request_id(_sent(value))
