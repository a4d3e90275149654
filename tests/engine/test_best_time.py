"""``send … at best time within D``: each contact's best hour, learned from human engagement, on the engine's clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bench import bench_best_time
from server.engine.besttime import choose
from server.engine.timeutil import to_ts
from server.simulation import simulate

from ..helpers import api_key, post_event, run_worker
from .test_cli_engine import make_due, rules_repo

RULES = (
    bench_best_time.NEWSLETTER
    + """
rule "Digest"
  quiet hours 22:00-07:00
when digest.due then
  send email digest at best time within 24h
end
"""
)


def _timeline() -> list[str]:
    """eve (Berlin) reads at 20:xx, while a proxy prefetches her mail at 12:00; echo (UTC) opens every 09:00
    newsletter within minutes but clicks on his own at 17:xx; new has no history; p1-p3 read at 14:xx (UTC)."""
    lines: list[dict] = []

    def add(at: str, contact: str, **kw) -> None:
        lines.append({"at": at, "contact": contact, **kw})

    add("2026-01-01T00:00:00Z", "eve", set={"email": "eve@example.com", "timezone": "Europe/Berlin"})
    for name in ("echo", "new", "p1", "p2", "p3"):
        add("2026-01-01T00:00:00Z", name, set={"email": f"{name}@example.com"})
    for day in range(5, 11):
        date = f"2026-01-{day:02d}"
        if day < 10:
            add(f"{date}T19:10:00Z", "eve", event="email.opened")
        add(f"{date}T11:00:00Z", "eve", event="email.opened", props={"machine": True})
        add(f"{date}T11:01:00Z", "eve", event="email.clicked", props={"machine": True})
        add(f"{date}T09:00:00Z", "echo", event="news.due")
        add(f"{date}T09:05:00Z", "echo", event="email.opened")
        if day < 9:
            add(f"{date}T17:20:00Z", "echo", event="email.clicked")
            for name in ("p1", "p2", "p3"):
                add(f"{date}T14:30:00Z", name, event="email.opened")
    for name in ("eve", "echo", "new"):
        add("2026-01-20T08:00:00Z", name, event="digest.due")
    return [json.dumps(line) for line in lines]


def _digest(database_url: str) -> dict[str, dict[str, dict]]:
    effects = simulate([("rules.nudge", RULES)], _timeline(), trace=True, config={"DATABASE_URL": database_url})
    out: dict[str, dict[str, dict]] = {}
    for effect in effects:
        if effect["rule"] == "Digest":
            out.setdefault(effect["contact"], {})[effect["action"]] = effect
    return out


def test_best_time_sends_at_each_contacts_own_hour_from_human_engagement(database_url):
    digest = _digest(database_url)
    # 20:00 in Berlin: the proxy's 12:00 prefetches are machine events and do not count
    assert digest["eve"]["send"]["at"] == "2026-01-20T19:00:00Z"
    assert digest["eve"]["best_time"]["why"] == (
        "best time 20:00 (contact history n=5, population best 14:00, blend own + 5 × population share)"
    )
    # echo's six opens within minutes of a 09:00 send weigh a quarter each (1.5) against four clicks at 17:xx
    assert digest["echo"]["send"]["at"] == "2026-01-20T17:00:00Z"
    assert "contact history n=5.5" in digest["echo"]["best_time"]["why"]
    # the trace says until when the journey waits, and why
    assert digest["eve"]["wait"]["until"] == "2026-01-20T19:00:00Z"
    assert digest["eve"]["wait"]["why"].startswith("best time 20:00")


def test_a_contact_without_history_gets_the_populations_best_hour(database_url):
    new = _digest(database_url)["new"]
    assert new["send"]["at"] == "2026-01-20T14:00:00Z"
    assert new["best_time"]["why"].startswith("best time 14:00 (contact history n=0, population best 14:00")


NOW = to_ts(datetime(2026, 1, 20, 8, 0, tzinfo=UTC))


def _own(hour: int, weight: float = 5.0) -> list[float]:
    return [weight if h == hour else 0.0 for h in range(24)]


def test_the_chosen_hour_stays_within_the_window_and_outside_quiet_hours():
    anywhere = lambda ts: True  # noqa: E731
    # the best hour is 20:00, but a 3h window ends at 11:00: the best hour inside it wins (10:00 beats 9:00)
    within = choose(NOW, 3 * 3600, _own(20), [1 / 24 if h != 10 else 0.5 for h in range(24)], 5, "UTC", anywhere)
    assert (within.at, within.hour) == (NOW + 2 * 3600, 10)
    # quiet from 19:00 to 21:00: 20:00 is not allowed; the next best hour is taken
    quiet = lambda ts: not 19 <= datetime.fromtimestamp(ts, UTC).hour < 21  # noqa: E731
    own = [0.0] * 24
    own[20], own[15] = 5.0, 2.0
    outside = choose(NOW, 24 * 3600, own, [0.0] * 24, 5, "UTC", quiet)
    assert outside.hour == 15
    # no history anywhere: every hour ties and the send goes now
    assert choose(NOW, 24 * 3600, [0.0] * 24, [0.0] * 24, 5, "UTC", anywhere).at == NOW


def test_the_prior_weighs_the_population_against_a_short_history():
    population = [0.0] * 24
    population[14] = 1.0
    assert choose(NOW, 86400, _own(20, 2.0), population, 5, "UTC", lambda ts: True).hour == 14  # 2 < 5 × 1
    assert choose(NOW, 86400, _own(20, 6.0), population, 5, "UTC", lambda ts: True).hour == 20  # 6 > 5 × 1


BEST_TIME_RULE = 'rule "Digest"\nwhen form.submitted then\n  send email welcome at best time within 24h\nend\n'


def test_explain_says_which_hour_was_chosen_and_why_and_the_mail_goes_then(
    runner, app, client, clock, smtp_server, tmp_path
):
    assert runner.invoke(["apply", str(rules_repo(tmp_path / "repo", {"digest.nudge": BEST_TIME_RULE}))]).exit_code == 0
    now = clock()
    target = (now + timedelta(hours=5)).replace(minute=0, second=0, microsecond=0)
    key = api_key(app)
    for days in (1, 2, 3):  # ana opened mail at that hour on the last three days
        opened = (target - timedelta(days=days, minutes=-10)).isoformat()
        response = client.post(
            "/api/v1/events",
            json={"contact": {"email": "ana@example.com"}, "event": "email.clicked", "occurred_at": opened},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 202, response.get_json()
    run_worker(app)
    post_event(client, key, email="ana@example.com")
    run_worker(app)
    lines = runner.invoke(["explain", "ana@example.com"]).output.splitlines()
    chose = [line for line in lines if "Digest: chose best time" in line]
    assert len(chose) == 1, lines
    assert f"chose best time {target:%H}:00 (contact history n=3, population best {target:%H}:00" in chose[0]
    assert chose[0].endswith(f"sends at {target:%Y-%m-%dT%H:%M:%SZ}")
    assert lines[-1].startswith("now waiting in Digest until ") and f"{target:%H:%M}" in lines[-1], lines[-1]
    assert smtp_server.messages == []  # not sent yet: it waits for ana's hour
    make_due(app, clock, target - clock() + timedelta(minutes=1))
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["ana@example.com"]


@pytest.mark.slow
def test_best_time_sends_get_more_engagement_than_a_fixed_0900_send_in_the_same_run():
    """Point 4 of issue #15 (not timed): synthetic contacts peaking at their own hours, through the real engine."""
    outcome = bench_best_time.run(contacts=60, seed=7)
    assert outcome.best_expected > 1.3 * outcome.fixed_expected, outcome
    assert outcome.best_rate > outcome.fixed_rate, outcome  # the drawn engagement too
    assert len(outcome.new_hours) == 1, outcome  # every contact without history got the same (population's) hour
