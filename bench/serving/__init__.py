"""bench/serve.py's own parts: what it serves and sends, the figures it derives and judges,
and its report. The parts other benchmarks share are in `bench.harness`."""
