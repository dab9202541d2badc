"""The benchmark harness still runs (a tiny load), so `make bench` does not rot."""

from __future__ import annotations

import math

from bench.run import run, start_fakes


async def test_bench_smoke() -> None:
    fakes, urls = start_fakes(chars_per_second=2500)  # streams in 0.4 s, not 4
    try:
        [level] = await run([3], "auto", urls)
    finally:
        assert fakes.stdin is not None
        fakes.stdin.close()
        fakes.wait(10)
    assert level.complete == 3
    assert level.count_429 == 0 and level.violations == 0
    assert not math.isnan(level.private_stale_p95)
    assert level.first_visible_p50 < 5
