"""Split arms compared honestly (issue #13 point 4): server.stats against values computed outside it.

The reference numbers below were computed once with scipy 1.17.1 / numpy 2.4 in a scratch environment (scipy is
not a dependency of Nudge and is imported nowhere here):
- QUANTILES: ``scipy.special.betaincinv(a, b, p)``.
- BEATS: ``scipy.integrate.quad`` of ``beta.pdf(x, *A) * beta.sf(x, *B)`` over A's 1e-14..1-1e-14 quantiles
  (epsabs 1e-15, epsrel 1e-13), i.e. P(X_B > X_A) by numerical integration, not by Evan Miller's sum.
- BEST: P(arm k is best) = ``quad`` of ``beta.pdf(x, *k) * prod(beta.cdf(x, *j) for j != k)`` and the expected loss
  E[max] - E[X_k] with E[max] = sum_k ``quad`` of ``x * (the same integrand)``; next to them a Monte Carlo check:
  10,000,000 draws per arm from ``numpy.random.default_rng(20240613).beta``, the share of draws each arm wins and
  ``draws.max(0).mean() - mean_k``.
Posteriors are (alpha, beta) = (1 + converted, 1 + exposed - converted): the Beta(1, 1) prior.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.stats import (
    LEADER,
    MIN_SAMPLE,
    NO_CLEAR_DIFFERENCE,
    NOT_ENOUGH_DATA,
    ONE_ARM,
    ArmCounts,
    best_and_loss,
    beta_quantile,
    betainc,
    compare_arms,
    probability_beats,
)

ROOT = Path(__file__).resolve().parents[2]

QUANTILES = [  # (alpha, beta, p, scipy.special.betaincinv(alpha, beta, p))
    (1, 1, 0.025, 0.025),
    (1, 1, 0.975, 0.975),
    (1, 101, 0.025, 0.0002506399507392151),
    (1, 101, 0.975, 0.03586462039000372),
    (11, 91, 0.025, 0.055637223835302965),
    (11, 91, 0.975, 0.17455282607711903),
    (101, 1, 0.025, 0.9641353796099963),
    (101, 1, 0.975, 0.9997493600492607),
    (1001, 9001, 0.025, 0.09427511307319279),
    (1001, 9001, 0.975, 0.10603633195250611),
    (10001, 90001, 0.025, 0.09815616892286062),
    (10001, 90001, 0.975, 0.10187498452945337),
    (50001, 950001, 0.025, 0.049574585911951054),
    (50001, 950001, 0.975, 0.05042891895093176),
    (1, 1000001, 0.025, 2.5317782346012154e-08),
    (1, 1000001, 0.975, 3.6888689613443307e-06),
]

BEATS = [  # (A's posterior, B's posterior, P(X_B > X_A) by scipy quadrature)
    ((1, 11), (2, 10), 0.7619047619047518),  # 0/10 against 1/10
    ((11, 91), (21, 81), 0.9751730331528643),  # 10/100 against 20/100
    ((1, 1001), (6, 996), 0.9844919531835691),  # 0/1,000 against 5/1,000
    ((101, 1), (100, 2), 0.2487562189054621),  # 100/100 against 99/100: all converted
    ((10001, 90001), (10201, 89801), 0.9311102798805964),  # 10,000/100,000 against 10,200/100,000
    ((50001, 950001), (50501, 949501), 0.9472097507400816),  # 50,000/1,000,000 against 50,500/1,000,000
    ((2, 1000000), (1, 1000001), 0.24999987500005258),  # 1/1,000,000 against 0/1,000,000
]

BEST = [  # (posteriors, P(best) by quadrature, expected loss by quadrature, P(best) by Monte Carlo, loss by MC)
    (
        [(51, 951), (61, 941), (56, 946)],
        [0.1016409689154121, 0.6199931404691162, 0.27836589061544176],
        [0.012587693484126375, 0.0026076535639666942, 0.0075976735240465346],
        [0.1017304, 0.6199356, 0.278334],
        [0.012585798515098556, 0.0026057585949388756, 0.007595778555018716],
    ),
    (
        [(50001, 950001), (50301, 949701), (50151, 949851), (49801, 950201), (50311, 949691)],
        [0.047953001656016965, 0.38584314926238317, 0.15118652904361235, 0.006984697683291871, 0.40803262235465515],
        [
            0.00045842546657910016,
            0.00015842606657789915,
            0.0003084257665785031,
            0.0006584250665798985,
            0.00014842608657786305,
        ],
        [0.047908, 0.3860291, 0.151103, 0.0069773, 0.4079826],
        [
            0.0004583522477980412,
            0.00015835284779684017,
            0.00030835254779744414,
            0.0006583518477988395,
            0.00014835286779680407,
        ],
    ),
    (
        [(1, 101), (3, 99), (2, 100), (1, 101)],
        [0.0699426078563126, 0.5985304515750319, 0.26158433271230247, 0.0699426078563126],
        [0.02522270920823911, 0.005614866070984208, 0.015418787639611659, 0.02522270920823911],
        [0.06999, 0.5983291, 0.2617331, 0.0699478],
        [0.025221702151062002, 0.0056138590138071, 0.015417780582434551, 0.025221702151062002],
    ),
]


@pytest.mark.parametrize(("alpha", "beta", "p", "expected"), QUANTILES)
def test_beta_quantiles_match_scipy(alpha, beta, p, expected):
    assert beta_quantile(p, alpha, beta) == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert betainc(alpha, beta, beta_quantile(p, alpha, beta)) == pytest.approx(p, rel=1e-9)


@pytest.mark.parametrize(("a", "b", "expected"), BEATS)
def test_probability_to_beat_matches_scipy_quadrature(a, b, expected):
    assert probability_beats(b, a) == pytest.approx(expected, abs=1e-9)
    assert probability_beats(a, b) == pytest.approx(1.0 - expected, abs=1e-9)


def test_probability_to_beat_is_exact_for_a_case_worked_by_hand():
    """0/10 against 1/10: Evan Miller's sum has two terms, 11/21 + 5/21 = 16/21."""
    assert Fraction(probability_beats((2, 10), (1, 11))).limit_denominator(1000) == Fraction(16, 21)


