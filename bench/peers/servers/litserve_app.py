"""LitServe: one LitAPI per model, each with LitServe's own batching switched on.

LitServe runs the HTTP side (FastAPI on uvicorn) in one process and each LitAPI's inference
loop in a worker process of its own; requests cross between them through queues. The worker
collects up to `max_batch_size` requests, waiting at most `batch_timeout` for the batch to
fill (LitServe's worker busy-polls its queue when that is 0, so the run gives it a small
positive wait), and hands `predict` the stacked batch.
"""

from __future__ import annotations

from typing import Any

import litserve as ls
import numpy as np
from common import ModelConfig, PeerConfig, load_config, open_session, v2_tensor


class OnnxAPI(ls.LitAPI):
    """Serves one ONNX model at its V2 route; decode/encode speak the V2 JSON body."""

    def __init__(self, model: ModelConfig, config: PeerConfig) -> None:
        super().__init__(
            max_batch_size=config.max_batch_size,
            batch_timeout=config.batch_wait_s,
            api_path=f"/v2/models/{model.name}/infer",
        )
        self.model = model
        self.threads = config.threads

    def setup(self, device: str) -> None:
        self.session = open_session(self.model.path, self.threads)
        self.output_name = self.session.get_outputs()[0].name

    def decode_request(self, request):  # type: ignore[no-untyped-def]
        # LitServe reads this parameter's annotation as the endpoint's request type; without
        # one it hands over the parsed JSON body (its documented default). One item per
        # request: drop the batch dimension; LitServe's default `batch` stacks the items.
        tensor = request["inputs"][0]
        return np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])[0]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.model.input: x})[0]

    def encode_response(self, output: np.ndarray) -> dict[str, Any]:
        return {
            "model_name": self.model.name,
            "outputs": [v2_tensor(self.output_name, output[np.newaxis])],
        }


def main() -> None:
    config = load_config()
    apis = [OnnxAPI(model, config) for model in config.models]
    server = ls.LitServer(apis, accelerator="cpu", workers_per_device=1)
    server.run(
        host=config.host,
        port=config.port,
        log_level="warning",
        generate_client_file=False,
        access_log=False,
    )


if __name__ == "__main__":
    main()
