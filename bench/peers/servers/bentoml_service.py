"""BentoML: one service, one batchable API per model at its V2 route.

`@bentoml.api(batchable=True)` turns on BentoML's adaptive batching: its dispatcher merges
the one list argument of concurrent requests into one call (up to `max_batch_size`, choosing
the wait itself from the latency it observes; `max_latency_ms` is the budget beyond which it
refuses with 503 rather than a wait window) and splits the returned list back by request.

A batchable API takes exactly one argument and answers with its own slice of the returned
list, so the V2 body's `inputs` list is that argument and the reply is the V2 `outputs` list
itself (`[{"name": "logits", ...}]`), not an object wrapping it. Started with
`bentoml serve bentoml_service:Peers`, one worker process, access log off.
"""

from __future__ import annotations

import bentoml
import numpy as np
from common import load_config, open_session
from pydantic import BaseModel

CONFIG = load_config()
MAX_BATCH = CONFIG.max_batch_size
LATENCY_BUDGET_MS = 60_000  # BentoML's default: never refuse a request for being slow


class Tensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    data: list[float]


@bentoml.service(workers=1, logging={"access": {"enabled": False}}, traffic={"timeout": 60})
class Peers:
    def __init__(self) -> None:
        self.sessions = {m.name: open_session(m.path, CONFIG.threads) for m in CONFIG.models}

    def _run(self, model: str, inputs: list[Tensor]) -> list[Tensor]:
        """One ORT run over every request's tensor, answered one row per request."""
        session = self.sessions[model]
        x = np.concatenate([np.asarray(t.data, dtype=np.float32).reshape(t.shape) for t in inputs])
        y = session.run(None, {session.get_inputs()[0].name: x})[0]
        name = session.get_outputs()[0].name
        return [
            Tensor(name=name, datatype="FP32", shape=[1, *row.shape], data=row.ravel().tolist())
            for row in y
        ]

    @bentoml.api(
        route="/v2/models/tiny/infer",
        batchable=True,
        max_batch_size=MAX_BATCH,
        max_latency_ms=LATENCY_BUDGET_MS,
    )
    def tiny(self, inputs: list[Tensor]) -> list[Tensor]:
        return self._run("tiny", inputs)

    @bentoml.api(
        route="/v2/models/cnn/infer",
        batchable=True,
        max_batch_size=MAX_BATCH,
        max_latency_ms=LATENCY_BUDGET_MS,
    )
    def cnn(self, inputs: list[Tensor]) -> list[Tensor]:
        return self._run("cnn", inputs)
