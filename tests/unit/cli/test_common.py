"""What the commands share: sizes such as --max-body-size."""

from __future__ import annotations

import pytest
import typer

from inferd.cli.common import parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1000000", 1_000_000),
        ("32MiB", 32 * 1024**2),
        ("512k", 512 * 1024),
        ("512KB", 512 * 1024),
        ("2g", 2 * 1024**3),
        ("1.5k", 1536),
        (" 7 mb ", 7 * 1024**2),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "12 parsecs", "-5k", "1tb"])
def test_parse_size_refuses_nonsense(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="is not a size"):
        parse_size(text)
