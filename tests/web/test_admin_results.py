"""The Results area and the dashboard's activity through the test client: every role reads them, nothing there
changes state; a rule's funnel, sends, split arms and the instance's days show the rollup's counters; hostile rule
and step names are escaped everywhere; a bad window or version is shown as an error (422), never a 500."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import insert, select

from server.db import get_session
from server.engine.timeutil import to_ts
from server.models import Rule, RuleVersion, StatCounter, utcnow

from ..helpers import load_rules, signed_in
from .crm_helpers import BREAKOUT, SCRIPT, escaped

RULES = f'''rule "{SCRIPT}"
when form.submitted then
  split
    50%: send email offer_a
    50%: send email offer_b
  end
  wait 1d
  tag "done"
end

rule "Quiet"
when form.submitted then
  tag "quiet"
end
'''


def _today() -> int:
    return to_ts(utcnow()) // 86400


@pytest.fixture
def seeded(app) -> dict:
    """The hostile rule with counters the rollup would have written: 300 entered over two days (one 40 days ago),
    its split's arms, sends with their outcomes, a step id that holds markup; its id and step ids."""
    load_rules(app, RULES)
    with app.app_context():
        session = get_session()
        rule = session.scalar(select(Rule).where(Rule.name == SCRIPT))
        version = session.scalar(select(RuleVersion).where(RuleVersion.rule_id == rule.id))
        steps = {(op["op"], op.get("name")): op["id"] for op in version.plan["steps"]}  # a jump ends arm A
        split, wait = steps[("split", None)], steps[("wait", None)]
        send_a, send_b = steps[("send", "offer_a")], steps[("send", "offer_b")]
        today, old = _today(), _today() - 40
        rows = []

        def add(step, arm, day, metric, count):
            key = {"rule_id": rule.id, "version_id": version.id, "step": step, "arm": arm, "day": day}
            rows.append({**key, "metric": metric, "count": count})

        add("", "", today, "entered", 250)
        add("", "", old, "entered", 50)
        add(split, "A", today, "reached", 130)
        add(split, "B", today, "reached", 120)
        add(send_a, "A", today, "sent", 130)
        add(send_a, "A", today, "delivered", 128)
        add(send_a, "A", today, "opened:human", 60)
        add(send_a, "A", today, "opened:machine", 9)
        add(send_a, "A", today, "clicked:human", 26)
        add(send_a, "A", today, "clickers", 26)
        add(send_a, "A", today, "unsubscribed", 2)
        add(send_a, "A", today, "conversions", 4)  # attributed to this send (#13): 4 orders worth 199.60
        add(send_a, "A", today, "revenue", 1_996_000)
        add(send_b, "B", today, "sent", 120)
        add(send_b, "B", today, "failed", 3)
        add(send_b, "B", today, "clickers", 12)
        add(wait, "A", today, "reached", 130)
        add(wait, "A", today, "waited", 130)
        add(wait, "A", today, "left", 100)
        add(wait, "A", today, "passed", 100)
        add(BREAKOUT, "", today, "reached", 7)  # a step no plan knows, named with markup
        session.execute(insert(StatCounter.__table__), rows)
        session.commit()
        return {"id": rule.id, "split": split, "send_a": send_a, "send_b": send_b, "wait": wait}


def _cell(page: str, step: str, metric: str) -> str:
    row = re.search(rf'<tr data-step="{re.escape(step)}">(.*?)</tr>', page, re.S).group(1)
    return re.search(rf'data-metric="{metric}">(.*?)</td>', row, re.S).group(1)


