"""Migration 0015 on an install holding contacts: the name keys are computed for the rows already there, tags get
their (tag, contact) index, and tasks start assigned to nobody."""

from __future__ import annotations

from sqlalchemy import inspect, text

from server.db import make_engine
from server.migrate import upgrade


def test_existing_contacts_get_their_name_keys_and_tasks_their_assignee(database_url):
    engine = make_engine(database_url)
    upgrade(engine, "0011")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO contacts (id, public_id, email, first_name, last_name, score, fields, created_at, "
                "updated_at) VALUES (1, 'p1', 'old@example.com', 'Ana', 'SMITH', 0, '{}', '2026-01-01', "
                "'2026-01-01'), (2, 'p2', 'bo@example.com', NULL, NULL, 0, '{}', '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(text("INSERT INTO contact_tags (contact_id, tag, created_at) VALUES (1, 'vip', '2026-01-01')"))
        conn.execute(
            text(
                "INSERT INTO tasks (contact_id, text, status, source, created_at) "
                "VALUES (1, 'Call', 'open', 'api', '2026-01-01')"
            )
        )
    upgrade(engine)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT name_key, last_name_key FROM contacts ORDER BY id")).all() == [
            ("ana smith", "smith"),
            ("", None),
        ]
        assert conn.execute(text("SELECT assigned_to FROM tasks")).scalar() is None
        conn.execute(text("UPDATE contacts SET last_name = 'Jones' WHERE id = 1"))  # kept by the database from now on
        assert conn.execute(text("SELECT name_key FROM contacts WHERE id = 1")).scalar() == "ana jones"
    indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("contact_tags")}
    assert indexes["ix_contact_tags_tag_contact"] == ["tag", "contact_id"] and "ix_contact_tags_tag" not in indexes
    contact_indexes = {ix["name"] for ix in inspect(engine).get_indexes("contacts")}
    assert {"ix_contacts_name_key", "ix_contacts_last_name_key"} <= contact_indexes
    engine.dispose()
