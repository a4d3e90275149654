"""Auto-winner splits in simulation (issue #15 point 4): arm A converts at 5%, arm B at 8%, over 20 seeds.

Each seed runs 10,000 contacts (one every 4 minutes, outcomes within 1 day, a mean delay of 2 hours) through the
engine's own choice (server.stats.autowinner, driven by server.stats.splitsim) with the default SPLIT_AUTO_*
settings, and the same contacts through a fixed 50/50 split: the baseline of the same run. Not timed.
Targets: >= 80% of the last 5,000 contacts get B, B wins in >= 95% of seeds, no arm under its floor before a
winner, more conversions than the fixed split. Quick mode: 20 seeds x 3,000 contacts (the last 1,500).
Run: .venv/bin/python bench/bench_autosplit.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.table import Row, ratio_at_least, render
from server.stats.autowinner import AutoSettings
from server.stats.splitsim import SimResult, simulate

RATES = (0.05, 0.08)
SEEDS = 20


def measure(contacts: int) -> list[Row]:
    settings = AutoSettings()
    runs: list[SimResult] = [simulate(RATES, contacts, seed, settings) for seed in range(SEEDS)]
    last = contacts // 2
    size = f"{SEEDS} seeds x {contacts:,} contacts, A 5% / B 8%"
    share_b = sum(run.share_of("B", last) for run in runs) / SEEDS
    seeds_b = sum(run.winner == "B" for run in runs) / SEEDS
    floor = min(run.min_share_before_winner() for run in runs)
    declared = sorted(run.declared_at if run.declared_at is not None else contacts for run in runs)
    conversions = sum(run.conversions for run in runs)
    baseline = sum(run.baseline_conversions for run in runs)
    lines = [
        Row(
            f"auto split: share of the last {last:,} getting B ({size})",
            share_b,
            "",
            0.5,
            "fixed 50/50 split",
            ">= 0.8",
            share_b >= 0.8,
        ),
        Row(f"auto split: seeds won by B ({size})", seeds_b, "", 0.0, "", ">= 0.95", seeds_b >= 0.95),
        Row(
            f"auto split: smallest arm share before a winner ({size})",
            floor,
            "",
            settings.floor,
            "the floor share",
            f">= {settings.floor:g}",
            floor >= settings.floor,
        ),
        Row(
            f"auto split: median contacts before a winner ({size})",
            float(declared[SEEDS // 2]),
            "",
            float(contacts),
            "all the contacts",
            "< all",
            declared[SEEDS // 2] < contacts,
        ),
        ratio_at_least(
            f"auto split: conversions, gained {conversions - baseline:,} ({size})",
            float(conversions),
            "",
            float(baseline),
            "fixed 50/50 split, same contacts",
            1.05,
        ),
    ]
    return lines


def rows(full: bool) -> list[Row]:
    return measure(10_000 if full else 3_000)


if __name__ == "__main__":
    print(render(measure(10_000)))
