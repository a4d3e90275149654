"""Revenue attribution through real parts: the SMTP server receives the mail, the person's click is followed over
HTTP, an `order.completed` carrying revenue is posted over the API, and the stats (rule funnel, overview,
templates, `nudge stats`) show it on the send step that earned it, counted by the workers' rollup. Changing the
windows afterwards rewrites nothing; `nudge stats --recompute-revenue` does. Window edges, the delivery fallback,
a scanner's click and two messages (the last touch wins) are checked to the second on the engine's clock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from server.db import get_session
from server.engine.attribution import amount_of
from server.engine.jobs import requeue_due
from server.engine.render import save_template
from server.models import Attribution, Message, MessageStatusChange

from ..helpers import api_key, load_rules, post_event, run_worker
from ..ui.conftest import live_server, ui_port  # noqa: F401  (fixtures: the app under waitress on a real port)
from .test_email_tracking import FIREFOX, SCANNER, fetch, hrefs, parts
from .test_stats_funnel import base, by_template, config  # noqa: F401  (fixtures: the live server's URL, BASE_URL set to it)

OFFER = '<p>Spring: <a href="https://shop.example/spring">see it</a></p>'
RULES = """rule "Spring"
when form.submitted then
  send email offer
  wait 1d
  send email reminder
end
"""


def templates(app) -> None:
    with app.app_context():
        session = get_session()
        save_template(session, "email", "offer", {"subject": "offer", "html": OFFER, "txt": "see it"})
        reminder = '<p>Still there? <a href="https://shop.example/spring">see it</a></p>'
        save_template(session, "email", "reminder", {"subject": "reminder", "html": reminder, "txt": "see it"})
        session.commit()


def get(client, key: str, path: str) -> dict:
    response = client.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def tracked_link(raw: bytes, site: str) -> str:
    html, _ = parts(raw)
    [link] = [h for h in hrefs(html) if h.startswith(f"{site}/c/")]
    return link


def test_revenue_is_attributed_to_the_clicked_send_and_kept_until_recomputed(
    app,
    base,  # noqa: F811
    smtp_server,
    clock,
    runner,
    monkeypatch,
):
    templates(app)
    load_rules(app, RULES)
    client, ingest, admin = app.test_client(), api_key(app), api_key(app, "admin")
    assert post_event(client, ingest, email="ana@example.com").status_code == 202
    run_worker(app)
    smtp_server.wait_for(1)
    clock.advance(600)  # a person, well after delivery
    assert fetch(tracked_link(smtp_server.raw[0], base), FIREFOX).status == 302
    run_worker(app)
    clock.advance(60)
    response = post_event(client, ingest, email="ana@example.com", event="order.completed", revenue=49.90)
    assert response.status_code == 202
    order_day = clock().date().isoformat()
    run_worker(app)  # no scheduler tick: the worker's own rollup makes the stats fresh

    funnel = get(client, admin, "/rules/Spring/stats")
    offer = by_template(funnel, "offer")
    assert (offer["conversions"], offer["revenue"]) == (1, 49.9)
    assert (funnel["conversions"], funnel["revenue"]) == (1, 49.9)
    assert (by_template(funnel, "reminder")["conversions"], by_template(funnel, "reminder")["revenue"]) == (0, 0)
    overview = get(client, admin, "/stats/overview")
    assert (overview["totals"]["conversions"], overview["totals"]["revenue"]) == (1, 49.9)
    # the order's day carries it; the send, 11 minutes earlier, is listed on a day of its own (with none) only when
    # the two fall on either side of midnight UTC
    with app.app_context():
        sent_at = get_session().scalar(select(MessageStatusChange.at).where(MessageStatusChange.status == "sent"))
    sent_day = sent_at.date().isoformat()
    expected = {sent_day: 0, order_day: 49.9} if sent_day != order_day else {order_day: 49.9}
    assert {day["day"]: day["revenue"] for day in overview["days"]} == expected
    rows = get(client, admin, "/stats/templates")["templates"]
    assert {r["template"]: (r["sent"], r["clicked_human"], r["conversions"], r["revenue"]) for r in rows} == {
        "offer": (1, 1, 1, 49.9)
    }
    with app.app_context():
        [row] = get_session().scalars(select(Attribution)).all()
        assert (row.touch, row.amount, row.template) == ("click", 499000, "offer")
    table = runner.invoke(["stats", "--templates"]).output
    assert table.splitlines()[1].split() == ["offer", "1", "0", "1", "1", "49.9"]
    days = runner.invoke(["stats"]).output.splitlines()
    assert days[0].split()[-2:] == ["CONVERSIONS", "REVENUE"] and days[-1].split()[-2:] == ["1", "49.9"]

    # the windows change: history stays as it was attributed
    app.config.update(ATTRIBUTION_CLICK_WINDOW="5m", ATTRIBUTION_DELIVERY_WINDOW="5m")
    assert post_event(client, ingest, email="ana@example.com", event="page.viewed").status_code == 202
    run_worker(app)
    with app.app_context():
        requeue_due()
    assert by_template(get(client, admin, "/rules/Spring/stats"), "offer")["revenue"] == 49.9

    # until recomputed on purpose, with the windows set now: the click was over a minute before, the delivery
    # over 11 minutes
    monkeypatch.setenv("NUDGE_ATTRIBUTION_CLICK_WINDOW", "1m")
    monkeypatch.setenv("NUDGE_ATTRIBUTION_DELIVERY_WINDOW", "5m")
    result = runner.invoke(["stats", "--recompute-revenue"])
    assert result.exit_code == 0, result.output
    assert "0 of 4 events attributed with the windows set now (click 1m, delivery 5m)" in result.output
    offer = by_template(get(client, admin, "/rules/Spring/stats"), "offer")
    assert (offer["conversions"], offer["revenue"]) == (0, 0)
    assert get(client, admin, "/stats/overview")["totals"]["revenue"] == 0
    monkeypatch.setenv("NUDGE_ATTRIBUTION_CLICK_WINDOW", "10m")
    assert "1 of 4 events attributed" in runner.invoke(["stats", "--recompute-revenue"]).output
    offer = by_template(get(client, admin, "/rules/Spring/stats"), "offer")
    assert (offer["conversions"], offer["revenue"]) == (1, 49.9)
    with app.app_context():
        requeue_due()  # the rollup after a recompute counts nothing twice
    assert by_template(get(client, admin, "/rules/Spring/stats"), "offer")["revenue"] == 49.9


def _at(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _sent_at(app, template: str, email: str) -> datetime:
    from server.models import Contact

    with app.app_context():
        session = get_session()
        return session.scalar(
            select(MessageStatusChange.at)
            .join(Message, Message.id == MessageStatusChange.message_id)
            .join(Contact, Contact.id == Message.contact_id)
            .where(Message.template == template, Contact.email == email, MessageStatusChange.status == "sent")
        )


def _click_at(app, email: str) -> datetime:
    from server.models import Contact, Event

    with app.app_context():
        session = get_session()
        return session.scalar(
            select(Event.occurred_at)
            .join(Contact, Contact.id == Event.contact_id)
            .where(Event.name == "email.clicked", Contact.email == email)
            .order_by(Event.id.desc())
        )


def test_attribution_windows_fallback_machines_and_the_last_touch(
    app,
    base,  # noqa: F811
    smtp_server,
    clock,
    caplog,
):
    """Click window 1h, delivery window 30m: each edge to the second; a scanner's click never attributes."""
    app.config.update(ATTRIBUTION_CLICK_WINDOW="1h", ATTRIBUTION_DELIVERY_WINDOW="30m")
    templates(app)
    load_rules(app, RULES)
    client, ingest, admin = app.test_client(), api_key(app), api_key(app, "admin")
    for email in ("ana@example.com", "bob@example.com"):
        assert post_event(client, ingest, email=email).status_code == 202
    run_worker(app)
    smtp_server.wait_for(2)
    mail = {m["To"]: raw for m, raw in zip(smtp_server.messages, smtp_server.raw, strict=True)}

    def buy(email: str, value, at: datetime, event: str = "order.completed") -> None:
        response = client.post(
            "/api/v1/events",
            json={"contact": {"email": email}, "event": event, "props": {"revenue": value}, "occurred_at": _at(at)},
            headers={"Authorization": f"Bearer {ingest}"},
        )
        assert response.status_code == 202, response.get_data(as_text=True)

    sent = _sent_at(app, "offer", "ana@example.com")
    clock.advance(7200)
    buy("ana@example.com", 1, sent + timedelta(minutes=30))  # the delivery window's last second: attributed
    buy("ana@example.com", 2, sent + timedelta(minutes=30, seconds=1))  # one second later: nothing touched
    # bob's mail is clicked by a scanner: no person touched it, and the delivery is long past
    assert fetch(tracked_link(mail["bob@example.com"], base), SCANNER).status == 302
    run_worker(app)
    buy("bob@example.com", 5, _click_at(app, "bob@example.com") + timedelta(minutes=1))
    # ana clicks (a person): the click window runs an hour from it
    assert fetch(tracked_link(mail["ana@example.com"], base), FIREFOX).status == 302
    run_worker(app)
    clicked = _click_at(app, "ana@example.com")
    buy("ana@example.com", "3", clicked + timedelta(hours=1))  # the click window's last second; text "3" counts
    buy("ana@example.com", 4, clicked + timedelta(hours=1, seconds=1))
    # bad values are not attributed, each with its reason in the log; 0 is a conversion worth nothing
    with caplog.at_level(logging.INFO, logger="server.engine.attribution"):
        for bad in ("lots", "NaN", 1e15, True, -3):
            buy("ana@example.com", bad, clicked + timedelta(minutes=1), event="order.odd")
        run_worker(app)
    reasons = [r.getMessage() for r in caplog.records if r.name == "server.engine.attribution"]
    assert len(reasons) == 5 and all("it is not attributed" in r for r in reasons)
    assert "email" not in " ".join(reasons) and "@" not in " ".join(reasons)
    buy("ana@example.com", 0, clicked + timedelta(minutes=2))

    # a day on, the reminder is delivered; ana clicks the offer again: a person's click beats a later delivery
    clock.advance(86400)
    with app.app_context():
        requeue_due()
    run_worker(app)
    smtp_server.wait_for(4)
    reminder_to = {m["To"]: raw for m, raw in zip(smtp_server.messages[2:], smtp_server.raw[2:], strict=True)}
    clock.advance(300)
    assert fetch(tracked_link(mail["ana@example.com"], base), FIREFOX).status == 302
    run_worker(app)
    buy("ana@example.com", 7, _click_at(app, "ana@example.com") + timedelta(seconds=1))
    # then she clicks the reminder: the last touch wins
    clock.advance(60)
    assert fetch(tracked_link(reminder_to["ana@example.com"], base), FIREFOX).status == 302
    run_worker(app)
    buy("ana@example.com", 8.25, _click_at(app, "ana@example.com") + timedelta(seconds=1))
    run_worker(app)

    funnel = get(client, admin, "/rules/Spring/stats")
    offer, reminder = by_template(funnel, "offer"), by_template(funnel, "reminder")
    assert (offer["conversions"], offer["revenue"]) == (4, 11)  # 1 (delivery), 3 (click), 0, 7 (click)
    assert (reminder["conversions"], reminder["revenue"]) == (1, 8.25)
    with app.app_context():
        touches = [
            (a.template, a.touch, a.amount)
            for a in get_session().scalars(select(Attribution).order_by(Attribution.event_id))
        ]
    assert touches == [
        ("offer", "delivery", 10000),
        ("offer", "click", 30000),
        ("offer", "click", 0),
        ("offer", "click", 70000),
        ("reminder", "click", 82500),
    ]