@pytest.mark.parametrize(("posteriors", "best", "loss", "mc_best", "mc_loss"), BEST)
def test_probability_of_being_best_and_expected_loss_match_quadrature_and_monte_carlo(
    posteriors, best, loss, mc_best, mc_loss
):
    got_best, got_loss = best_and_loss(posteriors)
    assert got_best == pytest.approx(best, abs=1e-6)
    assert got_loss == pytest.approx(loss, rel=1e-4, abs=1e-9)
    # 10,000,000 draws: the Monte Carlo's standard error is below 0.0002
    assert got_best == pytest.approx(mc_best, abs=0.002)
    assert got_loss == pytest.approx(mc_loss, abs=2e-5)
    assert sum(got_best) == pytest.approx(1.0, abs=1e-12)


def test_five_arms_of_a_million_exposures_compared():
    counts = [("A", 10**6, 50000), ("B", 10**6, 50300), ("C", 10**6, 50150), ("D", 10**6, 49800), ("E", 10**6, 50310)]
    comparison = compare_arms(counts, outcome_name="email.clicked within 3d")
    posteriors, best, loss, _, _ = BEST[1]
    by_name = {arm.name: arm for arm in comparison.arms}
    assert [arm.name for arm in comparison.arms] == ["A", "B", "C", "D", "E"]
    assert [arm.probability_best for arm in comparison.arms] == pytest.approx(best, abs=1e-6)
    assert [arm.expected_loss for arm in comparison.arms] == pytest.approx(loss, rel=1e-4)
    assert by_name["A"].interval_low == pytest.approx(0.049574585911951054, rel=1e-9)
    assert by_name["A"].interval_high == pytest.approx(0.05042891895093176, rel=1e-9)
    assert by_name["A"].probability_beats_first is None
    assert by_name["B"].rate == 0.0503 and by_name["B"].status == "ok"
    assert (by_name["B"].alpha, by_name["B"].beta) == posteriors[1]
    # E has the highest raw rate, yet nothing is called: 41% to be the best is not a winner
    assert comparison.verdict.status == NO_CLEAR_DIFFERENCE and comparison.verdict.leader is None


def test_a_clear_leader_is_named_and_a_first_arm_can_lead_too():
    ahead = compare_arms([("A", 1000, 100), ("B", 1000, 150)], outcome_name="goal")
    assert ahead.arms[1].probability_beats_first > 0.999
    assert ahead.arms[1].probability_best == ahead.arms[1].probability_beats_first
    assert (ahead.verdict.status, ahead.verdict.leader) == (LEADER, "B")
    behind = compare_arms([("A", 1000, 150), ("B", 1000, 100)], outcome_name="goal")
    assert (behind.verdict.status, behind.verdict.leader) == (LEADER, "A")


def test_two_arms_that_both_beat_the_first_but_tie_name_no_leader():
    comparison = compare_arms([("A", 2000, 100), ("B", 2000, 200), ("C", 2000, 201)], outcome_name="goal")
    assert all(arm.probability_beats_first > 0.999 for arm in comparison.arms[1:])
    assert max(arm.probability_best for arm in comparison.arms) < 0.95
    assert comparison.verdict.status == NO_CLEAR_DIFFERENCE and comparison.verdict.leader is None


