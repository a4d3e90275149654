"""The funnel through real parts: events posted over the API, the worker runs the journeys, the SMTP server receives
the mail, a person's click and open are followed over HTTP, a goal is reached; the scheduler's rollup counts it all,
and `nudge stats` and the API show exactly those counts per step and split arm, for a window with the activity and
one without. A rollup run again, or after a crash before its commit, counts nothing twice."""

from __future__ import annotations

import json
import re
from email import message_from_bytes, policy

import pytest
from sqlalchemy import func, select

from server.db import get_session
from server.engine import rollup as rollup_module
from server.engine.jobs import requeue_due
from server.engine.render import save_template
from server.models import Contact, JourneyLog, StatCounter, StatWatermark

from ..helpers import api_key, load_rules, post_event, run_worker
from ..ui.conftest import live_server, ui_port  # noqa: F401  (fixtures: the app under waitress on a real port)
from .test_email_tracking import FIREFOX, fetch, hrefs, parts

RULES = """rule "Spring"
  until order.placed
when form.submitted then
  split
    50%: send email offer_a
    50%: send email offer_b
  end
  wait 1d
  send email reminder
end
"""
PEOPLE = ["ana@example.com", "ben@example.com", "cy@example.com", "dee@example.com", "eve@example.com"]


@pytest.fixture
def base(request) -> str:
    return request.getfixturevalue("live_server")


@pytest.fixture
def config(config, ui_port):  # noqa: F811
    return {**config, "BASE_URL": f"http://127.0.0.1:{ui_port}"}


