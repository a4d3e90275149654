import pytest

from server.db import get_session
from server.models import Contact, ContactTag, Event, utcnow
from tests.helpers import load_rules


def _people(app):
    with app.app_context():
        session = get_session()
        for i in range(5):
            contact = Contact(email=f"s{i}@example.com", score=i * 10, fields={})
            if i % 2 == 0:
                contact.tags = [ContactTag(tag="vip")]
            session.add(contact)
            session.flush()
            if i >= 3:
                session.add(Event(contact_id=contact.id, name="order.paid", props={"total": i}, occurred_at=utcnow()))
        session.commit()


def test_segment_counts_and_members_are_live(app, api):
    _people(app)
    made = api.post("/segments", json={"name": "Big VIPs", "condition": 'tag == "vip" and contact.score >= 20'})
    assert made.status_code == 201, made.json
    assert made.json["count"] == 2
    members = api.get("/segments/Big VIPs/members").json
    assert [m["email"] for m in members["data"]] == ["s2@example.com", "s4@example.com"]
    api.post("/contacts", json={"email": "new@example.com", "score": 99, "tags": ["vip"]})
    assert api.get("/segments/Big VIPs").json["count"] == 3


def test_members_are_paginated(app, api):
    _people(app)
    api.post("/segments", json={"name": "all", "condition": "contact.score >= 0"})
    first = api.get("/segments/all/members?limit=2").json
    second = api.get(f"/segments/all/members?limit=2&cursor={first['next_cursor']}").json
    assert len(first["data"]) == 2 and len(second["data"]) == 2
    assert not {c["id"] for c in first["data"]} & {c["id"] for c in second["data"]}


def test_segments_use_events_and_other_segments(app, api):
    _people(app)
    api.post("/segments", json={"name": "buyers", "condition": "did order.paid within 30d"})
    nested = api.post("/segments", json={"name": "vip buyers", "condition": 'in segment "buyers" and tag == "vip"'})
    assert nested.json["count"] == 1
    assert api.post("/segments/preview", json={"condition": 'not in segment "buyers"'}).json["count"] == 3


def test_condition_errors_name_line_and_column(api):
    bad = api.post("/segments", json={"name": "x", "condition": "contact.score >"})
    assert bad.status_code == 422 and bad.json["field"] == "condition"
    assert bad.json["detail"].startswith("condition:1:")
    unknown = api.post("/segments/preview", json={"condition": 'contact.colour == "red"'})
    assert unknown.status_code == 422 and 'unknown contact field "colour"' in unknown.json["detail"]
    event = api.post("/segments/preview", json={"condition": 'event.url contains "/pricing"'})
    assert event.status_code == 422
    assert api.get("/segments").json == []


@pytest.mark.parametrize(
    "condition, detail",
    [
        ('tag == "vip" and\n   contact.colour == "red"', 'condition:2:4: unknown contact field "colour"'),
        ('contact.score >= 1 and (tag == "vip"', "condition:1:37: expected `)`, found the end of the condition"),
        ('tag == "vip")', "condition:1:13: expected the end of the condition, found `)`"),
        ('tag == "vip") or (true', "condition:1:13: expected the end of the condition, found `)`"),  # no escaping
        ('tag == "vip" and\n\n  contact.score > "3"', "condition:3:3: cannot compare a number with a string"),
    ],
)
def test_condition_errors_point_into_the_segments_own_text(api, condition, detail):
    response = api.post("/segments/preview", json={"condition": condition})
    assert response.status_code == 422 and response.json["field"] == "condition"
    assert response.json["detail"].startswith(detail + " (")


def test_matches_falls_back_to_the_evaluator(app, api):
    _people(app)
    response = api.post("/segments/preview", json={"condition": 'contact.email matches "^s[12]@"'})
    assert response.status_code == 200 and response.json["count"] == 2


def test_segment_update_and_delete(app, api):
    _people(app)
    api.post("/segments", json={"name": "hi", "condition": "contact.score > 30"})
    assert api.patch("/segments/hi", json={"condition": "contact.score > 0"}).json["count"] == 4
    assert api.delete("/segments/hi").status_code == 204
    assert api.get("/segments/hi").status_code == 404


def test_a_segment_in_use_is_not_deleted_and_none_may_contain_itself(app, api):
    api.post("/segments", json={"name": "buyers", "condition": "did order.paid within 30d"})
    api.post("/segments", json={"name": "vip buyers", "condition": 'in segment "buyers" and tag == "vip"'})
    load_rules(app, 'rule "Thanks"\nwhen form.submitted and in segment "vip buyers" then\n  tag "t"\nend\n')
    refused = api.delete("/segments/vip buyers")
    assert refused.status_code == 409 and "rule 'Thanks'" in refused.json["detail"]
    refused = api.delete("/segments/buyers")
    assert refused.status_code == 409 and "segment 'vip buyers'" in refused.json["detail"]
    assert api.get("/segments/buyers").status_code == 200  # nothing deleted
    loop = api.patch("/segments/buyers", json={"condition": 'in segment "vip buyers"'})
    assert loop.status_code == 422 and "would be in itself ('buyers' → 'vip buyers' → 'buyers')" in str(loop.json)
    assert api.get("/segments/buyers").json["condition"] == "did order.paid within 30d"
    itself = api.post("/segments", json={"name": "me", "condition": 'in segment "me"'})
    assert itself.status_code in (404, 422) and api.get("/segments/me").status_code == 404
