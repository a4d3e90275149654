from sqlalchemy import func, select

from server.db import get_session
from server.models import AuditEntry, Contact


def test_create_get_patch_and_list(api):
    created = api.post(
        "/contacts",
        json={
            "email": "Ana@Example.com",
            "first_name": "Ana",
            "phone": "+49 30 123456",
            "tags": ["vip", "beta"],
            "score": 5,
        },
    )
    assert created.status_code == 201, created.json
    contact = created.json
    assert contact["email"] == "ana@example.com" and contact["phone"] == "+4930123456"
    assert contact["tags"] == ["beta", "vip"]
    assert api.get(f"/contacts/{contact['id']}").json == contact
    patched = api.patch(f"/contacts/{contact['id']}", json={"stage": "customer", "tags": ["vip"], "first_name": None})
    assert patched.status_code == 200, patched.json
    assert (
        patched.json["stage"] == "customer" and patched.json["tags"] == ["vip"] and patched.json["first_name"] is None
    )
    listed = api.get("/contacts?tag=vip").json
    assert [c["id"] for c in listed["data"]] == [contact["id"]] and listed["next_cursor"] is None
    assert api.get("/contacts?tag=beta").json["data"] == []


def test_create_twice_is_409_naming_the_owner(api):
    first = api.post("/contacts", json={"email": "a@example.com"}).json
    again = api.post("/contacts", json={"email": "A@example.com"})
    assert again.status_code == 409
    assert again.json["field"] == "email" and str(first["id"]) in again.json["detail"]


def test_upsert_by_external_id_then_email(app, ingest):
    made = ingest.post("/contacts/upsert", json={"external_id": "u-1", "email": "b@example.com"})
    assert made.status_code == 201 and made.json["created"] is True
    by_email = ingest.post("/contacts/upsert", json={"email": "b@example.com", "first_name": "Bo", "tags": ["x"]})
    assert by_email.status_code == 200 and by_email.json["created"] is False
    assert by_email.json["contact"]["id"] == made.json["contact"]["id"]
    by_id = ingest.post("/contacts/upsert", json={"external_id": "u-1", "email": "new@example.com", "tags": ["y"]})
    assert by_id.json["contact"]["email"] == "new@example.com"
    assert by_id.json["contact"]["tags"] == ["x", "y"]  # upsert adds tags
    with app.app_context():
        assert get_session().scalar(select(func.count(Contact.id))) == 1


def test_upsert_announces_contact_updated_only_for_values_that_changed(app, ingest):
    """Upserting the values a contact has is no update for the rules; a change names only what changed (a new
    tag is its own ``tag.added``)."""
    from server.models import Event

    body = {"email": "c@example.com", "first_name": "Cy", "stage": "lead", "fields": {}}
    ingest.post("/contacts/upsert", json=body)
    assert ingest.post("/contacts/upsert", json=body).status_code == 200
    assert ingest.post("/contacts/upsert", json={**body, "stage": "customer", "tags": ["t"]}).status_code == 200
    with app.app_context():
        events = get_session().execute(select(Event.name, Event.props).order_by(Event.id)).all()
    assert [(name, props) for name, props in events] == [
        ("contact.created", {}),
        ("contact.updated", {"fields": ["stage"]}),
        ("tag.added", {"tag": "t"}),
    ]


def test_upsert_clash_of_email_and_external_id_is_409(ingest):
    ingest.post("/contacts/upsert", json={"external_id": "u-1", "email": "one@example.com"})
    ingest.post("/contacts/upsert", json={"external_id": "u-2", "email": "two@example.com"})
    clash = ingest.post("/contacts/upsert", json={"external_id": "u-1", "email": "two@example.com"})
    assert clash.status_code == 409 and clash.json["field"] == "email"


def test_ingest_key_cannot_read_contacts(ingest):
    response = ingest.get("/contacts")
    assert response.status_code == 403 and response.mimetype == "application/problem+json"