@pytest.mark.parametrize(
    ("value", "amount"),
    [(49.90, 499000), ("49.90", 499000), (0, 0), (12, 120000), (0.00005, 0), (0.00015, 2), (10**12, 10**16)],
)
def test_a_value_is_kept_exactly_in_ten_thousandths(value, amount):
    assert amount_of(value) == (amount, "")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("lots", "is not a number"),
        ("NaN", "is not a finite number"),
        (float("inf"), "is not a finite number"),
        (True, "is a bool, not a number"),
        (None, "is a NoneType, not a number"),
        ({"eur": 3}, "is a dict, not a number"),
        (-3, "is negative"),
        (10**12 + 1, "is above 1,000,000,000,000"),
    ],
)
def test_a_bad_value_is_not_attributed_and_says_why(value, reason):
    amount, why = amount_of(value)
    assert amount is None and why.startswith(reason)


def test_a_bad_window_setting_names_the_variable():
    from server.config import ConfigError, load_config

    with pytest.raises(ConfigError) as error:
        load_config({"ATTRIBUTION_CLICK_WINDOW": "a week", "DATABASE_URL": "sqlite://"}, environ={}, create=True)
    assert "ATTRIBUTION_CLICK_WINDOW" in str(error.value) and "like 7d" in str(error.value)


def test_the_worker_rolls_up_after_its_jobs(app, smtp_server):
    """Stats are fresh after the worker's jobs, without a scheduler tick or a command."""
    templates(app)
    load_rules(app, RULES)
    client = app.test_client()
    assert post_event(client, api_key(app), email="cy@example.com").status_code == 202
    run_worker(app)
    smtp_server.wait_for(1)
    funnel = get(client, api_key(app, "admin"), "/rules/Spring/stats")
    assert funnel["entered"] == 1 and by_template(funnel, "offer")["sent"] == 1
