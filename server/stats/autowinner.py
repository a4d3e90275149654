"""Auto-winner splits: Thompson sampling over Beta posteriors with a floor, and the rule that declares a winner.

Pure (no database, no clock): the engine (:mod:`server.engine.autosplit`) hands it each arm's counts and a seed, the
simulation in ``bench/bench_autosplit.py`` hands it synthetic ones. Both run this same code.

Each arm's outcome rate has the posterior Beta(1 + successes, 1 + decided − successes), where an assignment is
*decided* once its outcome arrived within the window or the window passed without it. Until every arm has
``min_decided`` decided assignments, contacts are assigned by the split's starting shares. Then each contact gets,
with probability ``floor`` per arm, that arm (forced exploration, so no arm falls below its floor), and otherwise the
arm whose draw from its posterior is highest (Thompson sampling). An arm is declared the winner when its probability
of being best reaches ``probability`` and the expected loss of choosing it is below ``loss`` × its mean rate.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .bayes import best_and_loss

__all__ = ["ArmCounts", "AutoSettings", "Choice", "Evidence", "by_share", "choose", "evidence", "seed_for"]

#: the phases of a test, as the trace and the stats name them
STARTING = "starting shares"
EXPLORING = "exploring"
WON = "winner"


@dataclass(frozen=True)
class AutoSettings:
    """The test's thresholds (SPLIT_AUTO_* settings, docs/optimisation.md)."""

    floor: float = 0.1
    min_decided: int = 200
    probability: float = 0.95
    loss: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor < 1.0:
            raise ValueError(f"the floor share must be in [0, 1), not {self.floor}")
        if not 0.5 <= self.probability < 1.0:
            raise ValueError(f"the winning probability must be in [0.5, 1), not {self.probability}")
        if self.min_decided < 0 or self.loss <= 0.0:
            raise ValueError("the minimum decided count must be >= 0 and the loss threshold above 0")


@dataclass(frozen=True)
class ArmCounts:
    """One arm: its name, starting share (percent), contacts assigned, outcomes decided and successes among them."""

    name: str
    share: int
    assigned: int = 0
    decided: int = 0
    successes: int = 0

    @property
    def posterior(self) -> tuple[float, float]:
        """(alpha, beta) of the Beta posterior of the arm's rate, from a uniform prior."""
        return 1.0 + self.successes, 1.0 + self.decided - self.successes


@dataclass(frozen=True)
class Evidence:
    """Where a test stands: per arm a, b, counts, P(best) and expected loss; the winner if one is declared."""

    phase: str
    arms: list[dict[str, float | int | str | None]]
    winner: str | None

    def to_dict(self) -> dict[str, object]:
        """JSON for the stats, the trace and the API."""
        return asdict(self)


@dataclass(frozen=True)
class Choice:
    """The arm a contact gets and why (``starting share``, ``floor``, ``thompson draw`` or ``winner``)."""

    index: int
    reason: str
    draws: list[float] | None = None


def seed_for(*parts: object) -> int:
    """A 64-bit seed from *parts* (contact id, rule, step, state version …): the same parts, the same choice."""
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def by_share(shares: Sequence[float], point: float) -> int:
    """The index of the share that *point* (in [0, 1)) falls in, the shares laid end to end and scaled to 1."""
    target = point * sum(shares)
    total = 0.0
    for index, share in enumerate(shares):
        total += share
        if target < total:
            return index
    return len(shares) - 1


def evidence(arms: Sequence[ArmCounts], settings: AutoSettings) -> Evidence:
    """The test's state from *arms*' counts: which phase, each arm's posterior, P(best), loss; the winner if due."""
    if len(arms) < 2:
        raise ValueError("an auto-winner split needs at least two arms")
    ready = all(arm.decided >= settings.min_decided for arm in arms)
    posteriors = [arm.posterior for arm in arms]
    best, loss = best_and_loss(posteriors) if ready else ([None] * len(arms), [None] * len(arms))
    rows: list[dict[str, float | int | str | None]] = []
    winner = None
    for arm, (alpha, beta), p_best, arm_loss in zip(arms, posteriors, best, loss, strict=True):
        mean = alpha / (alpha + beta)
        rows.append(
            {
                "name": arm.name,
                "share": arm.share,
                "assigned": arm.assigned,
                "decided": arm.decided,
                "successes": arm.successes,
                "alpha": alpha,
                "beta": beta,
                "rate": mean,
                "p_best": p_best,
                "expected_loss": arm_loss,
            }
        )
        if (
            p_best is not None
            and arm_loss is not None
            and winner is None
            and p_best >= settings.probability
            and arm_loss < settings.loss * mean
        ):
            winner = arm.name
    phase = WON if winner else (EXPLORING if ready else STARTING)
    return Evidence(phase, rows, winner)


def choose(arms: Sequence[ArmCounts], settings: AutoSettings, seed: int, state: Evidence | None = None) -> Choice:
    """The arm for one contact: by starting share until every arm has enough decided outcomes, then the floor or a
    Thompson draw; the winner once there is one. Deterministic for a given *seed* and counts.

    :param state: the test's :func:`evidence` when the caller has it (else it is worked out here).
    """
    state = state or evidence(arms, settings)
    names = [arm.name for arm in arms]
    if state.winner is not None:
        return Choice(names.index(state.winner), "winner")
    rng = random.Random(seed)
    if state.phase == STARTING:
        return Choice(by_share([arm.share for arm in arms], rng.random()), "starting share")
    point = rng.random()
    if point < settings.floor * len(arms):
        return Choice(int(point / settings.floor), "floor")
    draws = [rng.betavariate(*arm.posterior) for arm in arms]
    return Choice(max(range(len(arms)), key=draws.__getitem__), "thompson draw", draws)
