"""A synthetic auto-winner split: contacts arrive, each gets an arm from :func:`.autowinner.choose` (the engine's own
choice), and converts at its arm's true rate after a random delay; outcomes after the window do not count.

The same contacts (one latent draw each: whether and when they would convert) also go through a fixed split at the
starting shares, the baseline of the same run. Used by the tests and by ``bench/bench_autosplit.py``.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from .autowinner import ArmCounts, AutoSettings, Evidence, by_share, choose, evidence, seed_for

__all__ = ["SimResult", "simulate"]


@dataclass
class SimResult:
    """One run: the arm of each contact, when a winner was declared, and conversions against the fixed split."""

    arms: list[str]
    assigned: list[str] = field(default_factory=list)
    winner: str | None = None
    declared_at: int | None = None  # the number of contacts assigned before the winner was declared
    conversions: int = 0
    baseline_conversions: int = 0
    evidence: dict[str, object] | None = None

    def share_of(self, arm: str, last: int) -> float:
        """The share of the *last* contacts that got *arm*."""
        tail = self.assigned[-last:]
        return tail.count(arm) / len(tail)

    def min_share_before_winner(self) -> float:
        """The smallest share any arm had among the contacts assigned before a winner (all of them if none)."""
        before = self.assigned[: self.declared_at] if self.declared_at is not None else self.assigned
        if not before:
            return 0.0
        return min(before.count(arm) / len(before) for arm in self.arms)


def simulate(
    rates: Sequence[float],
    contacts: int,
    seed: int,
    settings: AutoSettings,
    *,
    shares: Sequence[int] | None = None,
    gap: int = 240,
    window: int = 86_400,
    mean_delay: int = 7_200,
) -> SimResult:
    """Run *contacts* contacts, one every *gap* seconds, through an auto-winner split of arms with true *rates*.

    :param shares: the starting shares in percent (equal by default); the fixed baseline uses them throughout.
    :param window: seconds after assignment within which a conversion counts (``within``).
    :param mean_delay: the mean of the exponential delay between assignment and conversion.
    """
    names = [chr(ord("A") + index) for index in range(len(rates))]
    shares = list(shares or [100 // len(rates)] * len(rates))
    shares[-1] += 100 - sum(shares)
    world = random.Random(seed)
    result = SimResult(names)
    assigned = [0] * len(names)
    decided = [0] * len(names)
    successes = [0] * len(names)
    pending: list[tuple[int, int, bool]] = []  # (when decided, arm, converted)
    version = 0
    state: Evidence | None = None
    for number in range(contacts):
        now = number * gap
        changed = False
        while pending and pending[0][0] <= now:
            _, arm, converted = heapq.heappop(pending)
            decided[arm] += 1
            successes[arm] += converted
            changed = True
        if result.winner is None:
            counts = [ArmCounts(name, shares[i], assigned[i], decided[i], successes[i]) for i, name in enumerate(names)]
            if changed or state is None:
                version += changed
                state = evidence(counts, settings)
                if state.winner is not None:
                    result.winner, result.declared_at, result.evidence = state.winner, number, state.to_dict()
        if result.winner is not None:
            index = names.index(result.winner)  # declared: the test stops and every later contact gets it
        else:
            index = choose(counts, settings, seed_for(seed, number, version), state).index
        luck, delay = world.random(), int(world.expovariate(1.0 / mean_delay))
        converts = luck < rates[index] and delay <= window
        assigned[index] += 1
        result.assigned.append(names[index])
        result.conversions += converts
        heapq.heappush(pending, (now + (delay if converts else window), index, converts))
        fixed = by_share(shares, world.random())
        result.baseline_conversions += luck < rates[fixed] and delay <= window
    return result
