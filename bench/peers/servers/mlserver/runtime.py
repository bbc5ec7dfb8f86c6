"""An MLServer inference runtime for ONNX models: MLServer ships none, so this is the custom
runtime its docs describe (an `MLModel` with `load` and `predict`, tensors through
`NumpyCodec`).

MLServer speaks V2 itself, so this sees parsed `InferenceRequest`s; its adaptive batching
(`max_batch_size`/`max_batch_time` in model-settings.json) merges concurrent requests along
the first dimension before `predict` and splits the response after it. Inference runs in
MLServer's worker process (`parallel_workers: 1`, its default), apart from the HTTP process.
"""

from __future__ import annotations

from common import open_session
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntimeModel(MLModel):
    async def load(self) -> bool:
        parameters = self.settings.parameters
        if parameters is None or parameters.uri is None:
            raise ValueError(f"{self.name}: set parameters.uri to the ONNX file")
        threads = int((parameters.extra or {}).get("threads", 1))
        self._session = open_session(parameters.uri, threads)
        self._output_names = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
        results = self._session.run(None, feeds)
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output(name, array)
                for name, array in zip(self._output_names, results, strict=True)
            ],
        )
