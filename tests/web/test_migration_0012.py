"""Migration 0012 on an install holding users: everyone who could sign in before stays an admin."""

from __future__ import annotations

from sqlalchemy import text

from server.db import make_engine
from server.migrate import upgrade


def test_existing_users_become_admins_and_later_rows_start_as_viewers(database_url):
    engine = make_engine(database_url)
    upgrade(engine, "0011")
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO users (email, password_hash, created_at) VALUES ('old@example.com', 'x', '2026-01-01')")
        )
    upgrade(engine)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT role, disabled_at FROM users")).one() == ("admin", None)
        conn.execute(
            text("INSERT INTO users (email, password_hash, created_at) VALUES ('new@example.com', 'x', '2026-01-02')")
        )
        assert conn.execute(text("SELECT role FROM users WHERE email = 'new@example.com'")).scalar() == "viewer"
    engine.dispose()
