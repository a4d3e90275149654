"""API keys: listed without secrets, revoked at once, optionally expiring, every change audited."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from server.auth import create_api_key
from server.db import get_session
from server.models import ApiKey, AuditEntry, utcnow


def _events(client, key):
    return client.post(
        "/api/v1/events",
        headers={"Authorization": f"Bearer {key}"},
        json={"contact": {"email": "a@example.com"}, "event": "x.y"},
    )


def _audit(app):
    with app.app_context():
        return [
            (e.actor, e.action, e.target_id) for e in get_session().scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]


def test_cli_create_list_and_revoke(app, client, runner):
    created = runner.invoke(["apikey", "create", "--scope", "ingest", "--name", "shop", "--expires", "90d"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    prefix = key.split("_")[2]
    assert _events(client, key).status_code == 202
    listing = runner.invoke(["apikey", "list"])
    assert listing.exit_code == 0
    line = next(row for row in listing.output.splitlines() if row.startswith(prefix))
    assert "ingest" in line and "active" in line and "shop" in line
    assert (utcnow() + timedelta(days=90)).strftime("%Y-%m-%d") in line
    assert key.split("_", 3)[3] not in listing.output  # never the secret part
    with app.app_context():
        assert get_session().scalar(select(ApiKey.last_used_at).where(ApiKey.prefix == prefix)) is not None
        digest = get_session().scalar(select(ApiKey.key_hash).where(ApiKey.prefix == prefix))
    assert digest not in listing.output

    revoked = runner.invoke(["apikey", "revoke", prefix])
    assert revoked.exit_code == 0 and f"Revoked API key {prefix}" in revoked.output
    refused = _events(client, key)  # at once: no cache between the revocation and the next request
    assert refused.status_code == 401 and refused.json["title"] == "API key revoked"
    assert "revoked at" in refused.json["detail"]
    assert "revoked" in next(r for r in runner.invoke(["apikey", "list"]).output.splitlines() if r.startswith(prefix))
    assert ("cli", "apikey.created", prefix) in _audit(app) and ("cli", "apikey.revoked", prefix) in _audit(app)


def test_cli_refuses_a_bad_expiry_and_an_unknown_prefix(app, runner):
    bad = runner.invoke(["apikey", "create", "--scope", "ingest", "--expires", "soon"])
    assert bad.exit_code != 0 and "neither a span like 90d" in bad.output
    past = runner.invoke(["apikey", "create", "--scope", "ingest", "--expires", "2001-01-01"])
    assert past.exit_code != 0 and "not in the future" in past.output
    missing = runner.invoke(["apikey", "revoke", "deadbeef"])
    assert missing.exit_code != 0 and "no API key with prefix 'deadbeef'" in missing.output


def test_an_expired_key_is_refused_with_a_clear_401(app, client):
    with app.app_context():
        key = create_api_key(get_session(), "ingest", "old", expires_at=utcnow() - timedelta(seconds=1))
        fresh = create_api_key(get_session(), "ingest", "new", expires_at=utcnow() + timedelta(days=1))
    response = _events(client, key)
    assert response.status_code == 401 and response.mimetype == "application/problem+json"
    assert response.json["title"] == "API key expired"
    assert "expired at" in response.json["detail"] and "nudge apikey create" in response.json["detail"]
    assert _events(client, fresh).status_code == 202


def test_api_lists_creates_and_revokes_without_showing_secrets(app, client, api):
    made = api.post("/apikeys", json={"scope": "ingest", "name": "crm", "expires": "2099-01-01"})
    assert made.status_code == 201
    key, info = made.json["key"], made.json["api_key"]
    assert info["expires_at"] == "2099-01-01T00:00:00Z" and info["state"] == "active"
    assert _events(client, key).status_code == 202
    listed = api.get("/apikeys")
    assert listed.status_code == 200
    row = next(r for r in listed.json if r["prefix"] == info["prefix"])
    assert set(row) == {"prefix", "name", "scope", "created_at", "last_used_at", "expires_at", "revoked_at", "state"}
    assert row["last_used_at"] is not None
    assert key not in listed.get_data(as_text=True) and key.split("_", 3)[3] not in listed.get_data(as_text=True)

    gone = api.delete(f"/apikeys/{info['prefix']}")
    assert gone.status_code == 200 and gone.json["state"] == "revoked"
    assert _events(client, key).status_code == 401
    assert api.delete("/apikeys/ffffffff").status_code == 404
    admin = api.key.split("_")[2]
    assert (f"apikey:{admin}", "apikey.created", info["prefix"]) in _audit(app)
    assert (f"apikey:{admin}", "apikey.revoked", info["prefix"]) in _audit(app)


def test_api_refuses_a_bad_expiry_and_ingest_keys(api, ingest):
    response = api.post("/apikeys", json={"scope": "admin", "expires": "yesterday"})
    assert response.status_code == 422 and response.json["field"] == "expires"
    assert ingest.get("/apikeys").status_code == 403