@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
def test_every_role_reads_a_rule_s_results_and_changes_nothing(app, seeded, role):
    client = signed_in(app, role)
    page = client.get(f"/admin/results/rules/{seeded['id']}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    # the last 30 days by default: the 50 who entered 40 days ago are outside
    assert re.search(r'id="total-entered">250<', text)
    assert _cell(text, seeded["send_a"], "sent") == "130"
    assert '<svg class="chart chart-bars"' in text and 'role="img"' in text
    assert "<form" in text and 'method="post"' not in text.split('<main id="main"')[1].split("</main>")[0]
    assert client.post(f"/admin/results/rules/{seeded['id']}", data={"csrf_token": client.csrf}).status_code == 405
    listing = client.get("/admin/results/").get_data(as_text=True)
    assert f'href="/admin/results/rules/{seeded["id"]}?window=30d"' in listing
    assert 'href="/admin/results/"' in client.get("/admin/").get_data(as_text=True)  # the navigation


def test_the_funnel_shows_steps_sends_and_rates_people_and_machines_apart(app, seeded):
    client = signed_in(app, "viewer")
    text = client.get(f"/admin/results/rules/{seeded['id']}?window=7d").get_data(as_text=True)
    wait = seeded["wait"]
    assert [_cell(text, wait, metric) for metric in ("reached", "waiting", "passed")] == ["130", "30", "100"]
    send = re.search(rf'<table id="funnel-sends">.*?<tr data-step="{seeded["send_a"]}">(.*?)</tr>', text, re.S).group(1)
    assert 'data-metric="opened_human"><span class="count">60</span> <span class="rate">(46.2 %)</span>' in send
    assert 'data-metric="opened_machine"><span class="count">9</span> <span class="rate">(6.9 %)</span>' in send
    assert 'data-metric="clicked_human"><span class="count">26</span> <span class="rate">(20.0 %)</span>' in send
    assert 'data-metric="delivered"><span class="count">128</span> <span class="rate">(98.5 %)</span>' in send
    assert 'data-metric="unsubscribed"><span class="count">2</span> <span class="rate">(1.5 %)</span>' in send
    # the arms side by side: sample sizes, intervals, probability to beat the first arm (clicks: no goal)
    arms = text.split('<table class="arms">')[1].split("</table>")[0]
    assert 'data-arm="A" data-metric="exposed">130<' in arms and 'data-arm="B" data-metric="exposed">120<' in arms
    assert 'data-arm="A" data-metric="converted">26<' in arms and 'data-arm="B" data-metric="converted">12<' in arms
    assert "Probability to beat the first arm" in arms and re.search(r"\d+\.\d % – \d+\.\d %", arms)
    assert '<svg class="chart chart-bars"' in text.split('class="card split"')[1]
    # the conversions and revenue attributed to the rule, its send step and its arm
    assert re.search(r'id="total-revenue">199.60<', text) and re.search(r'id="total-conversions">4<', text)
    assert _cell(text, seeded["send_a"], "conversions") == "4" and _cell(text, seeded["send_a"], "revenue") == "199.60"
    assert _cell(text, wait, "conversions") == "0" and _cell(text, wait, "revenue") == "0.00"
    # ... and per arm, as in the steps: A's send earned the 4 orders, B's none (not "—": they are measured)
    attributed = arms.split("Conversions attributed")[1]
    assert re.findall(r'<td class="num">([^<]*)</td>', attributed)[:4] == ["4", "0", "199.60", "0.00"]


def test_deliveries_a_channel_does_not_report_are_not_shown_as_none_delivered(app, seeded):
    """SMTP confirms no delivery (the email channel declares ``delivery_receipts = False``): offer_b's 120 mails
    with no delivery report read "not reported" (a note under the table says why), not "0 (0.0 %)", in the table
    and beside the step's bar in the funnel chart; offer_a's 128 reported ones (reports set up) are counted. The core
    reads the declaration; an SMS provider's receipts are counted."""
    from server.web.results.view import unreported_deliveries

    client = signed_in(app, "viewer")
    text = client.get(f"/admin/results/rules/{seeded['id']}?window=7d").get_data(as_text=True)
    sends = text.split('<table id="funnel-sends">')[1].split("</table>")[0]
    not_reported = '<span class="not-reported">not reported</span>'
    assert _cell(sends, seeded["send_b"], "delivered") == not_reported
    note = text.split('<p class="hint" id="unreported-note">')[1].split("</p>")[0]
    assert " ".join(note.split()).startswith("Not reported: the email channel confirms no deliveries as a rule")
    chart = text.split('id="funnel-head"')[1].split("</svg>")[0]
    assert "120 sent, delivery not reported," in chart and "130 sent, 128 delivered," in chart
    assert " 0 delivered" not in chart
    assert _cell(sends, seeded["send_a"], "delivered").startswith('<span class="count">128</span>')
    assert _cell(sends, seeded["send_b"], "failed") == "3"
    channels = app.extensions["nudge.plugins"].channels
    assert "email" in unreported_deliveries(channels) and "sms" not in unreported_deliveries(channels)


def test_the_window_and_version_choose_what_is_counted(app, seeded):
    client = signed_in(app, "viewer")
    url = f"/admin/results/rules/{seeded['id']}"
    assert re.search(r'id="total-entered">300<', client.get(f"{url}?window=all").get_data(as_text=True))
    since = utcnow().date().toordinal() - 45
    from datetime import date

    day = date.fromordinal(since).isoformat()
    ended = date.fromordinal(since + 10).isoformat()
    custom = client.get(f"{url}?window=custom&since={day}&until={ended}").get_data(as_text=True)
    assert re.search(r'id="total-entered">50<', custom) and f"{day} to {ended}" in custom
    assert re.search(r'id="total-entered">300<', client.get(f"{url}?window=all&version=1").get_data(as_text=True))
    # the controls swap only the page's body (htmx)
    part = client.get(f"{url}?window=90d", headers={"HX-Request": "true", "HX-Target": "results-body"})
    body = part.get_data(as_text=True)
    assert part.status_code == 200 and body.startswith('<div id="results-body">') and "<html" not in body
    assert re.search(r'id="total-entered">300<', body)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("window=fortnight", "Unknown window &#39;fortnight&#39;"),
        ("window=custom", "A custom window needs its first day"),
        ("window=custom&since=yesterday", "since &#39;yesterday&#39; is not a day: write it as 2026-11-01"),
        ("window=custom&since=2026-11-10&until=2026-11-01", "The window ends before it starts"),
        ("version=9", "This rule has no version &#39;9&#39;: its versions are v1"),
        (f"version={SCRIPT}", "This rule has no version"),
        ("version=%C2%B2", "This rule has no version"),  # a digit to str.isdigit, not to int()
    ],
)
def test_a_bad_window_or_version_is_shown_not_a_server_error(app, seeded, query, message):
    client = signed_in(app, "viewer")
    for headers in ({}, {"HX-Request": "true", "HX-Target": "results-body"}):
        response = client.get(f"/admin/results/rules/{seeded['id']}?{query}", headers=headers)
        text = response.get_data(as_text=True)
        assert response.status_code == 422, text
        assert 'role="alert" id="results-errors"' in text and message in text
        assert "<script>alert" not in text
    bad = client.get("/admin/?window=fortnight")
    assert bad.status_code == 422 and "Unknown window" in bad.get_data(as_text=True)
    assert client.get("/admin/results/?window=custom&since=nope").status_code == 422
    assert client.get("/admin/results/rules/999999").status_code == 404
    assert client.get("/admin/results/rules/99999999999").status_code == 404


