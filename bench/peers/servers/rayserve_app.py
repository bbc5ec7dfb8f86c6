"""Ray Serve: one deployment per model, each an application at its V2 route, with
`@serve.batch` switched on.

The HTTP request reaches Ray's proxy actor, which forwards it to the model's replica (another
process) over Ray's RPC; the replica's `__call__` parses the V2 JSON body (starlette
`Request`, as Ray's docs do) and awaits the batched method, which Ray calls with up to
`max_batch_size` queued items after at most `batch_wait_timeout_s`. `max_ongoing_requests`
is raised from its default (5) to twice the batch size, as Ray's batching guide advises, or
no replica could ever see a full batch. Run as a plain driver script: start a local Ray
(no dashboard, usage stats off), start Serve on our host and port, deploy, wait for SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from typing import Any

import numpy as np
import ray
from common import ModelConfig, PeerConfig, load_config, open_session, v2_tensor
from ray import serve
from ray.serve.config import HTTPOptions
from ray.serve.schema import LoggingConfig
from starlette.requests import Request

QUIET = LoggingConfig(enable_access_log=False, log_level="WARNING")


@serve.deployment(num_replicas=1, logging_config=QUIET)
class OnnxModel:
    def __init__(self, model: ModelConfig, config: PeerConfig) -> None:
        self.model = model
        self.session = open_session(model.path, config.threads)
        self.output_name = self.session.get_outputs()[0].name
        # The batching knobs come from the run's config, so they are set per replica.
        self.run_batch.set_max_batch_size(config.max_batch_size)
        self.run_batch.set_batch_wait_timeout_s(config.batch_wait_s)

    @serve.batch
    async def run_batch(self, items: list[np.ndarray]) -> list[np.ndarray]:
        """Ray gathers single items here; one ORT run answers all of them."""
        y = self.session.run(None, {self.model.input: np.stack(items)})[0]
        return list(y)

    async def __call__(self, request: Request) -> dict[str, Any]:
        tensor = (await request.json())["inputs"][0]
        x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])[0]
        y = await self.run_batch(x)
        return {"model_name": self.model.name, "outputs": [v2_tensor(self.output_name, y[None])]}


def deploy(config: PeerConfig) -> None:
    for model in config.models:
        deployment = OnnxModel.options(max_ongoing_requests=2 * config.max_batch_size)
        serve.run(
            deployment.bind(model, config),
            name=model.name,
            route_prefix=f"/v2/models/{model.name}/infer",
            logging_config=QUIET,
        )


def main() -> None:
    config = load_config()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Ray puts Unix sockets under its temp dir: keep the path short.
    temp_dir = os.environ.get("PEER_RAY_TMP") or tempfile.mkdtemp(prefix="ray-")
    ray.init(
        include_dashboard=False,
        _temp_dir=temp_dir,
        object_store_memory=100 * 1024 * 1024,
        log_to_driver=False,
    )
    try:
        serve.start(
            http_options=HTTPOptions(host=config.host, port=config.port),
            logging_config=QUIET,
        )
        deploy(config)
        print(f"ray serve: {len(config.models)} application(s) running", flush=True)
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