def test_custom_fields_are_typed(api):
    assert api.post("/fields", json={"name": "plan", "type": "string"}).status_code == 201
    assert api.post("/fields", json={"name": "renewal", "type": "date"}).status_code == 201
    assert api.post("/fields", json={"name": "seats", "type": "number"}).status_code == 201
    ok = api.post(
        "/contacts", json={"email": "c@example.com", "fields": {"plan": "pro", "renewal": "2026-12-01", "seats": 3}}
    )
    assert ok.status_code == 201 and ok.json["fields"] == {"plan": "pro", "renewal": "2026-12-01", "seats": 3}
    bad = api.post("/contacts", json={"email": "d@example.com", "fields": {"seats": "three"}})
    assert bad.status_code == 422 and bad.json["field"] == "fields.seats"
    unknown = api.post("/contacts", json={"email": "d@example.com", "fields": {"colour": "red"}})
    assert unknown.status_code == 422 and "POST /api/v1/fields" in unknown.json["detail"]
    removed = api.patch(f"/contacts/{ok.json['id']}", json={"fields": {"plan": None}})
    assert removed.json["fields"] == {"renewal": "2026-12-01", "seats": 3}
    assert api.post("/fields", json={"name": "email", "type": "string"}).status_code == 422


def test_cursor_pagination_walks_every_contact_once(api):
    for i in range(7):
        api.post("/contacts", json={"email": f"p{i}@example.com", "score": i % 3})
    seen, cursor = [], None
    while True:
        page = api.get("/contacts?limit=3&sort=-score" + (f"&cursor={cursor}" if cursor else "")).json
        seen += [(c["score"], c["id"]) for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 and len(set(seen)) == 7
    assert seen == sorted(seen, key=lambda s: (-s[0], -s[1]))


def test_forged_cursor_is_400(api):
    response = api.get("/contacts?cursor=eyJzIjoiaWQifQ.forged")
    assert response.status_code == 400 and response.json["field"] == "cursor"


def test_notes_consents_and_audit(app, api):
    cid = api.post("/contacts", json={"email": "n@example.com"}).json["id"]
    note = api.post(f"/contacts/{cid}/notes", json={"body": "<script>alert(1)</script> called"})
    assert note.status_code == 201 and note.json["body"].startswith("<script>")  # data stays data
    assert (
        api.post(
            f"/contacts/{cid}/consents", json={"channel": "email", "granted": True, "wording": "v2 newsletter"}
        ).status_code
        == 201
    )
    revoked = api.post(f"/contacts/{cid}/consents", json={"channel": "email", "granted": False})
    assert revoked.json["status"] == "revoked"
    ledger = api.get(f"/contacts/{cid}/consents").json
    assert ledger["current"] == {"email": "revoked"} and len(ledger["ledger"]) == 2
    events = api.get(f"/contacts/{cid}/events").json["data"]
    # contact.created (from the POST that made the contact), then the opt-out; newest first or oldest first
    assert sorted(e["name"] for e in events) == ["contact.created", "email.unsubscribed"]
    actions = [e["action"] for e in api.get(f"/audit?target_type=contact&target_id={cid}").json["data"]]
    assert actions == ["consent.recorded", "consent.recorded", "note.created", "contact.created"]
    with app.app_context():
        assert all(e.actor.startswith("apikey:") for e in get_session().scalars(select(AuditEntry)))


def test_tags_by_path(api):
    cid = api.post("/contacts", json={"email": "t@example.com"}).json["id"]
    assert api.put(f"/contacts/{cid}/tags/vip").json["tags"] == ["vip"]
    assert api.delete(f"/contacts/{cid}/tags/vip").json["tags"] == []
    # the path's tag is read as PUT stores it: " vip " names vip both ways (DELETE kept vip, answering 200)
    assert api.put(f"/contacts/{cid}/tags/%20gold%20").json["tags"] == ["gold"]
    assert api.delete(f"/contacts/{cid}/tags/%20gold%20").json["tags"] == []
