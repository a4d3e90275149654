"""Migration 0014 on an install holding rules: every version saved so far was activated as it was saved, so none
becomes a draft; who saved it is not known; test cases get their table."""

from __future__ import annotations

from sqlalchemy import inspect, text

from server.db import make_engine
from server.migrate import upgrade


def test_existing_versions_count_as_activated_when_saved_and_keep_running(database_url):
    engine = make_engine(database_url)
    upgrade(engine, "0011")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO rules (name, status, active_version_id, origin, created_at, updated_at) "
                "VALUES ('Welcome', 'active', 1, 'rules', '2026-01-01', '2026-01-01')"
            )
        )
        for number, saved in ((1, "2026-01-01 10:00:00"), (2, "2026-02-01 10:00:00")):
            conn.execute(
                text(
                    "INSERT INTO rule_versions (rule_id, number, source, plan, created_at) "
                    "VALUES (1, :n, '', '{}', :at)"
                ),
                {"n": number, "at": saved},
            )
    upgrade(engine)
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT number, activated_at, created_at, actor FROM rule_versions ORDER BY number"))
        for number, activated, created, actor in rows:
            assert activated is not None and str(activated)[:19] == str(created)[:19] and actor is None, number
        assert conn.execute(text("SELECT status FROM rules")).scalar() == "active"
    assert "rule_tests" in inspect(engine).get_table_names()
    engine.dispose()
