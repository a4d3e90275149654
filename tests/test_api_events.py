import pytest

from .helpers import api_key, post_event


def test_missing_key_is_401_problem_json(client):
    response = client.post("/api/v1/events", json={})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert "nudge apikey create" in response.json["detail"]


def test_wrong_key_is_401(app, client):
    key = api_key(app)
    assert post_event(client, key[:-2] + "xx").status_code == 401
    assert post_event(client, "nk_ingest_deadbeef_nothing").status_code == 401


def test_admin_key_may_ingest(app, client):
    assert post_event(client, api_key(app, "admin")).status_code == 202


def test_malformed_json_is_400(app, client):
    response = client.post(
        "/api/v1/events",
        data="{nope",
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key(app)}"},
    )
    assert response.status_code == 400
    assert response.json["title"] == "Malformed JSON"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"event": "form.submitted"}, "contact"),
        ({"contact": {}, "event": "form.submitted"}, "contact"),
        ({"contact": {"email": "not-an-email"}, "event": "form.submitted"}, "contact.email"),
        ({"contact": {"email": "a@example.com"}, "event": "Form Submitted"}, "event"),
        ({"contact": {"email": "a@example.com"}, "event": "form.submitted", "props": [1]}, "props"),
        ({"contact": {"email": "a@example.com"}, "event": "form.submitted", "color": "red"}, "color"),
        ({"contact": {"email": "a@example.com"}, "event": "form.submitted", "occurred_at": "yesterday"}, "occurred_at"),
    ],
)
def test_invalid_events_are_422_and_store_nothing(app, client, body, field):
    from sqlalchemy import func, select

    from server.db import get_session
    from server.models import Contact, Event

    response = client.post("/api/v1/events", json=body, headers={"Authorization": f"Bearer {api_key(app)}"})
    assert response.status_code == 422, response.json
    assert response.json["field"] == field
    with app.app_context():
        session = get_session()
        assert session.scalar(select(func.count(Event.id))) == 0
        assert session.scalar(select(func.count(Contact.id))) == 0


def test_same_email_is_one_contact(app, client):
    key = api_key(app)
    first = post_event(client, key, email="x@example.com").json
    second = post_event(client, key, email="X@example.com", event="page.visited").json
    assert first["contact_id"] == second["contact_id"]
