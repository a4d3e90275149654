""" "Try it" through the test client: a made-up contact and a timeline run through the real simulation show sends,
waits, branches and suppressions with their reasons; bad input says what is wrong; a try kept as a test case runs
again on every save, and a failing case is flagged."""

from __future__ import annotations

import html
import json
import re

from sqlalchemy import select

from server.db import get_session
from server.models import Rule, RuleTest

from ..helpers import signed_in
from .test_admin_rules import _flash, _form, _page_flash

HX = {"HX-Request": "true", "HX-Current-URL": "http://localhost/admin/rules/new"}
ONBOARDING = """\
rule "Onboarding"
when form.submitted then
  send email welcome
  wait 1d
  if has tag "vip" then
    send email vip_offer
  else
    send sms reminder
  end
end
"""
START = '{"at": "2026-03-02T09:00:00Z", "event": "form.submitted", "props": {"plan": "pro"}}'


def _try(client, url="/admin/rules/try", source=ONBOARDING, **form):
    fields = {
        "fields": "email = ana@example.com\nphone = +4915112345678\nfirst_name = Ana",
        "tags": "",
        "timezone": "Europe/Berlin",
        "consent_email": "granted",
        "consent_sms": "",
        "timeline": START,
        **form,
    }
    return _form(client, url, hx=True, source=source, **fields)


def _lines(response) -> list[str]:
    text = response.get_data(as_text=True)
    return [
        " ".join(html.unescape(re.sub(r"<[^>]+>", " ", item)).split())
        for item in re.findall(r'<li class="try-line[^"]*">(.*?)</li>', text, re.S)
    ]


def test_a_try_shows_sends_waits_branches_and_suppressions_with_their_reasons(app):
    editor = signed_in(app, "editor")
    answer = _try(editor, tags="vip, trial")
    assert answer.status_code == 200
    lines = _lines(answer)
    assert lines[0].startswith("2026-03-02 09:00:00 UTC enter entered because form.submitted")
    assert "2026-03-02 09:00:00 UTC send sent email welcome" in lines
    assert "2026-03-02 09:00:00 UTC wait waited until 2026-03-03T09:00:00Z (wait 1d)" in lines
    assert '2026-03-03 09:00:00 UTC branch took `then` because `has tag "vip"` was true' in lines
    assert "2026-03-03 09:00:00 UTC send sent email vip_offer" in lines
    assert "2 send(s)" in answer.get_data(as_text=True) and "nothing was sent" in answer.get_data(as_text=True)
    # tags written as on a contact's page (";") are read the same way
    assert _lines(_try(editor, tags="trial; vip")) == lines

    # no tag: the other branch, an SMS without consent, suppressed and saying why
    plain = _lines(_try(editor))
    assert '2026-03-03 09:00:00 UTC branch took `else` because `has tag "vip"` was false' in plain
    suppressed = [line for line in plain if " suppressed " in line]
    assert len(suppressed) == 1 and suppressed[0].startswith(
        "2026-03-03 09:00:00 UTC suppressed did not send sms reminder: "
    )
    # revoked email consent: even the welcome is suppressed
    revoked = _lines(_try(editor, consent_email="revoked"))
    assert not any(" send sent email welcome" in line for line in revoked)
    assert any(line.startswith("2026-03-02 09:00:00 UTC suppressed did not send email welcome: ") for line in revoked)


def test_a_try_changes_nothing_on_the_instance(app):
    editor = signed_in(app, "editor")
    assert _try(editor).status_code == 200
    with app.app_context():
        from server.models import Contact, Message

        session = get_session()
        assert session.scalar(select(Contact.id)) is None and session.scalar(select(Message.id)) is None
        assert session.scalar(select(Rule.id)) is None


def test_bad_tries_say_what_is_wrong_and_where(app):
    editor = signed_in(app, "editor")
    cases = [
        ({"fields": "first name = Ana"}, "fields, line 1: write `name = value`"),
        ({"timezone": "Mars/Olympus"}, "time zone: 'Mars/Olympus' is not a time zone"),
        ({"consent_email": "maybe"}, "consent for email: choose granted, revoked or not recorded"),
        ({"timeline": START + "\n{oops"}, "timeline:2: not valid JSON"),
        (
            {"timeline": '{"at": "2026-03-02 09:00", "event": "form.submitted"}'},
            "timeline:1: '2026-03-02 09:00' has no time zone",
        ),
        ({"timeline": ""}, "the timeline is empty"),
        ({"source": ONBOARDING.replace("wait 1d", "wait 1")}, "The rule does not check, so it cannot run: "),
    ]
    for form, message in cases:
        answer = _try(editor, **form)
        text = html.unescape(answer.get_data(as_text=True))
        assert answer.status_code == 422 and message in text, (form, text)
        assert "<script" not in text


