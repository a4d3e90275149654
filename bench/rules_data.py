"""Data for the admin UI's Rules, Users and API keys pages: about 50 rules with versions, drafts and paused ones,
enrolments across the contacts, seven days of journey log, test cases, users and API keys.

Enrolments and the journey log are written with ``INSERT … SELECT`` from the contacts (set-wise, seconds for
hundreds of thousands of rows): each contact is in three rules; a third of the journeys are done, some left
early, the rest mid-journey (held for a paused rule); they entered over the last fourteen days, so about half
count as "entered in the last 7 days".
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text

from tests.helpers import load_rules

RULES = 50
DAY = 86400


def rule_text(i: int, version: int) -> str:
    """Rule *i* at *version*: a few steps, waits and a branch, each version a little different."""
    return f"""rule "Journey {i:02d}"
when form.submitted and event.form == "form-{i}" then
  send email welcome_{i}
  wait {version}d
  if contact.score >= {10 + i} then
    tag "warm-{i}"
    send email offer_{i}
  else
    score +{version}
  end
  wait for order.paid up to 7d then
    tag "customer-{i}"
  else
    send email reminder_{i}
  end
end
"""


def fill_rules(app, contacts: int, now: int) -> list[int]:
    """Write the rules area's data; return the rule ids, the busiest first."""
    from server.auth import create_api_key, hash_password
    from server.db import get_session
    from server.engine import rules as store
    from server.engine.editing import check_rule_text, save_draft
    from server.models import Rule, RuleTest, Template, User, utcnow

    with app.app_context():  # the rules' templates, as an instance has them (the editor checks names against them)
        session = get_session()
        session.add_all(
            Template(
                channel="email",
                name=f"{kind}_{i}",
                parts={"subject": f"{kind} {i}", "txt": "Hello {{ contact.first_name }}", "html": "<p>Hello</p>"},
            )
            for i in range(RULES)
            for kind in ("welcome", "offer", "reminder")
        )
        session.commit()
    for version in (1, 2):
        load_rules(app, "".join(rule_text(i, version) for i in range(RULES)), "journeys.nudge")
    with app.app_context():
        session = get_session()
        ids = list(session.scalars(select(Rule.id).where(Rule.name.like("Journey %")).order_by(Rule.name)))
        plugins = app.extensions["nudge.plugins"]
        for number, rule_id in enumerate(ids):
            rule = session.get(Rule, rule_id)
            if number % 5 == 0:  # a draft newer than the active version
                source = rule_text(number, 3)
                checked = check_rule_text(session, plugins, source, rule)
                assert checked.plan is not None, [d.message for d in checked.diagnostics]
                save_draft(session, rule, source, checked.plan, "bench@example.com")
            if number % 10 == 9:
                store.pause(session, rule.name)
            session.add_all(
                RuleTest(
                    rule_id=rule_id,
                    name=f"case {k}",
                    contact={
                        "key": "ana@example.com",
                        "fields": {"email": "ana@example.com"},
                        "tags": [],
                        "timezone": "UTC",
                        "consent": {},
                    },
                    timeline='{"at": "2030-01-01T09:00:00Z", '
                    f'"event": "form.submitted", "props": {{"form": "form-{number}"}}}}\n',
                    expected=[],
                    passed=True,
                    report=[],
                    run_at=utcnow(),
                )
                for k in range(3)
            )
        session.add_all(
            User(
                email=f"user{k}@team.example",
                password_hash=hash_password(f"passphrase {k} long"),
                role=("admin", "editor", "viewer")[k % 3],
            )
            for k in range(20)
        )
        for k in range(20):
            create_api_key(session, ("ingest", "admin")[k % 2], name=f"key {k}")
        session.commit()
        _journeys(session, ids, contacts, now)
        session.commit()
    return ids


def _journeys(session: Any, ids: list[int], contacts: int, now: int) -> None:
    """Three enrolments per contact, with their journey log, set-wise."""
    paused = [rule_id for number, rule_id in enumerate(ids) if number % 10 == 9]
    for k in range(3):
        # contact c is in rule ids[(c * (k + 1) + k) % 50]: three different rules per contact
        session.execute(
            text(f"""
            INSERT INTO enrolments (contact_id, rule_id, version_id, pc, state, due, entered, finished)
            SELECT c.id, r.id, r.active_version_id,
                   CASE WHEN c.id % 3 = 0 THEN 9 ELSE 2 END,
                   CASE WHEN c.id % 3 = 0 THEN 1 WHEN c.id % 11 = 0 THEN 2
                        WHEN r.id IN ({",".join(map(str, paused)) or "0"}) THEN 3 ELSE 0 END,
                   CASE WHEN c.id % 3 = 0 THEN NULL ELSE :now + c.id % {DAY} END,
                   :now - (c.id * 7919 + {k} * 104729) % {14 * DAY},
                   CASE WHEN c.id % 3 = 0 THEN :now - (c.id * 7919 + {k} * 104729) % {14 * DAY} + {DAY}
                        ELSE NULL END
            FROM contacts c JOIN rules r ON r.id = (
                SELECT id FROM rules WHERE name = printf('Journey %02d', (c.id * {k + 1} + {k}) % {len(ids)}))
            WHERE c.id <= :contacts"""),
            {"now": now, "contacts": contacts},
        )
    # seven days of trace: entering, the first send and its wait, and the end for finished journeys
    for action, offset, data, where in (
        ("enter", 0, """'{"because": "form.submitted"}'""", "1 = 1"),
        ("send", 0, """'{"channel": "email", "template": "welcome", "step": "s1"}'""", "1 = 1"),
        ("wait", 1, f"""'{{"until": ' || (e.entered + {DAY}) || ', "why": "wait 1d", "step": "s2"}}'""", "1 = 1"),
        ("exit", DAY, """'{"reason": "completed"}'""", "e.state = 1"),
    ):
        session.execute(
            text(f"""
            INSERT INTO journey_log (enrolment_id, contact_id, rule_id, at, action, data)
            SELECT e.id, e.contact_id, e.rule_id, e.entered + {offset}, '{action}', {data}
            FROM enrolments e WHERE e.entered + {offset} >= :since AND {where}"""),
            {"since": now - 7 * DAY},
        )


__all__ = ["RULES", "fill_rules", "rule_text"]
