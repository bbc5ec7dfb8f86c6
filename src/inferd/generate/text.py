"""From token ids to the text a client sees, one token at a time.

A byte-level tokenizer can split one character over several tokens, so decoding each token
alone would print broken characters. `TextStream` decodes a short window of recent tokens and
emits only text that is complete UTF-8; it also holds back any tail that could be the start
of a stop string, so a stop string never reaches the client, even split over tokens.
"""

from __future__ import annotations

from typing import Any

_INCOMPLETE = "\ufffd"
"""What a tokenizer decodes an unfinished UTF-8 byte sequence to."""


class TextStream:
    """The growing output text of one sequence."""

    def __init__(self, tokenizer: Any, stop: tuple[str, ...] = ()) -> None:
        self._tokenizer = tokenizer
        self._tokens: list[int] = []
        self._prefix = 0
        """Start of the window decoded for context (so spaces and merges come out right)."""
        self._read = 0
        """End of the tokens whose text has been produced."""
        self._stop = stop
        self.text = ""
        """All complete text so far (stop string cut off once found)."""
        self._sent = 0
        """How much of `text` the client has been given."""
        self.stopped = False

    def push(self, token: int) -> str:
        """Add a token; the newly printable text (may be empty)."""
        if self.stopped:
            return ""
        self._tokens.append(token)
        before = self._tokenizer.decode(self._tokens[self._prefix : self._read])
        now = self._tokenizer.decode(self._tokens[self._prefix :])
        if now.endswith(_INCOMPLETE) or len(now) < len(before):
            return ""
        self.text += now[len(before) :]
        self._prefix, self._read = self._read, len(self._tokens)
        return self._release()

    def _release(self) -> str:
        starts = (self.text.find(stop, max(0, self._sent - len(stop) + 1)) for stop in self._stop)
        found = [start for start in starts if start >= 0]
        if found:  # cut at the earliest stop string, whichever of them it is
            self.text = self.text[: min(found)]
            self.stopped = True
            return self._flush()
        held = max((_overlap(self.text, stop) for stop in self._stop), default=0)
        ready = len(self.text) - held
        if ready <= self._sent:
            return ""
        out = self.text[self._sent : ready]
        self._sent = ready
        return out

    def _flush(self) -> str:
        out = self.text[self._sent :]
        self._sent = len(self.text)
        return out

    def finish(self) -> str:
        """Everything not yet given out, once the sequence has ended for another reason:
        held-back text, and the tokens of an unfinished character (as U+FFFD)."""
        if not self.stopped and self._read < len(self._tokens):
            before = self._tokenizer.decode(self._tokens[self._prefix : self._read])
            now = self._tokenizer.decode(self._tokens[self._prefix :])
            self.text += now[len(before) :]
            self._prefix = self._read = len(self._tokens)
        return self._flush()


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of `text` that is a beginning of `stop`."""
    for size in range(min(len(stop) - 1, len(text)), 0, -1):
        if stop.startswith(text[-size:]):
            return size
    return 0
