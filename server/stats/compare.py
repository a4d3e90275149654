"""Split arms compared honestly: each arm's rate with a credible interval, its probability to beat the first arm
and to be the best, the expected loss of choosing it, and a verdict that never rests on raw rates alone.

Pure functions over counts (no Flask, no database): the API, the CLI, the admin pages and the auto-winner split all
call :func:`compare_arms`. The method and every field are described in docs/stats.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .bayes import best_and_loss, probability_beats
from .beta import beta_quantile

__all__ = [
    "DECISION_PROBABILITY",
    "ENOUGH_DATA",
    "LEADER",
    "METHOD",
    "MIN_CONVERSIONS",
    "MIN_SAMPLE",
    "NOT_ENOUGH_DATA",
    "NO_CLEAR_DIFFERENCE",
    "ONE_ARM",
    "ArmCounts",
    "ArmResult",
    "Comparison",
    "Verdict",
    "compare_arms",
]

METHOD = "bayesian beta-binomial"
MIN_SAMPLE = 100  # contacts exposed per arm before the arm is compared at all
MIN_CONVERSIONS = 10  # conversions, and non-conversions, between an arm and the first arm before they are compared
DECISION_PROBABILITY = 0.95  # how sure the verdict must be before it names a leader

ENOUGH_DATA = "ok"
NOT_ENOUGH_DATA = "not enough data"
LEADER = "leader"
NO_CLEAR_DIFFERENCE = "no clear difference yet"
ONE_ARM = "one arm"


class ArmCounts(NamedTuple):
    """One arm's counts: how many contacts it exposed to its variant, and how many of them converted.

    *conversions* and *revenue* are what was attributed to the arm's messages (docs/stats.md, "Revenue"), carried
    along for the reader and compared on nothing; None when not measured.
    """

    name: str
    exposed: int
    converted: int
    conversions: int | None = None
    revenue: float | None = None


@dataclass(frozen=True)
class ArmResult:
    """One arm's figures; see docs/stats.md for what each means."""

    name: str
    exposed: int
    converted: int
    rate: float | None
    interval_low: float
    interval_high: float
    alpha: float
    beta: float
    probability_beats_first: float | None
    probability_best: float
    expected_loss: float
    status: str
    conversions: int | None = None
    revenue: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The arm as JSON-ready data, with the field names docs/stats.md documents."""
        return {
            "name": self.name,
            "exposed": self.exposed,
            "converted": self.converted,
            "rate": self.rate,
            "interval": {"low": self.interval_low, "high": self.interval_high},
            "posterior": {"alpha": self.alpha, "beta": self.beta},
            "probability_beats_first": self.probability_beats_first,
            "probability_best": self.probability_best,
            "expected_loss": self.expected_loss,
            "status": self.status,
            "conversions": self.conversions,
            "revenue": self.revenue,
        }


@dataclass(frozen=True)
class Verdict:
    """What the comparison says as a whole: a leader, no clear difference yet, not enough data, or one arm."""

    status: str
    leader: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The verdict as JSON-ready data."""
        return {"status": self.status, "leader": self.leader, "message": self.message}


