"""Mutated files: real, valid encodings with a few bytes flipped, overwritten, cut, inserted
or deleted, which reach much deeper into a decoder than random bytes do."""

from __future__ import annotations

import struct

from hypothesis import strategies as st

from tests.unit.fuzz.outcome import sometimes

INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
"""Values that break length and size fields: zero, sign bits, the largest of each width."""


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(2 if sometimes(draw, 3) else 1):
        if not data:
            data += draw(st.binary(min_size=1, max_size=8))
            continue
        # Headers hold the sizes and counts worth breaking: aim there half the time, and
        # spare the magic number that says what the file is, mostly.
        start = 0 if sometimes(draw, 8) else min(len(data) - 1, 8)
        end = len(data) if draw(st.booleans()) else min(len(data), 64)
        at = draw(st.integers(start, max(start, end - 1)))
        kind = draw(st.sampled_from(["flip", "byte", "word", "cut", "insert", "delete"]))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[at] = draw(st.integers(0, 255))
        elif kind == "word":  # a 2- or 4-byte field, either byte order
            value = draw(st.sampled_from(INTERESTING) | st.integers(0, 2**32 - 1))
            width = draw(st.sampled_from([2, 4]))
            order = draw(st.sampled_from("<>"))
            packed = struct.pack(order + ("H" if width == 2 else "I"), value % 256**width)
            data[at : at + width] = packed
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at : at + draw(st.integers(1, 16))]
    return bytes(data)
