"""Rules over the API: validate, save as versions, pause/resume, and the journey trace of a contact."""

from sqlalchemy import select

from server.models import Template

from ..helpers import api_key, post_event, run_worker

RULE = 'rule "Welcome"\nwhen form.submitted then\n  send email welcome\n  wait 1d\n  send email tips\nend\n'


def _auth(app):
    """An admin key; also stores the `tips` template the rule names (`welcome` is built in)."""
    from server.db import get_session
    from server.engine.render import save_template

    with app.app_context():
        session = get_session()
        if not session.scalar(select(Template.id).where(Template.name == "tips")):
            save_template(session, "email", "tips", {"subject": "Tips", "txt": "Some tips"})
            session.commit()
    return {"Authorization": f"Bearer {api_key(app, 'admin')}"}


def test_unknown_templates_are_errors_with_a_hint(app, client):
    headers = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    body = client.post("/api/v1/rules/validate", json={"text": RULE.replace("tips", "tipz")}, headers=headers).json
    assert body["valid"] is False
    assert 'unknown email template "tipz"' in body["errors"][0]


def test_validate_reports_every_problem_with_position(app, client):
    bad = 'rule "Oops"\nwhen form.submitted then\n  sned email welcome\n  send fax hello\nend\n'
    response = client.post("/api/v1/rules/validate", json={"text": bad, "filename": "oops.nudge"}, headers=_auth(app))
    assert response.status_code == 200
    body = response.json
    assert body["valid"] is False and len(body["errors"]) >= 2
    assert body["errors"][0].startswith("oops.nudge:3:3:")
    ok = client.post("/api/v1/rules/validate", json={"text": RULE}, headers=_auth(app)).json
    assert ok == {"valid": True, "errors": [], "warnings": [], "rules": ["Welcome"]}


def test_put_rules_saves_versions_and_nothing_when_invalid(app, client):
    headers = _auth(app)
    first = client.put("/api/v1/rules", json={"text": RULE}, headers=headers)
    assert first.status_code == 200
    assert first.json["changes"] == [
        {"name": "Welcome", "action": "create", "version": 1, "in_flight": 0, "details": []}
    ]
    again = client.put("/api/v1/rules", json={"text": RULE}, headers=headers).json
    assert again["changes"][0]["action"] == "unchanged"
    changed = client.put("/api/v1/rules", json={"text": RULE.replace("1d", "2d")}, headers=headers).json
    assert changed["changes"][0]["action"] == "update" and changed["changes"][0]["version"] == 2
    refused = client.put("/api/v1/rules", json={"text": "when then"}, headers=headers)
    assert refused.status_code == 422 and refused.mimetype == "application/problem+json"
    [rule] = client.get("/api/v1/rules", headers=headers).json["items"]
    assert (rule["name"], rule["version"], rule["status"]) == ("Welcome", 2, "active")
    versions = client.get(f"/api/v1/rules/{rule['id']}/versions", headers=headers).json["items"]
    assert [(v["number"], v["active"]) for v in versions] == [(2, True), (1, False)]


def test_pause_stops_new_entries_and_resume_restores_them(app, client, smtp_server):
    headers = _auth(app)
    client.put("/api/v1/rules", json={"text": RULE}, headers=headers)
    rule_id = client.get("/api/v1/rules", headers=headers).json["items"][0]["id"]
    assert client.post(f"/api/v1/rules/{rule_id}/pause", headers=headers).json["status"] == "paused"
    key = api_key(app)
    post_event(client, key, email="paused@example.com")
    run_worker(app)
    assert smtp_server.messages == []
    assert client.post(f"/api/v1/rules/{rule_id}/resume", headers=headers).json["status"] == "active"
    post_event(client, key, email="resumed@example.com")
    run_worker(app)
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["resumed@example.com"]


def test_ingest_keys_cannot_change_rules(app, client):
    response = client.put("/api/v1/rules", json={"text": RULE}, headers={"Authorization": f"Bearer {api_key(app)}"})
    assert response.status_code == 403


def test_journey_trace_of_a_contact(app, client, smtp_server):
    headers = _auth(app)
    client.put("/api/v1/rules", json={"text": RULE}, headers=headers)
    contact_id = post_event(client, api_key(app), email="trace@example.com").json["contact_id"]
    run_worker(app)
    smtp_server.wait_for(1)
    items = client.get(f"/api/v1/contacts/{contact_id}/journeys", headers=headers).json["items"]
    texts = [(i["rule"], i["text"]) for i in items]
    assert ("Welcome", "entered because form.submitted at " + items[0]["at"]) == texts[0]
    assert ("Welcome", "sent email welcome") in texts
    assert client.get("/api/v1/contacts/999999/journeys", headers=headers).status_code == 404