@dataclass(frozen=True)
class Comparison:
    """The arms of a split compared on one outcome, with the method and thresholds that produced the figures."""

    outcome: str
    prior: tuple[int, int]
    credible: float
    min_sample: int
    min_conversions: int
    threshold: float
    arms: tuple[ArmResult, ...]
    verdict: Verdict
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON-ready data (docs/stats.md documents every field)."""
        return {
            "outcome": self.outcome,
            "method": self.method,
            "prior": {"alpha": self.prior[0], "beta": self.prior[1]},
            "credible": self.credible,
            "min_sample": self.min_sample,
            "min_conversions": self.min_conversions,
            "threshold": self.threshold,
            "arms": [arm.to_dict() for arm in self.arms],
            "verdict": self.verdict.to_dict(),
        }


def compare_arms(
    arms: Sequence[ArmCounts | tuple[str, int, int]],
    *,
    outcome_name: str,
    min_sample: int = MIN_SAMPLE,
    min_conversions: int = MIN_CONVERSIONS,
    prior: tuple[int, int] = (1, 1),
    credible: float = 0.95,
    threshold: float = DECISION_PROBABILITY,
) -> Comparison:
    """Compare the arms of a split on *outcome_name* (e.g. ``"email.clicked within 3d"``); the first arm is the
    reference the others are measured against.

    :param arms: each arm's (name, exposed, converted), in the split's order, or its :class:`ArmCounts` with the
        conversions and revenue attributed to it, which the result carries unchanged.
    :param min_sample: exposures an arm needs before it is compared (and a leader can be named).
    :param min_conversions: conversions, and non-conversions, an arm and the first arm need between them.
    :param prior: the Beta prior's (alpha, beta), whole numbers >= 1; (1, 1) is uniform: every rate equally likely.
    :param credible: the probability mass of each arm's credible interval (equal tails).
    :param threshold: how probable "beats the first arm" and "is the best" must be for the verdict to name a leader.
    :raises ValueError: on bad counts or parameters, saying which arm or parameter and what is allowed.
    """
    counts = _checked(arms, outcome_name, min_sample, min_conversions, prior, credible, threshold)
    posteriors = [(float(prior[0] + arm.converted), float(prior[1] + arm.exposed - arm.converted)) for arm in counts]
    first = counts[0]
    beats = [probability_beats(posterior, posteriors[0]) for posterior in posteriors[1:]]
    best, loss = best_and_loss(posteriors)
    if len(counts) == 2:  # with two arms "best" is "beats the other", which the exact sum gives
        best = [1.0 - beats[0], beats[0]]
    tail = (1.0 - credible) / 2.0
    results = []
    for index, (arm, (alpha, beta)) in enumerate(zip(counts, posteriors, strict=True)):
        results.append(
            ArmResult(
                name=arm.name,
                exposed=arm.exposed,
                converted=arm.converted,
                rate=arm.converted / arm.exposed if arm.exposed else None,
                interval_low=beta_quantile(tail, alpha, beta),
                interval_high=beta_quantile(1.0 - tail, alpha, beta),
                alpha=alpha,
                beta=beta,
                probability_beats_first=beats[index - 1] if index else None,
                probability_best=best[index],
                expected_loss=loss[index],
                status=ENOUGH_DATA if _enough(arm, first, index, min_sample, min_conversions) else NOT_ENOUGH_DATA,
                conversions=arm.conversions,
                revenue=arm.revenue,
            )
        )
    return Comparison(
        outcome=outcome_name,
        prior=(prior[0], prior[1]),
        credible=credible,
        min_sample=min_sample,
        min_conversions=min_conversions,
        threshold=threshold,
        arms=tuple(results),
        verdict=_verdict(results, threshold, min_sample),
    )


def _enough(arm: ArmCounts, first: ArmCounts, index: int, min_sample: int, min_conversions: int) -> bool:
    """Whether *arm* has the data to be compared: its exposures, and with the first arm's, both outcomes enough."""
    if arm.exposed < min_sample or first.exposed < min_sample:
        return False
    if index == 0:
        return True
    converted = arm.converted + first.converted
    not_converted = arm.exposed + first.exposed - converted
    return converted >= min_conversions and not_converted >= min_conversions


