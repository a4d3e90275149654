"""Run in a child process by test_regex_bound.py: a hostile pattern through the worker and a segment.

Prints one JSON line with what came out; the parent kills it if it does not finish in time.
"""

from __future__ import annotations

import json
import sys

from sqlalchemy import select

HOSTILE = "a*a*a*a*a*a*b"
#: with a backtracking engine, 60 of these held a worker 4–7 s; 200 would hold it for hours
VALUE = "a" * 200


def main(config: dict) -> dict:
    from server.app import create_app
    from server.db import get_session
    from server.engine.scope import Scope
    from server.models import Event, Message
    from server.segments import compile_condition, count, iter_members

    from ..helpers import api_key, load_rules, run_worker

    app = create_app(config)
    rule = (
        f'rule "Hostile"\n  always\nwhen form.submitted and contact.first_name matches "{HOSTILE}" then\n'
        "  send email welcome\nend\n"
    )
    load_rules(app, rule)
    key = api_key(app)
    client = app.test_client()
    for email, name in (("plain@example.com", VALUE), ("ends-in-b@example.com", VALUE + "b")):
        response = client.post(
            "/api/v1/events",
            headers={"Authorization": f"Bearer {key}"},
            json={"contact": {"email": email, "first_name": name}, "event": "form.submitted"},
        )
        assert response.status_code == 202, response.get_json()
    run_worker(app)  # the evaluator, in a real worker
    with app.app_context():
        session = get_session()
        tree = compile_condition(session, f'contact.first_name matches "{HOSTILE}"').tree
        out = {
            "unprocessed": len(session.scalars(select(Event).where(Event.processed_at.is_(None))).all()),
            "messages": sorted(m.data.get("to") or str(m.contact_id) for m in session.scalars(select(Message))),
            "segment_count": count(session, tree, scope=Scope.of),
            "segment_members": [c.email for c in iter_members(session, tree, scope=Scope.of)],
        }
    app.extensions["nudge.queue"].close()
    app.extensions["nudge.db"].dispose()
    return out


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