def test_below_the_minimum_sample_no_winner_is_called_from_raw_rates():
    comparison = compare_arms([("A", MIN_SAMPLE - 1, 0), ("B", MIN_SAMPLE - 1, 60)], outcome_name="goal")
    assert comparison.arms[1].probability_beats_first > 0.999999  # the data look decisive...
    assert [arm.status for arm in comparison.arms] == [NOT_ENOUGH_DATA, NOT_ENOUGH_DATA]
    assert comparison.verdict.status == NOT_ENOUGH_DATA and comparison.verdict.leader is None  # ...but too small
    assert "A, B" in comparison.verdict.message and str(MIN_SAMPLE) in comparison.verdict.message
    enough = compare_arms([("A", MIN_SAMPLE, 0), ("B", MIN_SAMPLE, 60)], outcome_name="goal")
    assert (enough.verdict.status, enough.verdict.leader) == (LEADER, "B")


def test_too_few_conversions_is_not_enough_data():
    comparison = compare_arms([("A", 5000, 2), ("B", 5000, 7)], outcome_name="goal")
    assert comparison.arms[1].status == NOT_ENOUGH_DATA and comparison.verdict.status == NOT_ENOUGH_DATA


def test_zero_conversions_and_all_converted():
    none = compare_arms([("A", 1000, 0), ("B", 1000, 0)], outcome_name="goal")
    assert none.arms[1].probability_beats_first == pytest.approx(0.5, abs=1e-12)
    assert none.arms[0].rate == 0.0 and none.arms[0].interval_low == pytest.approx(2.5292e-05, rel=1e-3)
    assert none.verdict.status == NOT_ENOUGH_DATA
    every = compare_arms([("A", 1000, 1000), ("B", 1000, 1000)], outcome_name="goal")
    assert every.arms[1].probability_beats_first == pytest.approx(0.5, abs=1e-12)
    assert every.arms[0].rate == 1.0 and every.arms[0].interval_high < 1.0
    assert every.verdict.status == NOT_ENOUGH_DATA


def test_one_arm_has_nothing_to_compare():
    comparison = compare_arms([ArmCounts("only", 500, 50)], outcome_name="goal")
    arm = comparison.arms[0]
    assert (arm.probability_beats_first, arm.probability_best, arm.expected_loss) == (None, 1.0, 0.0)
    assert comparison.verdict.status == ONE_ARM and comparison.verdict.leader is None


def test_an_arm_nobody_was_exposed_to_has_no_rate():
    comparison = compare_arms([("A", 0, 0), ("B", 200, 20)], outcome_name="goal")
    assert comparison.arms[0].rate is None and comparison.arms[0].status == NOT_ENOUGH_DATA
    assert (comparison.arms[0].interval_low, comparison.arms[0].interval_high) == pytest.approx((0.025, 0.975))


@pytest.mark.parametrize("exposed", [100, 10**6, 10**8])
def test_identical_arms_are_even_at_any_size_without_overflow(exposed):
    converted = exposed // 20
    comparison = compare_arms([("A", exposed, converted)] * 1 + [("B", exposed, converted)], outcome_name="goal")
    assert comparison.arms[1].probability_beats_first == pytest.approx(0.5, abs=1e-8)
    assert [arm.probability_best for arm in comparison.arms] == pytest.approx([0.5, 0.5], abs=1e-8)
    assert all(math.isfinite(arm.expected_loss) and arm.expected_loss >= 0 for arm in comparison.arms)
    assert comparison.verdict.status == NO_CLEAR_DIFFERENCE


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        ([], r"at least one arm"),
        ([("A", -1, 0)], r"arm 1 \('A'\): exposed must be a whole number >= 0, not -1"),
        ([("A", 10, -2)], r"arm 1 \('A'\): converted must be a whole number >= 0, not -2"),
        ([("A", 10, 1), ("B", 10, 11)], r"arm 2 \('B'\): converted \(11\) is more than exposed \(10\)"),
        ([("A", 10.5, 1)], r"exposed must be a whole number"),
        ([("A", 10, 1), ("A", 10, 2)], r"two arms are named 'A'"),
        ([("", 10, 1)], r"arm 1 needs a name"),
        ([("A", 10)], r"arm 1 must be \(name, exposed, converted\)"),
        ([("A", 10, 1, -1, 0.0)], r"arm 1 \('A'\): conversions must be a whole number >= 0 or None, not -1"),
        ([("A", 10, 1, 2, "9.90")], r"arm 1 \('A'\): revenue must be a number or None, not '9.90'"),
    ],
)
def test_bad_counts_are_refused_with_the_arm_named(arms, message):
    with pytest.raises(ValueError, match=message):
        compare_arms(arms, outcome_name="goal")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prior": (0.5, 0.5)}, r"prior must be two whole numbers >= 1"),
        ({"credible": 1.0}, r"credible must be a probability strictly between 0 and 1"),
        ({"threshold": 0}, r"threshold must be a probability"),
        ({"min_sample": -1}, r"min_sample must be a whole number >= 0"),
        ({"outcome_name": " "}, r"outcome_name must name the outcome"),
    ],
)
def test_bad_parameters_are_refused_by_name(options, message):
    with pytest.raises(ValueError, match=message):
        compare_arms([("A", 10, 1)], **{"outcome_name": "goal", **options})