def test_hostile_rule_and_step_names_are_escaped_on_every_page(app, seeded):
    client = signed_in(app, "viewer")
    for url in (f"/admin/results/rules/{seeded['id']}?window=all", "/admin/results/", "/admin/", "/admin/rules/"):
        text = client.get(url).get_data(as_text=True)
        escaped(text, SCRIPT)
    rule_page = client.get(f"/admin/results/rules/{seeded['id']}").get_data(as_text=True)
    escaped(rule_page, BREAKOUT)  # the unknown step's id, in the table and in the chart
    assert rule_page.count("step &#34;&gt;&lt;img src=x onerror=alert(2)&gt;") >= 2


def test_the_dashboard_draws_the_instance_s_days_and_the_rules_that_sent_most(app, seeded):
    from server.models import Contact, Event

    with app.app_context():
        session = get_session()
        contact = Contact(email="e@example.com")
        session.add(contact)
        session.flush()
        session.add_all(Event(contact_id=contact.id, name="page.viewed", props={}) for _ in range(4))
        session.commit()
    client = signed_in(app, "viewer")
    response = client.get("/admin/?window=7d")
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert re.search(r'id="activity-events">4<', text) and re.search(r'id="activity-sent">250<', text)
    assert re.search(r'id="activity-failed">3<', text) and re.search(r'id="activity-unsubscribed">2<', text)
    assert re.search(r'id="activity-revenue">199.60<', text)
    today = utcnow().date().isoformat()
    row = re.search(rf"<tr><th scope=\"row\">{today}</th>(.*?)</tr>", text, re.S).group(1)
    assert re.findall(r">([\d.]+|—)<", row) == ["4", "250", "128", "3", "0", "2", "0", "199.60"]
    assert text.count('<svg class="chart chart-lines"') == 5  # events, sends, failures, unsubscribes, revenue
    top = text.split('id="top-senders-table"')[1].split("</table>")[0]
    assert f"/admin/results/rules/{seeded['id']}?window=7d" in top and ">250<" in top and "Quiet" not in top
    assert "Oldest pending send" in text


def test_attributed_conversions_and_revenue_are_drawn_where_the_stats_carry_them(app):
    """Revenue attribution (#13) adds ``conversions`` and ``revenue`` to steps, arms, totals and days: one macro
    draws them, "—" while they are absent or null; the dashboard's revenue line appears once days carry numbers."""
    from flask import render_template_string

    from server.web.results.view import activity_charts

    shown = '{% from "admin/results/_macros.html" import conversions, revenue %}{{ conversions(r) }}|{{ revenue(r) }}'
    with app.test_request_context():
        assert render_template_string(shown, r={"conversions": 3, "revenue": 1234.5}) == "3|1,234.50"
        assert render_template_string(shown, r={"conversions": 0, "revenue": 0}) == "0|0.00"
        assert render_template_string(shown, r={"revenue": None}) == "—|—"
        assert render_template_string(shown, r={}) == "—|—"
    days = [{"day": f"2026-11-0{d}", "events": d, "revenue": None} for d in (1, 2)]
    assert [title for title, _ in activity_charts(days)] == ["Events received"]
    days[1]["revenue"] = 99.5
    assert [title for title, _ in activity_charts(days)] == ["Events received", "Revenue"]
