"""Small helpers shared by tests that drive the queue."""
from __future__ import annotations

from server.auth import create_api_key
from server.db import get_session
from server.queue import AppWorker, get_queue


def api_key(app, scope: str = "ingest") -> str:
    with app.app_context():
        return create_api_key(get_session(), scope)


def run_worker(app) -> None:
    """Run a real RQ worker over the app's queue until it is empty."""
    tq = get_queue(app)
    AppWorker([tq.queue], connection=tq.redis, app=app).work(burst=True, logging_level="WARNING")


def post_event(client, key: str, email: str = "a@example.com", event: str = "form.submitted", **props):
    return client.post("/api/v1/events", json={"contact": {"email": email}, "event": event, "props": props},
                       headers={"Authorization": f"Bearer {key}"})
