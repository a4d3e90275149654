"""``nudge explain`` says why a rule whose trigger the contact's events match did *not* enrol them: the rule was
paused, its condition was false (which part), its entry policy refused, or the event is not processed yet.

Live: events posted over the API, a real worker, the real database; the CLI prints what the admin UI shows."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from server.contacts.editing import update_contact
from server.db import get_session
from server.engine.explain import journey_trace
from server.engine.missed import condition_text, not_enrolled
from server.engine.rules import pause
from server.models import Contact, Event

from ..helpers import api_key, load_rules, post_event, run_worker

RULES = """rule "Once only"
  once per contact
when form.submitted then
  tag "welcomed"
end

rule "Customers"
when form.submitted and contact.stage == "customer" and event.plan == "pro" then
  tag "customer-welcomed"
end

rule "Nurture"
when form.submitted then
  wait 3d
  tag "nurtured"
end

rule "Monthly"
  once per contact every 30d
when form.submitted then
  tag "monthly"
end

rule "Paused one"
when form.submitted then
  tag "never"
end

rule "Other event"
when order.paid then
  tag "buyer"
end
"""


def _contact(app, email):
    with app.app_context():
        session = get_session()
        contact = session.scalar(select(Contact).where(Contact.email == email))
        session.expunge(contact)
        return contact


def _explain(runner, ref, *rule):
    result = runner.invoke(["explain", ref, *rule])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_explain_says_why_each_rule_did_not_enrol_the_contact(app, client, runner):
    load_rules(app, RULES)
    with app.app_context():
        pause(get_session(), "Paused one")
        get_session().commit()
    key = api_key(app)
    assert post_event(client, key, email="ana@example.com", plan="pro").status_code == 202
    run_worker(app)
    assert post_event(client, key, email="ana@example.com", plan="free").status_code == 202
    run_worker(app)
    lines = _explain(runner, "ana@example.com")
    missed = [line.split("  ", 1)[1] for line in lines if "not enrolled" in line]
    first, second = (f"not enrolled by form.submitted (event {n})" for n in _event_ids(app, "form.submitted"))
    # per event in time order, per rule in rule order
    assert missed[0] == (
        f'Customers: {first}: its condition `contact.stage == "customer"` was unknown (a value it '
        "reads is not set) (checked with the contact as it is now)"
    )
    assert missed[1].startswith(f"Paused one: {first}: the rule was paused (since ")
    assert missed[2].startswith(f"Once only: {second}: its entry policy is `once` and the contact entered at ")
    assert missed[3].startswith(f'Customers: {second}: its condition `contact.stage == "customer"` was unknown')
    assert missed[4].startswith(f"Nurture: {second}: the contact was still in this journey (entered at ")
    assert missed[5].startswith(f"Monthly: {second}: its entry policy is `once every 30d` and the contact entered at ")
    assert missed[6].startswith(f"Paused one: {second}: the rule was paused")
    assert len(missed) == 7 and not [line for line in lines if "Other event" in line]
    # the journeys that did start are told as before, each once
    assert sum("Once only: entered because form.submitted" in line for line in lines) == 1
    # one rule: only its lines
    only = _explain(runner, "ana@example.com", "Customers")
    assert [line for line in only if "not enrolled" in line] == [line for line in lines if "Customers: not" in line]


def test_the_failing_part_of_the_condition_is_named_as_it_reads_now(app, client, runner):
    load_rules(app, RULES.split('rule "Nurture"')[0])
    key = api_key(app)
    post_event(client, key, email="bo@example.com", plan="free")
    run_worker(app)
    contact = _contact(app, "bo@example.com")
    with app.app_context():
        session = get_session()
        update_contact(session, session.get(Contact, contact.id), {"stage": "customer"}, actor="test")
        session.commit()
    line = next(line for line in _explain(runner, "bo@example.com") if "Customers: not enrolled" in line)
    assert line.endswith('its condition `event.plan == "pro"` was false (checked with the contact as it is now)')


def test_an_unprocessed_or_parked_event_has_enrolled_nobody_yet(app, client, runner):
    load_rules(app, RULES.split('rule "Customers"')[0])
    key = api_key(app)
    post_event(client, key, email="cy@example.com")  # not processed: no worker ran
    lines = _explain(runner, "cy@example.com")
    assert lines[0].endswith("Once only: not enrolled by form.submitted (event 1): the event is not processed yet")
    with app.app_context():
        session = get_session()
        session.execute(update(Event).values(attempts=5, error="database went away", parked_at=Event.received_at))
        session.commit()
    assert _explain(runner, "cy@example.com")[0].endswith(
        "the event is parked after 5 failed tries (database went away); `nudge messages unpark` tries it again"
    )


def test_the_trace_as_data_marks_each_line_with_its_kind(app, client):
    load_rules(app, RULES.split('rule "Customers"')[0])
    key = api_key(app)
    post_event(client, key, email="di@example.com")
    run_worker(app)
    post_event(client, key, email="di@example.com")
    run_worker(app)
    contact = _contact(app, "di@example.com")
    with app.app_context():
        session = get_session()
        trace = journey_trace(session, session.get(Contact, contact.id))
        assert [(line.kind, line.rule) for line in trace] == [
            ("journey", "Once only"),
            ("journey", "Once only"),
            ("journey", "Once only"),
            ("missed", "Once only"),
        ]
        assert [m.reason for m in not_enrolled(session, session.get(Contact, contact.id))] == ["entry"]


def test_conditions_are_written_back_in_the_rules_language():
    assert (
        condition_text(
            {
                "and": [
                    {"not": {"has_tag": "vip"}},
                    {"or": [{">=": [{"field": "score"}, 10]}, {"is_set": {"prop": "coupon"}}]},
                ]
            }
        )
        == 'tag != "vip" and (contact.score >= 10 or event.coupon is set)'
    )
    assert (
        condition_text({"did": "order.paid", "where": {">": [{"prop": "total"}, 50]}, "at_least": 2, "within": 2592000})
        == "did order.paid where event.total > 50 at least 2 times within 30d"
    )
    assert condition_text({"not": {"is_set": {"field": "phone"}}}) == "contact.phone is not set"
    assert condition_text({"segment": "VIP"}) == 'in segment "VIP"'


def _event_ids(app, name):
    with app.app_context():
        return list(get_session().scalars(select(Event.id).where(Event.name == name).order_by(Event.id)))


@pytest.mark.parametrize("ref", ["99999999999999999999999", "\u00b2", "0"])
def test_explain_of_an_id_no_contact_can_have_says_no_such_contact(app, runner, ref):
    result = runner.invoke(["explain", ref])
    assert result.exit_code == 1 and f"no contact with email, external id or id {ref!r}" in result.output
    assert "Traceback" not in result.output
