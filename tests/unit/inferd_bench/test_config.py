"""A configuration is checked before anything runs, with messages that name the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferd_bench.config import BenchConfig, BenchError, parse_header, parse_levels, parse_shape


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scenario": "soak"}, "unknown scenario"),
        ({"protocol": "grpc"}, "unknown protocol"),
        ({"duration_s": 0}, "--duration must be positive"),
        ({"workers": 0}, "--workers must be positive"),
        ({"warmup_s": -1}, "--warmup cannot be negative"),
        ({"requests": 0}, "--requests must be positive"),
        ({"concurrency": (1, 0)}, "--concurrency"),
        ({"scenario": "server"}, "--rate R"),
        ({"scenario": "server", "rate": -5.0}, "--rate must be positive"),
        ({"samples": Path("/nonexistent.jsonl")}, "does not exist"),
        ({"samples": Path("."), "eval_data": Path(".")}, "not both"),
        ({"model": ""}, "--model"),
    ],
)
def test_bad_configurations_are_refused(fields: dict[str, object], message: str) -> None:
    config = BenchConfig(**{"url": "http://127.0.0.1:8000", "model": "m", **fields})  # type: ignore[arg-type]
    with pytest.raises(BenchError, match=message):
        config.check()


def test_defaults_are_valid() -> None:
    BenchConfig("http://127.0.0.1:8000", "m").check()
    BenchConfig("http://h", "m", scenario="server", p99_bound_ms=50).check()


def test_parsers() -> None:
    assert parse_levels("1, 4,16,64") == (1, 4, 16, 64)
    assert parse_shape("image=1,28,28") == ("image", (1, 28, 28))
    assert parse_header("Authorization: Bearer k:1") == ("Authorization", "Bearer k:1")
    for bad in ("1,x", "0", ""):
        with pytest.raises(BenchError):
            parse_levels(bad)
    for bad in ("image", "=1,2", "x=a,b", "x=-1"):
        with pytest.raises(BenchError):
            parse_shape(bad)
    for bad in ("no colon", ": empty", "X: a\r\nY: b"):
        with pytest.raises(BenchError):
            parse_header(bad)
