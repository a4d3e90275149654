"""Split comparison: compare_arms over 5 arms of 1,000,000 exposures each, against the plain rates.

Issue #13 point 4 target: well under 50 ms (the median of several runs). The baseline, in the same run, is the plain
rate computation (converted / exposed per arm), which is what a dashboard without statistics would do.
Run: .venv/bin/python bench/bench_compare.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.table import Row, render, under
from server.stats import compare_arms

ARMS = [("A", 10**6, 50_000), ("B", 10**6, 50_300), ("C", 10**6, 50_150), ("D", 10**6, 49_800), ("E", 10**6, 50_310)]


def median_ms(work, runs: int) -> float:
    """The median time of *work* in milliseconds over *runs* runs."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def measure(runs: int) -> list[Row]:
    compare_arms(ARMS, outcome_name="goal")  # warm the quadrature nodes' cache
    figure = median_ms(lambda: compare_arms(ARMS, outcome_name="goal"), runs)
    baseline = median_ms(lambda: [converted / exposed for _, exposed, converted in ARMS], runs)
    return [
        under(
            "split comparison: 5 arms x 1,000,000 exposures",
            figure,
            "ms",
            baseline,
            "plain rates, converted / exposed",
            50,
        )
    ]


def rows(full: bool) -> list[Row]:
    return measure(51 if full else 11)


if __name__ == "__main__":
    print(render(measure(51)))
