"""The six stages of one model version: `Pipeline` composes them (see pipeline.py).

wiring.py    builds the stages from the ModelSpec, checking every name
batch.py     stages 2-5 over a batch, in a worker thread
act.py       stage 6: decide, and hand the outcomes to the recorder
pipeline.py  the Pipeline: decode (stage 1), then a request's items through 2-6
cascade.py   a cascade model's routing: the first member, and the unsure items on to the second
"""

from inferd.pipeline.act import Outcome, Recorder
from inferd.pipeline.batch import ItemResult
from inferd.pipeline.cascade import Cascade, cascade_pipeline
from inferd.pipeline.pipeline import Answer, Pipeline, Request, Submit

__all__ = [
    "Answer",
    "Cascade",
    "ItemResult",
    "Outcome",
    "Pipeline",
    "Recorder",
    "Request",
    "Submit",
    "cascade_pipeline",
]