def _verdict(arms: list[ArmResult], threshold: float, min_sample: int) -> Verdict:
    """The verdict: a leader only when every arm has enough data and the leader is probably best, never on raw rates."""
    if len(arms) == 1:
        return Verdict(ONE_ARM, None, f"only one arm ({arms[0].name}): there is nothing to compare it with")
    short = [arm.name for arm in arms if arm.status == NOT_ENOUGH_DATA]
    if short:
        return Verdict(
            NOT_ENOUGH_DATA,
            None,
            f"not enough data yet for {', '.join(short)}: each arm needs at least {min_sample} contacts exposed, "
            "and a comparison needs enough conversions and non-conversions",
        )
    first = arms[0]
    leader = max(arms, key=lambda arm: arm.probability_best)
    if leader is first:
        sure = all((arm.probability_beats_first or 0.0) <= 1.0 - threshold for arm in arms[1:])
    else:
        sure = (leader.probability_beats_first or 0.0) >= threshold
    if sure and leader.probability_best >= threshold:
        return Verdict(
            LEADER,
            leader.name,
            f"{leader.name} leads: {leader.probability_best:.1%} probability of being the best arm",
        )
    return Verdict(
        NO_CLEAR_DIFFERENCE, None, f"no clear difference yet: no arm is at least {threshold:.0%} sure to lead"
    )


def _checked(
    arms: Sequence[ArmCounts | tuple[str, int, int]],
    outcome_name: str,
    min_sample: int,
    min_conversions: int,
    prior: tuple[int, int],
    credible: float,
    threshold: float,
) -> list[ArmCounts]:
    """The arms as :class:`ArmCounts`, after checking them and the parameters.

    :raises ValueError: naming the arm or parameter at fault and what is allowed.
    """
    if not isinstance(outcome_name, str) or not outcome_name.strip():
        raise ValueError("outcome_name must name the outcome compared, e.g. 'email.clicked within 3d'")
    if len(arms) < 1:
        raise ValueError("compare_arms needs at least one arm: give each arm as (name, exposed, converted)")
    for label, value in (("min_sample", min_sample), ("min_conversions", min_conversions)):
        if not _whole(value) or value < 0:
            raise ValueError(f"{label} must be a whole number >= 0, not {value!r}")
    if not (isinstance(prior, tuple | list) and len(prior) == 2 and all(_whole(v) and v >= 1 for v in prior)):
        raise ValueError(f"prior must be two whole numbers >= 1 (alpha, beta), e.g. (1, 1), not {prior!r}")
    for label, probability in (("credible", credible), ("threshold", threshold)):
        if isinstance(probability, bool) or not isinstance(probability, int | float) or not 0.0 < probability < 1.0:
            raise ValueError(f"{label} must be a probability strictly between 0 and 1, e.g. 0.95, not {probability!r}")
    counts: list[ArmCounts] = []
    for position, arm in enumerate(arms, start=1):
        if not isinstance(arm, tuple) or len(arm) not in (3, 5):
            raise ValueError(
                f"arm {position} must be (name, exposed, converted) or (…, conversions, revenue), not {arm!r}"
            )
        name, exposed, converted, conversions, revenue = (*arm, None, None)[:5]
        where = f"arm {position} ({name!r})"
        if not isinstance(name, str) or not name:
            raise ValueError(f"arm {position} needs a name (a non-empty string), not {name!r}")
        if not _whole(exposed) or exposed < 0:
            raise ValueError(f"{where}: exposed must be a whole number >= 0, not {exposed!r}")
        if not _whole(converted) or converted < 0:
            raise ValueError(f"{where}: converted must be a whole number >= 0, not {converted!r}")
        if converted > exposed:
            raise ValueError(
                f"{where}: converted ({converted}) is more than exposed ({exposed}); "
                "only contacts exposed to an arm can convert on it"
            )
        if conversions is not None and (not _whole(conversions) or conversions < 0):
            raise ValueError(f"{where}: conversions must be a whole number >= 0 or None, not {conversions!r}")
        if revenue is not None and (isinstance(revenue, bool) or not isinstance(revenue, int | float)):
            raise ValueError(f"{where}: revenue must be a number or None, not {revenue!r}")
        if any(earlier.name == name for earlier in counts):
            raise ValueError(f"{where}: two arms are named {name!r}; each arm needs its own name")
        counts.append(ArmCounts(name, exposed, converted, conversions, revenue))
    return counts


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
