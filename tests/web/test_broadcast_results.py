"""A broadcast's results through real parts: the SMTP server receives its mails, one person's click is followed
over HTTP and their order (with revenue) posted over the API, another person unsubscribes with the one-click POST
the mail's link serves; the workers' rollup counts it all under the broadcast, which its admin page shows — and
the journeys' overview and templates stay the journeys' own."""

from __future__ import annotations

import re

from server.db import get_session
from server.engine.funnel import broadcast_results
from server.engine.keys import broadcast_step
from server.engine.render import save_template
from server.models import BroadcastRecord, Contact, ContactTag, Segment

from ..helpers import api_key, post_event, run_worker, signed_in
from ..ui.conftest import live_server, ui_port  # noqa: F401  (fixtures: the app under waitress on a real port)
from .crm_helpers import post
from .test_email_tracking import FIREFOX, fetch, hrefs, parts
from .test_stats_funnel import base, config  # noqa: F401  (fixtures: the live server's URL, BASE_URL set to it)

OFFER = '<p>Spring: <a href="https://shop.example/spring">see it</a> <a href="{{ unsubscribe_url }}">leave</a></p>'


def _figures(page: str) -> dict[str, str]:
    return {k: v.strip() for k, v in re.findall(r'<td id="result-(\w+)">([^<]*)', page)}


def test_a_broadcast_s_clicks_unsubscribes_and_revenue_show_on_its_page(
    app,
    base,  # noqa: F811
    smtp_server,
    clock,
    runner,
):
    with app.app_context():
        session = get_session()
        save_template(session, "email", "offer", {"subject": "offer", "html": OFFER, "txt": "see it"})
        for n in range(3):
            session.add(Contact(email=f"b{n}@example.com", tags=[ContactTag(tag="vip")], fields={}))
        session.add(Segment(name="VIPs", condition='tag == "vip"'))
        session.commit()
    editor = signed_in(app, "editor")
    made = post(editor, "/admin/broadcasts/new", name="Spring", template="email:offer", segment="VIPs", when="now")
    assert made.status_code == 302, made.get_data(as_text=True)
    page_url = made.headers["Location"]
    run_worker(app)
    smtp_server.wait_for(3)
    by_to = {re.search(rb"^To: (\S+)\r$", raw, re.M).group(1).decode(): hrefs(parts(raw)[0]) for raw in smtp_server.raw}
    clock.advance(600)  # a person, well after delivery
    [click] = [h for h in by_to["b0@example.com"] if h.startswith(f"{base}/c/")]
    assert fetch(click, FIREFOX).status == 302
    [leave, *_] = [h for h in by_to["b1@example.com"] if h.startswith(f"{base}/u/")]
    assert fetch(leave, FIREFOX, "POST", "List-Unsubscribe=One-Click").status == 200
    run_worker(app)
    clock.advance(60)
    client, ingest, admin = app.test_client(), api_key(app), api_key(app, "admin")
    assert post_event(client, ingest, email="b0@example.com", event="order.completed", revenue=49.90).status_code == 202
    run_worker(app)  # the worker's own rollup makes the figures fresh

    page = editor.get(page_url).get_data(as_text=True)
    figures = _figures(page)
    assert (figures["sent"], figures["clickers"], figures["unsubscribed"], figures["bounced"]) == ("3", "1", "1", "0")
    assert (figures["conversions"], figures["revenue"]) == ("1", "49.90")  # as the Results pages write money
    assert page.count('<span class="hint">(33.3 %)</span>') == 2  # one click and one unsubscribe in three
    with app.app_context():
        session = get_session()
        ident = session.query(BroadcastRecord.ident).scalar()
        results = broadcast_results(session, ident)
    assert (results["sent"], results["clicked_human"], results["clickers"], results["unsubscribed"]) == (3, 1, 1, 1)
    # the same figures from the API and `nudge stats --broadcast`
    auth = {"Authorization": f"Bearer {admin}"}
    answer = client.get(f"/api/v1/stats/broadcasts/{ident}", headers=auth)
    assert answer.status_code == 200 and answer.get_json() == {"broadcast": ident, **results}
    missing = client.get(f"/api/v1/stats/broadcasts/{ident}x", headers=auth)
    assert missing.status_code == 404 and f"no broadcast '{ident}x'" in missing.get_data(as_text=True)
    table = runner.invoke(["stats", "--broadcast", ident])
    assert table.exit_code == 0, table.output
    heads, row = table.output.splitlines()
    figures_cli = dict(zip(heads.split()[1:], row.split()[1:], strict=True))
    assert (figures_cli["SENT"], figures_cli["CLICKED"], figures_cli["UNSUB"], figures_cli["CONV"]) == (
        "3",
        "1",
        "1",
        "1",
    )
    assert figures_cli["REVENUE"] == "49.9"
    unknown = runner.invoke(["stats", "--broadcast", "nope"])
    assert unknown.exit_code != 0 and "no broadcast 'nope'" in unknown.output
    assert "give no RULE" in runner.invoke(["stats", "Spring", "--broadcast", ident]).output
    # the journeys' own figures do not take the broadcast's in
    overview = client.get("/api/v1/stats/overview", headers={"Authorization": f"Bearer {admin}"}).get_json()
    assert overview["totals"]["sent"] == 0 and overview["totals"]["conversions"] == 0
    templates = client.get("/api/v1/stats/templates", headers={"Authorization": f"Bearer {admin}"}).get_json()
    assert templates["templates"] == []


def test_a_long_broadcast_id_gets_a_step_that_fits_and_stays_apart():
    short, long_a, long_b = broadcast_step("spring"), broadcast_step("x" * 80 + "a"), broadcast_step("x" * 80 + "b")
    assert short == "broadcast:spring"
    assert len(long_a) <= 64 and len(long_b) <= 64 and long_a != long_b