def test_the_sample_timeline_starts_with_the_trigger_and_each_awaited_event(app):
    editor = signed_in(app, "editor")
    rule = (
        'rule "Trial"\nwhen trial.started then\n  wait for order.paid up to 3d then\n    stop\n  end\n'
        "  send email welcome\nend\n"
    )
    answer = _form(editor, "/admin/rules/sample", hx=True, source=rule)
    text = html.unescape(re.search(r"<textarea[^>]*>(.*?)</textarea>", answer.get_data(as_text=True), re.S).group(1))
    events = [json.loads(line) for line in text.splitlines()]
    assert [e["event"] for e in events] == ["trial.started", "order.paid"]
    assert events[0]["at"].endswith("Z") and events[0]["at"] < events[1]["at"]


def test_a_kept_test_case_runs_on_every_save_and_a_failing_one_is_flagged(app):
    from server.models import Template

    with app.app_context():  # saving checks the instance's templates (a try assumes every one exists)
        get_session().add_all(
            [
                Template(channel="email", name="vip_offer", parts={"subject": "x", "txt": "y"}),
                Template(channel="sms", name="reminder", parts={"txt": "y"}),
            ]
        )
        get_session().commit()
    editor = signed_in(app, "editor")
    assert _form(editor, "/admin/rules/new", source=ONBOARDING).status_code == 302
    assert _page_flash(editor, "/admin/rules/") == [
        "Saved v1 of 'Onboarding' as a draft (1 warning(s)); it runs once you activate it."
    ]  # `send sms` without quiet hours
    with app.app_context():
        rule_id = get_session().scalar(select(Rule.id))
    kept = _try(editor, f"/admin/rules/{rule_id}/tests", tags="vip", case_name="VIP gets the offer")
    assert kept.status_code == 200
    assert _flash(kept) == ["Kept test case 'VIP gets the offer': it expects 2 send(s) and runs again on every save."]
    assert "VIP gets the offer" in kept.get_data(as_text=True) and "passes" in kept.get_data(as_text=True)
    with app.app_context():
        case = get_session().scalar(select(RuleTest))
        assert [(s["channel"], s["template"], s["at"]) for s in case.expected] == [
            ("email", "welcome", "2026-03-02T09:00:00Z"),
            ("email", "vip_offer", "2026-03-03T09:00:00Z"),
        ]
        assert case.contact["tags"] == ["vip"] and case.timeline == START
    twice = _try(editor, f"/admin/rules/{rule_id}/tests", case_name="VIP gets the offer")
    assert twice.status_code == 422 and "exists already" in _flash(twice)[0]

    # a change that breaks the case: saved (drafts may differ), the case is flagged with what differed
    assert _form(editor, f"/admin/rules/{rule_id}", source=ONBOARDING.replace("wait 1d", "wait 2d")).status_code == 302
    flashes = _page_flash(editor, f"/admin/rules/{rule_id}")
    assert flashes[0].startswith("Saved v2 of 'Onboarding' as a draft")
    assert flashes[1] == (
        "Test case 'VIP gets the offer' fails: expected email vip_offer to contact at "
        "2026-03-03T09:00:00Z, not sent; sent email vip_offer to contact at 2026-03-04T09:00:00Z, "
        "not expected"
    )
    page = editor.get(f"/admin/rules/{rule_id}").get_data(as_text=True)
    assert "fails" in page and "not expected" in page
    with app.app_context():
        case = get_session().scalar(select(RuleTest))
        assert case.passed is False and len(case.report) == 2

    assert _form(editor, f"/admin/rules/{rule_id}", source=ONBOARDING + "\n").status_code == 302
    assert "All 1 test case(s) pass." in _page_flash(editor, f"/admin/rules/{rule_id}")

    gone = _form(editor, f"/admin/rules/{rule_id}/tests/{case.id}/delete", hx=True)
    assert gone.status_code == 200 and _flash(gone) == ["Deleted test case 'VIP gets the offer'."]
    with app.app_context():
        assert get_session().scalar(select(RuleTest.id)) is None
    assert _form(editor, f"/admin/rules/{rule_id}/tests/{case.id}/delete", hx=True).status_code == 404
