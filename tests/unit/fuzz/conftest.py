"""One hypothesis profile for the fuzz tests: derandomized and without an example database,
so every run (here and in CI) tries the same inputs and leaves no files behind.

`INFERD_FUZZ_SEARCH=20 pytest tests/unit/fuzz` searches instead: twenty times the examples,
new random ones each run (see `outcome.examples`).
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, settings

from tests.unit.fuzz.outcome import SEARCH

settings.register_profile(
    "inferd-fuzz",
    derandomize=not SEARCH,
    database=None,
    print_blob=True,
    # Hypothesis' 200 ms would make a slow CI machine's garbage collection a flaky failure;
    # a second per example still catches inputs that make a decoder crawl (files, which
    # native libraries decode at speeds their headers decide, opt out: deadline=None).
    deadline=timedelta(seconds=1),
    # Strategies here build whole request bodies and files: slower to generate than the
    # health check expects, and that is fine.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("inferd-fuzz")
