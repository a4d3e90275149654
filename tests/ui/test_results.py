"""Results in a real browser: a population goes through a rule (events over the API, the worker runs the journeys,
the SMTP server receives the mail, the engine's clock moves on, the scheduler's rollup counts), then a viewer opens
the rule's results from the rules list and every count on the page equals what GET /api/v1/rules/{name}/stats
returns for the same window and version, read over HTTP, also after the window and version controls swap the page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from server.db import get_session
from server.engine.jobs import requeue_due
from server.engine.render import save_template

from ..helpers import api_key, load_rules, post_event, run_worker
from .conftest import make_user, shot, sign_in

RULE = "Spring sale"
RULES = f"""rule "{RULE}"
  until order.placed
when form.submitted then
  split
    50%: send email offer_a
    50%: send email offer_b
  end
  wait 2d
  send email reminder
end
"""
EARLY = [f"early{n}@example.com" for n in range(8)]
LATE = [f"late{n}@example.com" for n in range(4)]
STEP_METRICS = ("reached", "waiting", "passed", "goal")
SEND_METRICS = (
    "sent",
    "delivered",
    "opened_human",
    "opened_machine",
    "clicked_human",
    "clicked_machine",
    "unsubscribed",
)


def _population(app, smtp_server, clock) -> None:
    """Eight people enter, four more a day later, two of the first buy (the goal); two days on, the first eight's
    wait is over (six get the reminder) while the late four still wait."""
    with app.app_context():
        session = get_session()
        for name in ("offer_a", "offer_b", "reminder"):
            save_template(session, "email", name, {"subject": name, "txt": f"{name}: see the spring sale"})
        session.commit()
    load_rules(app, RULES)
    client, ingest = app.test_client(), api_key(app)
    for address in EARLY:
        assert post_event(client, ingest, email=address).status_code == 202
    run_worker(app)
    smtp_server.wait_for(len(EARLY))
    clock.advance(86400)
    for address in LATE:
        assert post_event(client, ingest, email=address).status_code == 202
    for address in EARLY[:2]:
        assert post_event(client, ingest, email=address, event="order.placed").status_code == 202
    run_worker(app)
    smtp_server.wait_for(len(EARLY) + len(LATE))
    clock.advance(86400 + 3600)
    with app.app_context():
        requeue_due()
    run_worker(app)
    smtp_server.wait_for(len(EARLY) + len(LATE) + 6)
    with app.app_context():
        while requeue_due()["stats"]:  # the scheduler's ticks fold everything into the counters
            pass


def _api(page, key: str, query: str = "") -> dict:
    response = page.request.get(f"/api/v1/rules/Spring%20sale/stats{query}", headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200, response.text()
    return response.json()


def _number(locator) -> int:
    return int(locator.inner_text().strip())


def _assert_page_equals(page, funnel: dict) -> None:
    """Every count the page shows equals the API's: totals, each step, each send, each split arm."""
    for name in ("entered", "waiting", "completed", "goal", "stopped"):
        assert _number(page.locator(f"#total-{name}")) == funnel[name], name
    rows = page.locator("#funnel-steps tbody tr")
    assert rows.count() == len(funnel["steps"])
    for step in funnel["steps"]:
        row = page.locator(f'#funnel-steps tr[data-step="{step["step"]}"]')
        for metric in STEP_METRICS:
            assert _number(row.locator(f'td[data-metric="{metric}"]')) == step[metric], (step["step"], metric)
        if step["op"] == "send":
            send = page.locator(f'#funnel-sends tr[data-step="{step["step"]}"]')
            assert _number(send.locator('td[data-metric="sent"]')) == step["sent"]
            for metric in SEND_METRICS[1:]:
                cell = send.locator(f'td[data-metric="{metric}"]')
                if metric == "delivered" and step["channel"] == "email" and not step["delivered"]:
                    expect(cell).to_have_text("not reported")  # SMTP confirms no delivery
                else:
                    assert _number(cell.locator(".count")) == step[metric], metric
    for split in funnel["splits"]:
        table = page.locator(f'section[data-split="{split["step"]}"] table.arms')
        for arm in split["arms"]:
            for metric in ("exposed", "converted"):
                cell = table.locator(f'td[data-arm="{arm["name"]}"][data-metric="{metric}"]')
                assert _number(cell) == arm[metric], (arm["name"], metric)


@pytest.fixture
def key(app, page, smtp_server, clock) -> str:
    """After the population went through the rule, a viewer signed in on *page*; an admin API key to compare with."""
    _population(app, smtp_server, clock)
    make_user(app, "vi@example.com", role="viewer")
    sign_in(page, "vi@example.com")
    return api_key(app, "admin")


