"""Comparing Beta posteriors: the probability that one rate beats another, that an arm is the best of several,
and the expected loss of choosing each arm. Deterministic (no random draws): an exact sum and a quadrature.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .beta import beta_pdf, betainc, gauss_legendre, log_beta

__all__ = ["Posterior", "best_and_loss", "probability_beats"]

Posterior = tuple[float, float]  # (alpha, beta) of a Beta distribution
_NEGLIGIBLE = 1e-18  # a term this small beside the sum so far ends the sum
_SPREAD = 15.0  # standard deviations each side of a posterior's mean that hold all but ~1e-7 of its mass
_PANELS = 8
_NODES = 12


def probability_beats(b: Posterior, a: Posterior) -> float:
    """P(X_b > X_a) for independent X_b ~ Beta(*b*), X_a ~ Beta(*a*), exactly; b's alpha must be a whole number.

    Evan Miller's closed form (https://www.evanmiller.org/bayesian-ab-testing.html),
    ``sum_{i=0}^{alpha_b-1} B(alpha_a+i, beta_a+beta_b) / ((beta_b+i) B(1+i, beta_b) B(alpha_a, beta_a))``, is the
    distribution function at alpha_b − 1 of a beta-negative-binomial law whose terms rise to one mode and fall.
    So the sum starts at its largest term (the mode, or alpha_b − 1 when the mode lies beyond it), computed once
    with log-gamma, and walks away from it with the terms' ratio until they no longer count: a few thousand terms
    for millions of trials, with no overflow.

    :raises ValueError: when b's alpha is not a whole number.
    """
    (alpha_b, beta_b), (alpha_a, beta_a) = b, a
    if alpha_b != int(alpha_b) or alpha_b < 1:
        raise ValueError(f"the exact P(B > A) needs B's alpha to be a whole number >= 1, not {alpha_b}")
    last = int(alpha_b) - 1
    total = alpha_a + beta_a + beta_b
    # term(i+1)/term(i) = (alpha_a+i)(beta_b+i) / ((i+1)(total+i)), above 1 exactly while i < turn
    turn = (alpha_a * beta_b - total) / (beta_a + 1.0)
    start = min(last, max(0, math.ceil(turn)))
    log_start = (
        log_beta(alpha_a + start, beta_a + beta_b)
        - math.log(beta_b + start)
        - log_beta(1.0 + start, beta_b)
        - log_beta(alpha_a, beta_a)
    )
    relative = 1.0  # terms relative to the starting one
    term = 1.0
    for i in range(start, 0, -1):  # downwards: term(i-1) = term(i) / ratio(i-1)
        term *= (i * (total + i - 1.0)) / ((alpha_a + i - 1.0) * (beta_b + i - 1.0))
        relative += term
        if term < _NEGLIGIBLE * relative:
            break
    term = 1.0
    for i in range(start, last):  # upwards, while the sum's end alpha_b - 1 is not reached
        term *= ((alpha_a + i) * (beta_b + i)) / ((i + 1.0) * (total + i))
        relative += term
        if term < _NEGLIGIBLE * relative:
            break
    return min(1.0, max(0.0, math.exp(log_start + math.log(relative))))


def _spread(posterior: Posterior) -> tuple[float, float]:
    """The interval around the posterior's mean that holds practically all its mass, within [0, 1]."""
    alpha, beta = posterior
    mean = alpha / (alpha + beta)
    sd = math.sqrt(alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1.0)))
    return max(0.0, mean - _SPREAD * sd), min(1.0, mean + _SPREAD * sd)


def best_and_loss(posteriors: Sequence[Posterior]) -> tuple[list[float], list[float]]:
    """For each posterior: the probability that its rate is the highest, and the expected loss of choosing it.

    P(k is best) = ∫ f_k(x) ∏_{j≠k} F_j(x) dx and E[max_j X_j] = Σ_k ∫ x f_k(x) ∏_{j≠k} F_j(x) dx, each integral by
    composite Gauss-Legendre quadrature over k's own spread (mean ± 15 sd), where F_j walks from its exact value at
    the first node by 3-point Gauss-Legendre steps of j's density. The expected loss of choosing k is
    E[max_j X_j] − E[X_k]: how much rate one gives up, on average, if k is not in fact the best.
    """
    count = len(posteriors)
    if count == 1:
        return [1.0], [0.0]
    nodes, weights = gauss_legendre(_NODES)
    step_nodes, step_weights = gauss_legendre(3)
    logs = [log_beta(alpha, beta) for alpha, beta in posteriors]
    spreads = [_spread(posterior) for posterior in posteriors]
    best: list[float] = []
    expected_max = 0.0
    for k, (alpha, beta) in enumerate(posteriors):
        low, high = spreads[k]
        width = (high - low) / _PANELS
        points = [
            (low + width * (panel + t), width * w)
            for panel in range(_PANELS)
            for t, w in zip(nodes, weights, strict=True)
        ]
        products = [1.0] * len(points)
        for j, (alpha_j, beta_j) in enumerate(posteriors):
            if j != k:
                _multiply_by_cdf(products, points, alpha_j, beta_j, logs[j], spreads[j], step_nodes, step_weights)
        mass = 0.0
        moment = 0.0
        for (x, w), product in zip(points, products, strict=True):
            if product > 0.0:
                weight = w * beta_pdf(x, alpha, beta, logs[k]) * product
                mass += weight
                moment += weight * x
        best.append(mass)
        expected_max += moment
    total = sum(best)
    best = [min(1.0, max(0.0, p / total)) for p in best]  # the quadrature's last digits: they sum to exactly 1
    loss = [max(0.0, expected_max - alpha / (alpha + beta)) for alpha, beta in posteriors]
    return best, loss


def _multiply_by_cdf(
    products: list[float],
    points: list[tuple[float, float]],
    alpha: float,
    beta: float,
    log_b: float,
    spread: tuple[float, float],
    step_nodes: Sequence[float],
    step_weights: Sequence[float],
) -> None:
    """Multiply each of *products* by the Beta(alpha, beta) distribution function at its point (points ascend)."""
    low, high = spread
    cdf = None
    previous = 0.0
    for index, (x, _) in enumerate(points):
        if x >= high:
            cdf = 1.0
        elif x <= low:
            cdf = 0.0
        elif cdf is None or (cdf == 0.0 and previous <= low):
            cdf = betainc(alpha, beta, x)
        else:
            gap = x - previous
            cdf += gap * sum(
                w * beta_pdf(previous + gap * t, alpha, beta, log_b)
                for t, w in zip(step_nodes, step_weights, strict=True)
            )
            cdf = min(1.0, cdf)
        previous = x
        products[index] *= cdf
