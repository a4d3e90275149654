"""The auto-winner algorithm the engine runs (server.stats.autowinner), proven in simulation (issue #15 point 4).

A smaller configuration than the bench's (bench/bench_autosplit.py runs 20 seeds x 10,000 contacts): 20 seeds x
3,000 contacts, arm A converting at 5% and arm B at 8%, with the default settings.
"""

from __future__ import annotations

import pytest

from server.stats.autowinner import ArmCounts, AutoSettings, choose, evidence
from server.stats.splitsim import simulate

SETTINGS = AutoSettings()  # the defaults of SPLIT_AUTO_*: floor 0.1, 200 decided per arm, 95%, 1%


@pytest.fixture(scope="module")
def runs():
    return [simulate([0.05, 0.08], 3000, seed, SETTINGS) for seed in range(20)]


def test_the_better_arm_wins_in_at_least_95_percent_of_seeds(runs):
    assert sum(run.winner == "B" for run in runs) >= 19


def test_most_of_the_last_half_get_the_better_arm(runs):
    shares = [run.share_of("B", 1500) for run in runs]
    assert sum(shares) / len(shares) >= 0.8
    assert sum(share >= 0.8 for share in shares) >= 19


def test_no_arm_falls_below_its_floor_before_a_winner(runs):
    assert all(run.min_share_before_winner() >= SETTINGS.floor for run in runs)


def test_the_auto_split_converts_more_than_the_fixed_half_split_of_the_same_run(runs):
    gained = sum(run.conversions for run in runs) - sum(run.baseline_conversions for run in runs)
    assert gained > 0.1 * sum(run.baseline_conversions for run in runs)


def test_the_same_seed_gives_the_same_run_and_another_seed_another():
    first, again = (simulate([0.05, 0.08], 800, 7, SETTINGS) for _ in range(2))
    assert first.assigned == again.assigned and first.winner == again.winner
    assert simulate([0.05, 0.08], 800, 8, SETTINGS).assigned != first.assigned


def test_assignment_is_by_starting_shares_until_every_arm_has_enough_decided_outcomes():
    arms = [ArmCounts("A", 90, 500, 500, 10), ArmCounts("B", 10, 20, SETTINGS.min_decided - 1, 19)]
    picks = [choose(arms, SETTINGS, seed) for seed in range(2000)]
    assert {pick.reason for pick in picks} == {"starting share"}
    assert 0.86 <= sum(pick.index == 0 for pick in picks) / 2000 <= 0.94  # the 90% share, whatever the rates say


def test_each_arm_keeps_its_floor_while_exploring():
    # A is far behind, yet a strict threshold keeps the test open: A gets its floor and hardly more
    strict = AutoSettings(probability=0.9999999)
    arms = [ArmCounts("A", 50, 300, 300, 5), ArmCounts("B", 50, 300, 300, 24)]
    state = evidence(arms, strict)
    assert state.phase == "exploring" and state.winner is None and state.arms[1]["p_best"] > 0.999
    picks = [choose(arms, strict, seed, state) for seed in range(4000)]
    share_a = sum(pick.index == 0 for pick in picks) / 4000
    assert strict.floor - 0.015 <= share_a <= strict.floor + 0.02
    assert {"floor", "thompson draw"} == {pick.reason for pick in picks}


def test_a_winner_needs_both_the_probability_and_a_small_expected_loss():
    strong = evidence([ArmCounts("A", 50, 4000, 4000, 200), ArmCounts("B", 50, 4000, 4000, 320)], SETTINGS)
    assert strong.winner == "B" and strong.arms[1]["p_best"] >= 0.95
    close = evidence([ArmCounts("A", 50, 300, 300, 15), ArmCounts("B", 50, 300, 300, 24)], SETTINGS)
    assert close.winner is None  # P(best) about 0.93: not yet
    loose = AutoSettings(probability=0.9, loss=0.0001)
    assert evidence([ArmCounts("A", 50, 300, 300, 15), ArmCounts("B", 50, 300, 300, 25)], loose).winner is None


def test_settings_out_of_range_are_refused():
    with pytest.raises(ValueError, match="floor"):
        AutoSettings(floor=1.0)
    with pytest.raises(ValueError, match="probability"):
        AutoSettings(probability=1.0)


@pytest.mark.parametrize(
    ("variable", "value", "wanted"),
    [
        ("SPLIT_AUTO_FLOOR", "0.6", "a share below 0.5"),
        ("SPLIT_AUTO_FLOOR", "0", "greater than 0"),
        ("SPLIT_AUTO_MIN_DECIDED", "-1", "greater than 0"),
        ("SPLIT_AUTO_PROB", "1", "a probability from 0.5 to below 1"),
        ("SPLIT_AUTO_LOSS", "1.5", "a fraction below 1"),
    ],
)
def test_a_bad_split_auto_setting_is_refused_naming_the_variable(tmp_path, variable, value, wanted):
    from server.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=f"NUDGE_{variable}: must be {wanted}"):
        load_config({"HOME": str(tmp_path)}, environ={f"NUDGE_{variable}": value})


def test_the_engine_reads_the_split_auto_settings(tmp_path):
    from server.config import load_config
    from server.engine.autosplit import settings_from

    env = {"NUDGE_SPLIT_AUTO_FLOOR": "0.2", "NUDGE_SPLIT_AUTO_MIN_DECIDED": "50", "NUDGE_SPLIT_AUTO_PROB": "0.99"}
    assert settings_from(load_config({"HOME": str(tmp_path)}, environ=env)) == AutoSettings(0.2, 50, 0.99, 0.01)
