"""The common journeys, run through the real engine on the virtual clock, with exact expected effects.

Each folder under ``journeys/`` is a case in the scenario format (``rules.nudge``, ``timeline.jsonl``,
``expected.jsonl``, ``NOTES.md`` with the reasoning) plus an optional ``case.toml``:

- ``exact``: the effect actions whose output must equal the expected lines exactly (default: all of them);
- ``until``: passed as ``--until``;
- ``[env]``: ``NUDGE_*`` settings for the run (read by ``load_config`` like any other setting).
"""

from __future__ import annotations

import json
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from server.simulation import simulate

from .effects import CONTRACT_KEYS, compare, exact_problems, read_jsonl

JOURNEYS = Path(__file__).parent / "journeys"
CASES = sorted(p for p in JOURNEYS.iterdir() if p.is_dir())


def run_folder(folder: Path, monkeypatch) -> tuple[list[dict], list[dict], set[str]]:
    settings = {}
    if (folder / "case.toml").is_file():
        settings = tomllib.loads((folder / "case.toml").read_text(encoding="utf-8"))
    for name, value in settings.get("env", {}).items():
        monkeypatch.setenv(name, str(value))
    rules = folder / "rules.nudge"
    effects = simulate(
        [(str(rules), rules.read_text(encoding="utf-8"))],
        (folder / "timeline.jsonl").read_text(encoding="utf-8").splitlines(),
        until=settings.get("until"),
    )
    return read_jsonl(folder / "expected.jsonl"), effects, set(settings.get("exact", CONTRACT_KEYS))


@pytest.mark.parametrize("folder", CASES, ids=[p.name for p in CASES])
def test_journey(folder, monkeypatch):
    expected, effects, exact = run_folder(folder, monkeypatch)
    problems = compare(expected, effects) + exact_problems(expected, effects, exact)
    assert not problems, "\n".join(problems) + "\n\noutput:\n" + "\n".join(json.dumps(e) for e in effects)


def test_every_journey_checks_something():
    assert len(CASES) >= 15
    for folder in CASES:
        assert read_jsonl(folder / "expected.jsonl"), folder.name
        assert (folder / "NOTES.md").is_file(), f"{folder.name}: say why the expected effects are right"


# -- split: stable arms, shares respected over many contacts ------------------------------------------
SPLIT_RULE = """\
rule "Subject line test"
when campaign.joined then
  split
    70%: tag "arm-a"
    30%:
      tag "arm-b"
      send email variant_b
  end
  send email common
end
"""


def _joined_twice() -> tuple[list[str], list[str]]:
    """200 contacts, and a timeline (JSON lines) where each joins twice: after finishing, the default entry policy
    lets them in again."""
    contacts = [f"c{n:03d}" for n in range(200)]
    timeline = [{"at": "2026-04-01T10:00:00Z", "contact": c, "set": {"email": f"{c}@example.com"}} for c in contacts]
    for day in ("02", "09"):
        timeline += [{"at": f"2026-04-{day}T10:00:00Z", "contact": c, "event": "campaign.joined"} for c in contacts]
    return contacts, [json.dumps(line) for line in timeline]


def test_split_keeps_each_contact_in_one_arm_and_respects_the_shares():
    contacts, timeline = _joined_twice()
    effects = simulate([("split.nudge", SPLIT_RULE)], timeline)

    arms: dict[str, list[str]] = defaultdict(list)
    sends: Counter = Counter()
    for effect in effects:
        if effect["action"] == "tag":
            arms[effect["contact"]].append(effect["tag"])
        elif effect["action"] == "send":
            sends[effect["contact"], effect["template"]] += 1
    assert sorted(arms) == contacts
    assert all(len(tags) == 2 and tags[0] == tags[1] for tags in arms.values()), "an arm must be stable per contact"
    in_b = [c for c, tags in arms.items() if tags[0] == "arm-b"]
    assert 120 <= 200 - len(in_b) <= 160 and 40 <= len(in_b) <= 80, f"{len(in_b)} of 200 in the 30% arm"
    for contact in contacts:
        assert sends[contact, "common"] == 2, "the steps after a split run for every arm"
        assert sends[contact, "variant_b"] == (2 if contact in in_b else 0)


TWO_SPLITS = """\
rule "Two tests"
when campaign.joined then
  split
    50%: tag "subject-a"
    50%: tag "subject-b"
  end
  split
    50%: tag "time-a"
    50%: tag "time-b"
  end
end
"""


def test_two_splits_of_a_rule_draw_their_arms_independently_and_each_stays_stable():
    """Each split of a rule draws its own arm for a contact: two 50/50 splits give the four pairs about equally
    (one draw for both sent everyone down A-A or B-B, and the second test only repeated the first); coming back,
    a contact takes the same arm at each split."""
    contacts, timeline = _joined_twice()
    effects = simulate([("two.nudge", TWO_SPLITS)], timeline)

    tags: dict[str, list[str]] = defaultdict(list)
    for effect in effects:
        if effect["action"] == "tag":
            tags[effect["contact"]].append(effect["tag"])
    assert sorted(tags) == contacts
    assert all(len(taken) == 4 and taken[:2] == taken[2:] for taken in tags.values()), "arms must be stable"
    pairs = Counter((taken[0], taken[1]) for taken in tags.values())
    assert set(pairs) == {(f"subject-{a}", f"time-{b}") for a in "ab" for b in "ab"}, pairs
    assert all(30 <= n <= 70 for n in pairs.values()), f"each pair ~50 of 200: {pairs}"
    # the first split's arms are those one split always gave (contacts already in a test keep their arm)
    one = simulate([("one.nudge", SPLIT_RULE.replace("70%", "50%").replace("30%", "50%"))], timeline)
    first = {e["contact"]: e["tag"][-1] for e in one if e["action"] == "tag"}
    assert {c: taken[0][-1] for c, taken in tags.items()} == first


def test_frequency_caps_with_priorities_on_each_database_and_the_wait_says_why(database_url, monkeypatch):
    folder = JOURNEYS / "frequency_cap_priorities"
    for name, value in tomllib.loads((folder / "case.toml").read_text(encoding="utf-8"))["env"].items():
        monkeypatch.setenv(name, value)
    rules = folder / "rules.nudge"
    effects = simulate(
        [(str(rules), rules.read_text(encoding="utf-8"))],
        (folder / "timeline.jsonl").read_text(encoding="utf-8").splitlines(),
        trace=True,
        config={"DATABASE_URL": database_url},
        funnels=(funnels := []),
    )
    expected = read_jsonl(folder / "expected.jsonl")
    assert not compare(expected, effects) + exact_problems(expected, effects, {"send", "suppressed"})
    # the stats count what the caps held, by reason, per send step (`nudge stats`, the stats API)
    held = {f["rule"]: (f["steps"][0]["sent"], f["steps"][0]["suppressed"]) for f in funnels}
    assert held["Promo"] == held["Alert"] == held["Text"] == (1, {"frequency_cap": 1})
    assert held["Digest"] == (1, {})  # it waited instead
    waits = [e for e in effects if e["action"] == "wait" and e["rule"] == "Digest"]
    assert waits == [
        {
            "at": "2026-09-02T09:00:00Z",
            "contact": "a",
            "rule": "Digest",
            "action": "wait",
            "until": "2026-09-08T14:00:01Z",
            "why": "frequency cap email 3/7d: low priority may use 1",
            "pc": 0,
        }
    ]
