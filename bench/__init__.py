"""inferd's benchmarks. Run them from the repository root as modules, e.g.
`.venv/bin/python -m bench.serve`; what the scripts share is in `bench.harness`."""
