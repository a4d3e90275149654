"""Send-time optimisation in simulation: best-time sends against a fixed 09:00 send, in the same run (not timed).

Synthetic contacts each engage most at their own local hour (their *peak*): most peaks are in the evening, the rest
anywhere, and the contacts live in several time zones. Each has a history of human opens and clicks around the peak,
plus noise: a few opens at random hours, machine opens (an image proxy) at another hour, and opens right after
earlier sends at 09:00 (the echo the engine down-weights); a share of contacts has no history at all. Then every
contact gets the same digest twice, through the real engine (``nudge simulate``): rule "Best" sends it
``at best time within 24h``, rule "Fixed" at 09:00 their time. Whether a contact engages with a message is drawn
from a model that peaks at their hour: ``p = 0.05 + 0.35 × exp(-d² / 4.5)``, d the hours between the local send
hour and the peak (around the clock). The figure is the ratio of the two engagement rates.
Run: .venv/bin/python bench/bench_best_time.py
"""

from __future__ import annotations

import json
import math
import random
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.table import Row, ratio_at_least, render
from server.simulation import simulate

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo")
#: the 09:00 newsletter whose opens, minutes after each send, are the echo best time down-weights
NEWSLETTER = """\
rule "Newsletter"
  always
when news.due then
  send email news
end
"""
RULES = (
    NEWSLETTER
    + """
rule "Best"
when digest.due then
  send email digest_best at best time within 24h
end

rule "Fixed"
when digest.due then
  wait until 09:00
  send email digest_fixed
end
"""
)
START = datetime(2026, 2, 1, tzinfo=UTC)
DUE = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def engagement(hour: int, peak: int) -> float:
    """The chance a contact whose peak is *peak* engages with a message sent at local *hour*."""
    d = min(abs(hour - peak), 24 - abs(hour - peak))
    return 0.05 + 0.35 * math.exp(-(d * d) / 4.5)


@dataclass(frozen=True)
class Outcome:
    """One simulated run: engagement rates of the two sends and of the contacts without history."""

    contacts: int
    best_rate: float
    fixed_rate: float
    #: the mean engagement chance of the sends (no draws): the same comparison without the draws' noise
    best_expected: float
    fixed_expected: float
    #: the local hours the engine chose for contacts without history
    new_hours: frozenset[int]

    @property
    def ratio(self) -> float:
        return self.best_rate / self.fixed_rate if self.fixed_rate else math.inf


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def population(contacts: int, seed: int) -> tuple[list[str], dict[str, tuple[int, str, bool]]]:
    """The timeline and each contact's (peak hour, zone, has history)."""
    rng = random.Random(seed)
    lines: list[dict[str, object]] = []
    people: dict[str, tuple[int, str, bool]] = {}
    for n in range(contacts):
        name = f"c{n:04d}"
        peak = rng.choice((19, 20, 20, 21)) if rng.random() < 0.6 else rng.randrange(24)
        tz, known = rng.choice(ZONES), rng.random() >= 0.2
        people[name] = (peak, tz, known)
        lines.append({"at": _at(START), "contact": name, "set": {"email": f"{name}@example.com", "timezone": tz}})
        if not known:
            continue
        for day in range(1, 26, 3):
            local = datetime(2026, 2, 1 + day, tzinfo=ZoneInfo(tz)) + timedelta(hours=peak, minutes=rng.randrange(50))
            lines.append({"at": _at(local), "contact": name, "event": rng.choice(("email.opened", "email.clicked"))})
        for day in range(2, 26, 6):  # noise: a random hour; a proxy's prefetch; the echo of a 09:00 send
            noon = datetime(2026, 2, 1 + day, tzinfo=ZoneInfo(tz))
            lines.append(
                {"at": _at(noon + timedelta(hours=rng.randrange(24))), "contact": name, "event": "email.opened"}
            )
            machine = noon + timedelta(hours=(peak + 8) % 24, minutes=5)
            lines.append({"at": _at(machine), "contact": name, "event": "email.opened", "props": {"machine": True}})
            lines.append({"at": _at(noon + timedelta(hours=9)), "contact": name, "event": "news.due"})
            lines.append({"at": _at(noon + timedelta(hours=9, minutes=4)), "contact": name, "event": "email.opened"})
    lines.sort(key=lambda line: str(line["at"]))
    lines += [{"at": _at(DUE), "contact": name, "event": "digest.due"} for name in people]
    return [json.dumps(line) for line in lines], people


def run(contacts: int = 200, seed: int = 1, config: dict[str, object] | None = None) -> Outcome:
    """Simulate *contacts* contacts through the engine; draw engagement with *seed*."""
    timeline, people = population(contacts, seed)
    effects = simulate([("best_time.nudge", RULES)], timeline, config=config)
    rng = random.Random(seed + 1)
    engaged = {"digest_best": 0, "digest_fixed": 0}
    sent = {"digest_best": 0, "digest_fixed": 0}
    chance = {"digest_best": 0.0, "digest_fixed": 0.0}
    new_hours = set()
    for effect in effects:
        template = effect.get("template")
        if effect["action"] != "send" or template not in sent:
            continue
        peak, tz, known = people[effect["contact"]]
        hour = datetime.fromisoformat(effect["at"].replace("Z", "+00:00")).astimezone(ZoneInfo(tz)).hour
        sent[template] += 1
        chance[template] += engagement(hour, peak)
        engaged[template] += rng.random() < engagement(hour, peak)
        if template == "digest_best" and not known:
            new_hours.add(hour)
    return Outcome(
        contacts,
        engaged["digest_best"] / max(sent["digest_best"], 1),
        engaged["digest_fixed"] / max(sent["digest_fixed"], 1),
        chance["digest_best"] / max(sent["digest_best"], 1),
        chance["digest_fixed"] / max(sent["digest_fixed"], 1),
        frozenset(new_hours),
    )


def rows(full: bool) -> list[Row]:
    outcome = run(1000 if full else 200)
    return [
        ratio_at_least(
            f"best-time send, {outcome.contacts} synthetic contacts: engagement rate",
            outcome.best_rate * 100,
            "%",
            outcome.fixed_rate * 100,
            "the same digest at 09:00 local time",
            1.2,
        )
    ]


if __name__ == "__main__":
    print(render(rows(full=True)))