def stats(client, key: str, query: str = "") -> dict:
    response = client.get(f"/api/v1/rules/Spring/stats{query}", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def by_template(funnel: dict, template: str) -> dict:
    [step] = [s for s in funnel["steps"] if s.get("template") == template]
    return step


def counters(app) -> list[tuple]:
    with app.app_context():
        session = get_session()
        return sorted(tuple(row) for row in session.execute(select(StatCounter.__table__)))


def test_the_funnel_counts_each_step_and_arm_once(app, base, smtp_server, clock, runner, monkeypatch):
    with app.app_context():
        session = get_session()
        for name in ("offer_a", "offer_b"):
            html = f'<p>{name}: <a href="https://shop.example/spring">see it</a></p>'
            save_template(session, "email", name, {"subject": name, "html": html, "txt": "see it"})
        save_template(session, "email", "reminder", {"subject": "reminder", "txt": "still there?"})
        session.commit()
    load_rules(app, RULES)
    client, ingest = app.test_client(), api_key(app)
    for address in PEOPLE:
        assert post_event(client, ingest, email=address).status_code == 202
    run_worker(app)
    smtp_server.wait_for(len(PEOPLE))
    # each person's arm, as the mail they received says
    arm_of = {}
    mail_of = {}
    for raw in smtp_server.raw:
        msg = message_from_bytes(raw, policy=policy.default)
        arm_of[msg["To"]] = msg["Subject"]
        mail_of[msg["To"]] = raw
    assert sorted(arm_of) == sorted(PEOPLE)
    in_a = [p for p in PEOPLE if arm_of[p] == "offer_a"]
    in_b = [p for p in PEOPLE if arm_of[p] == "offer_b"]

    # ana opens her mail and clicks (a person, well after delivery); ben buys: the goal ends his journey
    clock.advance(600)
    html, _ = parts(mail_of["ana@example.com"])
    [pixel] = re.findall(r'<img src="([^"]+)" width="1" height="1"', html)
    [link] = [h for h in hrefs(html) if h.startswith(f"{base}/c/")]
    assert fetch(pixel, FIREFOX).status == 200
    assert fetch(link, FIREFOX).status == 302
    run_worker(app)
    assert post_event(client, ingest, email="ana@example.com", event="order.completed", revenue=12.5).status_code == 202
    assert post_event(client, ingest, email="ben@example.com", event="order.placed").status_code == 202
    run_worker(app)

    # a day later the wait is over: the four left get the reminder, and their journeys complete
    clock.advance(86400 + 60)
    with app.app_context():
        requeue_due()
    run_worker(app)
    smtp_server.wait_for(len(PEOPLE) + 4)

    admin = api_key(app, "admin")
    with app.app_context():  # the workers folded everything in after their jobs already: start over
        session = get_session()
        assert session.scalar(select(func.count()).select_from(StatCounter)) > 0
        session.execute(StatCounter.__table__.delete())
        session.execute(StatWatermark.__table__.delete())
        session.commit()
    # a crash between reading and committing: nothing is counted, and the next run counts everything once
    real_add = rollup_module._add

    def crash(session, counts):
        real_add(session, counts)
        raise RuntimeError("the process died before its commit")

    monkeypatch.setattr(rollup_module, "_add", crash)
    with app.app_context(), pytest.raises(RuntimeError):
        rollup_module.rollup(get_session())
    monkeypatch.setattr(rollup_module, "_add", real_add)
    with app.app_context():
        assert requeue_due()["stats"] > 0  # the scheduler's tick folds in what is new
    once = counters(app)
    with app.app_context():
        assert requeue_due()["stats"] == 0  # run again: nothing new, nothing counted twice
        rollup_module.rollup(get_session())
    assert counters(app) == once

    funnel = stats(client, admin)
    assert funnel["entered"] == 5 and funnel["goal"] == 1 and funnel["completed"] == 4 and funnel["waiting"] == 0
    assert funnel["conversion"] == pytest.approx(1 / 5) and funnel["goal_event"] == "order.placed"
    [split] = [s for s in funnel["steps"] if s["op"] == "split"]
    assert split["reached"] == 5
    # the arms in the split's order, A sending offer_a
    assert {arm: f["reached"] for arm, f in split["arms"].items()} == {"A": len(in_a), "B": len(in_b)}
    for template, members in (("offer_a", in_a), ("offer_b", in_b)):
        step = by_template(funnel, template)
        assert step["sent"] == len(members), template
        has_ana = "ana@example.com" in members
        assert (step["opened_human"], step["clicked_human"], step["clickers"]) == (has_ana, has_ana, has_ana)
        assert step["opened_machine"] == 0 and step["clicked_machine"] == 0
        # ana's order is credited to the mail she clicked, in her arm: per step, per arm and in the rule's totals
        assert (step["conversions"], step["revenue"]) == ((1, 12.5) if has_ana else (0, 0))
        [arm] = step["arms"].values()
        assert (arm["conversions"], arm["revenue"]) == (step["conversions"], step["revenue"])
    assert (funnel["conversions"], funnel["revenue"]) == (1, 12.5)
    [wait] = [s for s in funnel["steps"] if s["op"] == "wait"]
    assert (wait["reached"], wait["waiting"], wait["passed"], wait["goal"]) == (5, 0, 4, 1)
    reminder = by_template(funnel, "reminder")
    assert reminder["sent"] == 4
    [end] = [s for s in funnel["steps"] if s["op"] == "exit"]
    assert end["completed"] == 4
    # the goal per arm: ben's arm converted once; the comparison has too little data to call anything
    ben_arm = [arm for arm, f in wait["arms"].items() if f["goal"] == 1]
    assert len(ben_arm) == 1 and sum(f["goal"] for f in wait["arms"].values()) == 1
    [compared] = funnel["splits"]
    assert compared["outcome"] == "goal: order.placed"
    assert compared["comparison"]["verdict"]["status"] == "not enough data"
    assert [(arm["exposed"], arm["converted"]) for arm in compared["arms"]] == [
        (len(in_a), int("ben@example.com" in in_a)),
        (len(in_b), int("ben@example.com" in in_b)),
    ]
    assert [arm["name"] for arm in compared["comparison"]["arms"]] == ["A", "B"]
    # what was attributed per arm, as the arms' steps count it: ana's order, in her arm, in the arms compared too
    attributed = [((1, 12.5) if "ana@example.com" in members else (0, 0)) for members in (in_a, in_b)]
    assert [(arm["conversions"], arm["revenue"]) for arm in compared["arms"]] == attributed
    assert [(arm["conversions"], arm["revenue"]) for arm in compared["comparison"]["arms"]] == attributed

    # a window that excludes the activity: nothing happened in it (waiting is now, whatever the window)
    empty = stats(client, admin, "?until=2000-01-01")
    assert empty["entered"] == 0 and all(s["reached"] == 0 and s["sent"] == 0 for s in empty["steps"])
    # one that includes all of it
    recent = stats(client, admin, "?since=2d&version=1")
    assert recent["window"]["since"] is not None and {**recent, "window": funnel["window"]} == funnel

    # the CLI prints the same numbers
    result = runner.invoke(["stats", "Spring", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == funnel
    table = runner.invoke(["stats", "Spring"]).output
    assert (
        "entered 5, waiting 0, completed 4, goal 1, stopped 0, conversion 20.0% to order.placed; "
        "attributed: 1 conversion(s), revenue 12.5" in table
    )
    assert "split " in table and "on goal: order.placed: not enough data" in table
    rows = {line.split()[0]: line for line in table.splitlines()}
    for template, sent in (("offer_a", len(in_a)), ("offer_b", len(in_b)), ("reminder", 4)):
        row = rows[by_template(funnel, template)["step"]]
        assert f"send {template} (line " in row and int(row[40 + 6 * 8 : 40 + 7 * 8]) == sent  # the SENT column

    # the overview: the instance's journey sends per day
    response = client.get("/api/v1/stats/overview", headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 200
    assert response.get_json()["totals"]["sent"] == 9 and response.get_json()["totals"]["revenue"] == 12.5
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(StatCounter)) == len(once)


def test_bad_stats_requests_are_refused_clearly(app, runner):
    load_rules(app, RULES)
    admin = api_key(app, "admin")
    client = app.test_client()
    response = client.get("/api/v1/rules/Nope/stats", headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 404 and "no rule named 'Nope'" in response.get_json()["detail"]
    response = client.get("/api/v1/rules/Spring/stats?since=soon", headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 400 and "is not a date" in response.get_json()["detail"]
    response = client.get("/api/v1/rules/Spring/stats?version=7", headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 404 and "has no version 7" in response.get_json()["detail"]
    result = runner.invoke(["stats", "Spring", "--since", "tomorrow"])
    assert result.exit_code == 1 and "is not a date" in result.output
    result = runner.invoke(["stats", "--version", "1"])
    assert result.exit_code == 1 and "--version needs a RULE" in result.output


@pytest.mark.parametrize(
    ("since", "until", "apart"),
    [("90m", "30m", 3600), ("2w", "36H", 1209600 - 129600), ("45s", "15s", 30), (" 1d ", "0h", 86400)],
)
def test_a_window_before_now_takes_the_spans_the_window_settings_take(app, since, until, apart):
    """One span parser (server.durations) reads NUDGE_ATTRIBUTION_*_WINDOW and ``since=``/``until=``."""
    load_rules(app, RULES)
    funnel = stats(app.test_client(), api_key(app, "admin"), f"?since={since}&until={until}")
    assert funnel["window"]["until"] - funnel["window"]["since"] == apart


def test_digits_alone_are_a_day_not_a_span(app):
    load_rules(app, RULES)
    client, admin = app.test_client(), api_key(app, "admin")
    assert stats(client, admin, "?since=20261101")["window"]["since"] == 1793491200  # 2026-11-01T00:00:00Z
    response = client.get("/api/v1/rules/Spring/stats?since=90x", headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 400 and "a span such as 7d, 24h, 90m or 2w" in response.get_json()["detail"]


def test_a_suppressed_send_is_counted_by_reason(app):
    load_rules(app, 'rule "Note"\nwhen form.submitted then\n  send email offer_a\nend\n')
    response = app.test_client().post(
        "/api/v1/events",
        json={"contact": {"external_id": "no-mail-1"}, "event": "form.submitted"},
        headers={"Authorization": f"Bearer {api_key(app)}"},
    )
    assert response.status_code == 202
    run_worker(app)
    with app.app_context():
        requeue_due()
    response = app.test_client().get(
        "/api/v1/rules/Note/stats", headers={"Authorization": f"Bearer {api_key(app, 'admin')}"}
    )
    [send] = [s for s in response.get_json()["steps"] if s["op"] == "send"]
    assert send["suppressed"] == {"no_address": 1} and send["sent"] == 0


#: two splits; the second one's arms send the offers. A contact's bucket b (0–99, per contact and rule) picks A at the
#: first split when b < 30, at the second when b < 70: some journeys go B, then A (offer_a)
TWO_SPLITS = """rule "Spring"
when form.submitted then
  split
    30%: tag "early"
    70%: tag "late"
  end
  split
    70%: send email offer_a
    30%: send email offer_b
  end
end
"""


def test_a_click_and_an_order_after_the_second_split_count_for_the_arm_taken_at_the_first(
    app, base, smtp_server, clock
):
    """Without a goal the splits compare clickers: a person who went B at the first split and A at the second
    clicks offer_a and orders; the first split counts the click, the order and its revenue for B (not for the A of
    the second split), the second split for A, and the offer's step under A, the arm of its split."""
    with app.app_context():
        session = get_session()
        for name in ("offer_a", "offer_b"):
            html = f'<p>{name}: <a href="https://shop.example/spring">see it</a></p>'
            save_template(session, "email", name, {"subject": name, "html": html, "txt": "see it"})
        session.commit()
    load_rules(app, TWO_SPLITS)
    client, ingest = app.test_client(), api_key(app)
    people = [f"p{i}@example.com" for i in range(12)]
    for address in people:
        assert post_event(client, ingest, email=address).status_code == 202
    run_worker(app)
    smtp_server.wait_for(len(people))
    with app.app_context():
        arms: dict[str, list[str]] = {}
        for email, data in get_session().execute(
            select(Contact.email, JourneyLog.data)
            .join(Contact, Contact.id == JourneyLog.contact_id)
            .where(JourneyLog.action == "split")
            .order_by(JourneyLog.id)
        ):
            arms.setdefault(email, []).append(data["arm"])
    buyers = [address for address in people if arms[address] == ["B", "A"]]
    assert buyers, f"no journey went B, then A: {arms}"
    [mail] = [raw for raw in smtp_server.raw if message_from_bytes(raw, policy=policy.default)["To"] == buyers[0]]
    assert message_from_bytes(mail, policy=policy.default)["Subject"] == "offer_a"

    clock.advance(600)  # a person, well after delivery
    html, _ = parts(mail)
    [link] = [h for h in hrefs(html) if h.startswith(f"{base}/c/")]
    assert fetch(link, FIREFOX).status == 302
    run_worker(app)
    assert post_event(client, ingest, email=buyers[0], event="order.completed", revenue=20).status_code == 202
    run_worker(app)
    with app.app_context():
        rollup_module.rollup(get_session(), limit=None)

    funnel = stats(client, api_key(app, "admin"))
    first, second = funnel["splits"]
    assert first["outcome"] == "clicked a message (people, not machines)"
    took = {n: [arms[p][n] for p in people].count for n in (0, 1)}
    outcomes = [(a["name"], a["exposed"], a["converted"], a["conversions"], a["revenue"]) for a in first["arms"]]
    assert outcomes == [("A", took[0]("A"), 0, 0, 0), ("B", took[0]("B"), 1, 1, 20)]
    outcomes = [(a["name"], a["exposed"], a["converted"], a["conversions"], a["revenue"]) for a in second["arms"]]
    assert outcomes == [("A", took[1]("A"), 1, 1, 20), ("B", took[1]("B"), 0, 0, 0)]
    offer = by_template(funnel, "offer_a")
    assert offer["arms"].keys() == {"A"} and offer["arms"]["A"]["sent"] == offer["sent"] == took[1]("A")
    assert (offer["arms"]["A"]["clickers"], offer["arms"]["A"]["revenue"]) == (1, 20)
