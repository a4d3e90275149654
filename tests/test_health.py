import pytest

from server.db import get_db, make_engine
from server.queue import get_queue
from tests.servers import free_port

from .helpers import api_key, load_rules, post_event, run_worker


def test_healthz_reports_database_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {
        "status": "ok",
        "checks": {"database": {"ok": True}, "redis": {"ok": True}, "delivery": {"ok": True}},
    }


def test_healthz_is_503_when_redis_is_down(app, client):
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    get_queue(app).close()  # reconnect to the dead address
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"]["redis"]["ok"] is False
    assert response.json["checks"]["database"]["ok"] is True


def test_healthz_is_503_when_the_database_is_down(app, client):
    db = get_db(app)
    db.engine.dispose()
    db.engine = make_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/gone")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"]["database"]["ok"] is False
    assert response.json["checks"]["redis"]["ok"] is True


# -- delivery: an SMTP server that refuses everything is visible -------------------------------------------------
@pytest.mark.parametrize(
    "refusal", ["451 4.3.2 System not accepting network messages", "550 5.7.1 <c1@example.com>: Relay access denied"]
)
def test_healthz_is_degraded_while_the_smtp_server_refuses_everything(app, client, smtp_server, refusal):
    load_rules(app)
    key = api_key(app)
    post_event(client, key, email="first@example.com")
    run_worker(app)
    smtp_server.wait_for(1)
    assert client.get("/healthz").json["status"] == "ok"

    smtp_server.handler.reject_with = refusal
    for n in range(3):
        post_event(client, key, email=f"c{n}@example.com")
    run_worker(app)
    public = client.get("/healthz")
    assert public.status_code == 200, "a load balancer keeps the node: it still serves"
    assert public.json == {
        "status": "degraded",
        "checks": {"database": {"ok": True}, "redis": {"ok": True}, "delivery": {"ok": False}},
    }
    assert client.get("/healthz?strict=1").status_code == 503, "monitors ask strictly to be paged"

    for headers, status in [({}, 401), ({"Authorization": f"Bearer {key}"}, 403)]:
        refused = client.get("/healthz?details=1", headers=headers)
        assert refused.status_code == status and refused.mimetype == "application/problem+json"
    detailed = client.get("/healthz?details=1", headers={"Authorization": f"Bearer {api_key(app, 'admin')}"})
    assert detailed.status_code == 200
    delivery = detailed.json["checks"]["delivery"]
    email = delivery["channels"]["email"]
    assert (email["ok"], email["failures"]) == (False, 3)
    assert email["last_error"].startswith(f"SMTP {refusal[:3]} at RCPT TO: ")
    assert email["last_sent_at"] is not None and email["last_error_at"] >= email["last_sent_at"]
    assert delivery["problems"] == ["channel email is failing"]
    if refusal.startswith("4"):  # deferred: retried later, so they wait, and the oldest one's age is reported
        assert delivery["sends"]["retrying"] == delivery["sends"]["pending"] == 3
        assert delivery["sends"]["oldest_pending_seconds"] >= 0
    assert delivery["engine"]["unprocessed_events"] == 0 and delivery["engine"]["parked_events"] == 0
    assert "@example.com" not in detailed.get_data(as_text=True), "no personal data, not even in an error text"

    smtp_server.handler.reject_with = None  # the server takes mail again: the next send clears it
    post_event(client, key, email="later@example.com")
    run_worker(app)
    assert client.get("/healthz").json["status"] == "ok"
    again = client.get("/healthz?details=1", headers={"Authorization": f"Bearer {api_key(app, 'admin')}"})
    assert again.json["checks"]["delivery"]["channels"]["email"]["failures"] == 0


def test_healthz_details_count_events_that_wait_for_a_worker(app, client):
    load_rules(app)
    post_event(client, api_key(app), email="waiting@example.com")  # no worker runs
    detailed = client.get("/healthz?details=1", headers={"Authorization": f"Bearer {api_key(app, 'admin')}"})
    engine = detailed.json["checks"]["delivery"]["engine"]
    assert engine["unprocessed_events"] == 1 and engine["oldest_unprocessed_seconds"] >= 0
    assert detailed.json["status"] == "ok", "a fresh event is not a stall"
