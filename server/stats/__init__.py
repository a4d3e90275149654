"""Statistics over counts, free of Flask and the database: Beta posteriors and split comparisons (docs/stats.md)."""

from .bayes import Posterior, best_and_loss, probability_beats
from .beta import beta_pdf, beta_quantile, betainc, log_beta
from .compare import (
    DECISION_PROBABILITY,
    ENOUGH_DATA,
    LEADER,
    METHOD,
    MIN_CONVERSIONS,
    MIN_SAMPLE,
    NO_CLEAR_DIFFERENCE,
    NOT_ENOUGH_DATA,
    ONE_ARM,
    ArmCounts,
    ArmResult,
    Comparison,
    Verdict,
    compare_arms,
)

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
    "Posterior",
    "Verdict",
    "best_and_loss",
    "beta_pdf",
    "beta_quantile",
    "betainc",
    "compare_arms",
    "log_beta",
    "probability_beats",
]
