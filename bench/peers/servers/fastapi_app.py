"""Plain FastAPI + ONNX Runtime: the baseline a team writes in an afternoon.

The V2 route, pydantic request and response models, and a plain `def` endpoint, so FastAPI
runs each request in its thread pool: one ORT run per request, no batching (FastAPI has none),
as many runs at once as requests in flight. Started with the uvicorn CLI (uvloop, httptools,
no access log), one worker process.
"""

from __future__ import annotations

import numpy as np
from common import load_config, open_session
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel


class Tensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    data: list[float]


class InferRequest(BaseModel):
    inputs: list[Tensor]


class InferResponse(BaseModel):
    model_name: str
    outputs: list[Tensor]


config = load_config()
sessions = {m.name: open_session(m.path, config.threads) for m in config.models}
app = FastAPI(title="onnx-fastapi")


@app.post("/v2/models/{model_name}/infer")
def infer(model_name: str, request: InferRequest) -> InferResponse:
    session = sessions.get(model_name)
    if session is None:
        raise HTTPException(404, f"no model {model_name!r}; serving {sorted(sessions)}")
    feeds = {t.name: np.asarray(t.data, dtype=np.float32).reshape(t.shape) for t in request.inputs}
    results = session.run(None, feeds)
    outputs = [
        Tensor(name=meta.name, datatype="FP32", shape=list(r.shape), data=r.ravel().tolist())
        for meta, r in zip(session.get_outputs(), results, strict=True)
    ]
    return InferResponse(model_name=model_name, outputs=outputs)
