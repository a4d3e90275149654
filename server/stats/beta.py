"""The Beta distribution without scipy: the regularized incomplete beta function, its inverse and the density.

``betainc`` follows Numerical Recipes (3rd ed., §6.4): the continued fraction evaluated by the modified Lentz
method, and, when both parameters are large (where the fraction needs ~sqrt(max(a, b)) terms), Gauss-Legendre
quadrature of the density over the tail, which is then narrow and smooth. ``beta_quantile`` inverts it by Newton
(Halley) steps kept inside a bisection bracket, so it always converges.
"""

from __future__ import annotations

import math
from functools import cache

__all__ = ["beta_pdf", "beta_quantile", "betainc", "gauss_legendre", "log_beta"]

_EPS = 1e-15  # relative accuracy of the continued fraction
_FPMIN = 1e-300  # keeps Lentz's divisions away from zero
_MAX_TERMS = 20_000
_QUADRATURE_ABOVE = 3000.0
_STIRLING_FROM = 10.0  # both parameters above this: quadrature instead of the continued fraction (NR's SWITCH)


def log_beta(a: float, b: float) -> float:
    """ln B(a, b), accurate for large arguments too.

    ``lgamma(a) + lgamma(b) - lgamma(a + b)`` loses ~1e-9 to cancellation when a + b is in the millions; above 10
    the Stirling series is used instead, with the large terms cancelled algebraically before they are computed.
    """
    a, b = min(a, b), max(a, b)
    if b < _STIRLING_FROM:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    s = a + b
    # lgamma(b) - lgamma(a + b), from Stirling's formula with its linear terms cancelled
    difference = -(b - 0.5) * math.log1p(a / b) - a * math.log(s) + a + _stirling_rest(b) - _stirling_rest(s)
    if a < _STIRLING_FROM:
        return math.lgamma(a) + difference
    # lgamma(a) + difference, with a*log(a) - a*log(s) gathered into a*log(a/s)
    return (
        a * math.log(a / s)
        - 0.5 * math.log(a)
        + 0.5 * math.log(2.0 * math.pi)
        + _stirling_rest(a)
        - (b - 0.5) * math.log1p(a / b)
        + _stirling_rest(b)
        - _stirling_rest(s)
    )


def _stirling_rest(x: float) -> float:
    """lgamma(x) − ((x − ½) ln x − x + ½ ln 2π) for x ≥ 10 (the series' error is below 1e-12 there)."""
    inverse = 1.0 / x
    square = inverse * inverse
    return inverse * (1.0 / 12.0 - square * (1.0 / 360.0 - square * (1.0 / 1260.0 - square / 1680.0)))


def beta_pdf(x: float, a: float, b: float, log_b: float | None = None) -> float:
    """The Beta(a, b) density at *x* (0 outside (0, 1)); *log_b* is ln B(a, b) when the caller has it."""
    if x <= 0.0 or x >= 1.0:
        return 0.0
    return math.exp((a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x) - (log_beta(a, b) if log_b is None else log_b))


@cache
def gauss_legendre(n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The *n* Gauss-Legendre nodes and weights on [0, 1] (Newton's method on the Legendre polynomial, NR §4.6)."""
    nodes: list[float] = []
    weights: list[float] = []
    for i in range(1, n + 1):
        z = math.cos(math.pi * (i - 0.25) / (n + 0.5))
        for _ in range(100):
            p1, p2 = 1.0, 0.0
            for j in range(1, n + 1):
                p1, p2 = ((2.0 * j - 1.0) * z * p1 - (j - 1.0) * p2) / j, p1
            derivative = n * (z * p1 - p2) / (z * z - 1.0)
            z, previous = z - p1 / derivative, z
            if abs(z - previous) < 1e-16:
                break
        nodes.append(0.5 * (1.0 - z))
        weights.append(1.0 / ((1.0 - z * z) * derivative * derivative))
    return tuple(nodes), tuple(weights)


def _continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) by the modified Lentz method (NR's ``betacf``)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _FPMIN else _FPMIN)
    h = d
    for m in range(1, _MAX_TERMS + 1):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _FPMIN else _FPMIN)
            c = 1.0 + aa / c
            c = c if abs(c) > _FPMIN else _FPMIN
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"the incomplete beta continued fraction did not converge for a={a}, b={b}, x={x}")


def _tail_by_quadrature(a: float, b: float, x: float) -> float:
    """I_x(a, b) for large a and b: the density integrated over the tail beyond *x* (NR's ``betaiapprox``)."""
    mean = a / (a + b)
    sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
    above = x > mean
    end = min(1.0, max(mean + 12.0 * sd, x + 6.0 * sd)) if above else max(0.0, min(mean - 12.0 * sd, x - 6.0 * sd))
    nodes, weights = gauss_legendre(24)
    log_b = log_beta(a, b)
    panels = 3
    width = (end - x) / panels
    total = 0.0
    for panel in range(panels):
        start = x + panel * width
        total += sum(w * beta_pdf(start + width * t, a, b, log_b) for t, w in zip(nodes, weights, strict=True))
    tail = abs(total * width)  # the mass between x and end
    return 1.0 - tail if above else tail


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b): the Beta(a, b) distribution function at *x*."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if a > _QUADRATURE_ABOVE and b > _QUADRATURE_ABOVE:
        return min(1.0, max(0.0, _tail_by_quadrature(a, b, x)))
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - log_beta(a, b))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _continued_fraction(a, b, x) / a
    return 1.0 - front * _continued_fraction(b, a, 1.0 - x) / b


def beta_quantile(p: float, a: float, b: float) -> float:
    """The x at which the Beta(a, b) distribution function reaches *p* (0 < p < 1): I_x(a, b) = p.

    Starts from the normal approximation, takes Halley steps (NR's ``invbetai``) and falls back to bisection of
    the bracket it keeps whenever a step would leave it.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"a quantile needs a probability strictly between 0 and 1, not {p}")
    mean = a / (a + b)
    sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
    z = _normal_quantile(p)
    x = min(1.0 - 1e-12, max(1e-12, mean + z * sd))
    low, high = 0.0, 1.0
    log_b = log_beta(a, b)
    for _ in range(200):
        error = betainc(a, b, x) - p
        if error == 0.0:
            return x
        if error > 0.0:
            high = x
        else:
            low = x
        density = beta_pdf(x, a, b, log_b)
        candidate = math.nan
        if density > 0.0:
            u = error / density
            # Halley's correction, bounded so that it can only shorten or lengthen the Newton step by half
            bend = max(-1.0, min(1.0, u * ((a - 1.0) / x - (b - 1.0) / (1.0 - x))))
            candidate = x - u / (1.0 - 0.5 * bend)
        if not low < candidate < high:
            candidate = 0.5 * (low + high)
        if abs(candidate - x) <= 4e-16 * x or high - low <= 4e-16 * high:
            return candidate
        x = candidate
    return x


def _normal_quantile(p: float) -> float:
    """An approximation of the standard normal quantile (Abramowitz & Stegun 26.2.23), enough for a first guess."""
    q = p if p < 0.5 else 1.0 - p
    t = math.sqrt(-2.0 * math.log(q))
    z = t - (2.515517 + t * (0.802853 + t * 0.010328)) / (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308)))
    return -z if p < 0.5 else z