def test_a_rule_s_results_page_shows_the_counts_the_stats_api_returns(page, key, clock):

    page.goto("/admin/rules/")
    page.get_by_role("row", name=RULE).get_by_role("link", name="results", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Results of {RULE}")
    everything = _api(page, key)
    # the population as it went: 12 entered, 2 reached the goal, the late 4 still wait, 6 completed
    assert (everything["entered"], everything["goal"], everything["waiting"], everything["completed"]) == (12, 2, 4, 6)
    today = clock().date()
    since = (today - timedelta(days=29)).isoformat()
    month = _api(page, key, f"?since={since}")  # the page's default window: the last 30 days
    assert month["steps"] == everything["steps"] and month["splits"] == everything["splits"]
    _assert_page_equals(page, month)
    expect(page.locator("svg.chart-bars").first).to_have_attribute("role", "img")
    shot(page, "results-rule")

    # the controls swap the page's body: the last 7 days, then version 1 only
    page.get_by_label("Window").select_option("7d")
    page.wait_for_url(re.compile(r"window=7d"))
    seven = (today - timedelta(days=6)).isoformat()
    _assert_page_equals(page, _api(page, key, f"?since={seven}"))
    page.get_by_label("Version").select_option("1")
    page.wait_for_url(re.compile(r"version=1"))
    expect(page.locator("#r-version")).to_have_value("1")
    _assert_page_equals(page, _api(page, key, f"?since={seven}&version=1"))

    # a custom window before anything happened: nothing entered, as the API says
    page.get_by_label("Window").select_option("custom")
    old, ended = (today - timedelta(days=60)).isoformat(), (today - timedelta(days=50)).isoformat()
    page.get_by_label("Since (custom)").fill(old)
    page.get_by_label("Until (custom)").fill(ended)
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(rf"since={old}&until={ended}"))
    expect(page.locator("#results-scope")).to_contain_text(f"{old} to {ended}")
    quiet = _api(page, key, f"?since={old}&until={ended}&version=1")
    assert quiet["entered"] == 0
    _assert_page_equals(page, quiet)

    # a bad custom window says what is wrong, in the page
    page.get_by_label("Since (custom)").fill("")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#results-errors")).to_contain_text("A custom window needs its first day")


def test_deliveries_smtp_does_not_confirm_read_not_reported_in_the_table_and_the_chart(page, key):
    """The email channel declares no delivery receipts: its sends' delivered cells say "not reported" on one line
    (not a word a line in a narrow column), a note under the table says why, and the funnel chart's bars of those
    steps (the text beside them and their hover text) say "delivery not reported" instead of "0 delivered"."""
    page.goto("/admin/rules/")
    page.get_by_role("row", name=RULE).get_by_role("link", name="results", exact=True).click()
    funnel = _api(page, key)
    sends = [step for step in funnel["steps"] if step["op"] == "send"]
    assert len(sends) == 3 and all(step["channel"] == "email" and step["delivered"] == 0 for step in sends)
    for step in sends:
        cell = page.locator(f'#funnel-sends tr[data-step="{step["step"]}"] td[data-metric="delivered"]')
        expect(cell).to_have_text("not reported")
        label = cell.locator(".not-reported")
        # an inline box has one client rect a line: one means the words stay together
        assert label.evaluate("el => el.getClientRects().length") == 1
        assert label.evaluate("el => el.getBoundingClientRect().height") < 2 * label.evaluate(
            "el => parseFloat(getComputedStyle(el).lineHeight) || 20"
        )
    expect(page.locator("#unreported-note")).to_contain_text("the email channel confirms no deliveries")
    chart = page.locator("#funnel-head ~ figure svg.chart-bars")
    hover = [row.locator("> title").text_content() for row in chart.locator("g.bar").all()]
    assert [text for text in hover if text.startswith("send")] == [
        f"send {name} (line {line}): 6 sent, delivery not reported, 0 clicked"
        for name, line in (("offer_a", 5), ("offer_b", 6), ("reminder", 9))
    ]
    beside = chart.locator("text.chart-value").all_text_contents()
    assert beside.count("6 sent, delivery not reported, 0 clicked") == 3
    expect(chart).not_to_contain_text("delivered")
    # every column of the sends table is in view at 1280 pixels: nothing scrolled off to the side
    wrap = page.locator("#funnel-sends").locator("xpath=..")
    widths = wrap.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert widths[0] <= widths[1], f"the sends table scrolls sideways: {widths[0]} pixels wide in {widths[1]}"
    page.locator("#funnel-sends").scroll_into_view_if_needed()
    shot(page, "results-not-reported")


def test_the_dashboard_draws_the_instance_s_activity(page, key):
    page.goto("/admin/?window=7d")
    response = page.request.get("/api/v1/stats/overview?since=7d", headers={"Authorization": f"Bearer {key}"})
    totals = response.json()["totals"]
    assert _number(page.locator("#activity-sent")) == totals["sent"] == 18
    assert _number(page.locator("#activity-events")) == len(EARLY) + len(LATE) + 2
    expect(page.locator("#top-senders-table")).to_contain_text(RULE)
    page.get_by_text("Show the days as a table").click()
    expect(page.locator("#activity-table")).to_be_visible()
    shot(page, "dashboard-activity")