counts = st.integers(min_value=0, max_value=5000).flatmap(
    lambda exposed: st.tuples(st.just(exposed), st.integers(min_value=0, max_value=exposed))
)


@settings(max_examples=60, deadline=None)
@given(counts, counts)
def test_either_arm_beats_the_other_with_probabilities_summing_to_one(a, b):
    pa, pb = (1 + a[1], 1 + a[0] - a[1]), (1 + b[1], 1 + b[0] - b[1])
    assert probability_beats(pb, pa) + probability_beats(pa, pb) == pytest.approx(1.0, abs=1e-9)
    # swapping "converted" and "not converted" swaps who is ahead
    assert probability_beats(pb, pa) == pytest.approx(probability_beats(pa[::-1], pb[::-1]), abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(counts, st.integers(min_value=1, max_value=50))
def test_more_conversions_never_lower_the_probability_to_beat(a, more):
    exposed, converted = a
    first = (1 + converted, 1 + exposed - converted)
    bigger = exposed + more
    probabilities = [probability_beats((1 + c, 1 + bigger - c), first) for c in range(converted, converted + more + 1)]
    assert all(later >= earlier - 1e-12 for earlier, later in itertools.pairwise(probabilities))


def test_each_arm_carries_the_conversions_and_revenue_attributed_to_it():
    """What the funnel reads from the attributions (docs/stats.md, "Revenue") goes through unchanged, per arm; the
    comparison itself rests on exposed and converted only."""
    plain = compare_arms([("A", 1000, 100), ("B", 1000, 150)], outcome_name="goal")
    arms = [ArmCounts("A", 1000, 100, 7, 349.3), ArmCounts("B", 1000, 150, 0, 0.0)]
    carried = compare_arms(arms, outcome_name="goal")
    assert [(arm.conversions, arm.revenue) for arm in carried.arms] == [(7, 349.3), (0, 0.0)]
    assert [(arm["conversions"], arm["revenue"]) for arm in carried.to_dict()["arms"]] == [(7, 349.3), (0, 0.0)]
    assert [(arm["conversions"], arm["revenue"]) for arm in plain.to_dict()["arms"]] == [(None, None), (None, None)]
    assert [arm.probability_best for arm in carried.arms] == [arm.probability_best for arm in plain.arms]
    assert carried.verdict == plain.verdict


def test_the_comparison_is_json_ready_with_the_documented_field_names():
    comparison = compare_arms([("A", 1000, 100), ("B", 1000, 150)], outcome_name="email.clicked within 3d")
    data = json.loads(json.dumps(comparison.to_dict()))
    assert set(data) == {
        "outcome",
        "method",
        "prior",
        "credible",
        "min_sample",
        "min_conversions",
        "threshold",
        "arms",
        "verdict",
    }
    assert data["method"] == "bayesian beta-binomial" and data["prior"] == {"alpha": 1, "beta": 1}
    assert set(data["arms"][0]) == {
        "name",
        "exposed",
        "converted",
        "rate",
        "interval",
        "posterior",
        "probability_beats_first",
        "probability_best",
        "expected_loss",
        "status",
        "conversions",
        "revenue",
    }
    assert data["verdict"] == {"status": "leader", "leader": "B", "message": comparison.verdict.message}
    documented = set(re.findall(r"^\| `([a-z_.]+)`", (ROOT / "docs" / "stats.md").read_text(), re.MULTILINE))
    fields = set(data) | set(data["arms"][0]) | {"interval.low", "interval.high", "posterior.alpha", "posterior.beta"}
    fields |= {"verdict.status", "verdict.leader", "verdict.message"}
    assert fields <= documented, f"docs/stats.md does not describe {sorted(fields - documented)}"


def test_the_statistics_need_neither_flask_nor_a_database_nor_scipy():
    code = (
        "import sys, server.stats\n"
        "print(sorted(m for m in ('flask', 'sqlalchemy', 'scipy', 'numpy', 'redis') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
