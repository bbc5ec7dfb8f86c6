"""Dynamic batching for one model version: concurrent requests in, batches out.

The server's event loop submits single items; one scheduling task groups them (up to
``max_batch_size``, or whatever arrived within ``max_delay_ms`` of the oldest) and runs each
group with a plain function in worker threads, so model code never sees asyncio and this
package never sees a model. Every item keeps its own future: a bad item, a passed deadline or
a disconnected client fails that item alone, never its batch-mates. A batch measured to be
cheap runs on the loop thread instead ("inline"), where two thread hand-offs would cost more
than the model.

`Batcher` is one class built in layers, one concern a module (bases, so the per-item path
pays no extra call for the split):

    batcher.py   Batcher: start/submit/stop, admission, the scheduling task, inline-or-worker
    workers.py   the worker threads: run a batch, post it back, take the next one themselves
    running.py   running a batch and answering its items; the run-time estimates (inline)
    pending.py   the queued items: taking a batch, deadlines, cancellation, failing the queue
"""

from inferd.batching.batcher import Batcher

__all__ = ["Batcher"]
