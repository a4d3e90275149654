"""ids are never reused: AUTOINCREMENT on SQLite, past every id still referenced; contacts.public_id

On SQLite every table with an integer ``id`` is rebuilt with AUTOINCREMENT (rows, indexes — the partial
``ix_enrolments_due`` too —, constraints and foreign keys are kept), and its ``sqlite_sequence`` is set to the
highest id still written anywhere: in the table, in another table's column, in an outbox key
(``enr:<enrolment>:<step>``, ``broadcast:<id>:<contact>``, ``form-confirm:<form>:<contact>:…``), in the
audit log. So an id freed before this upgrade (an erased contact's) is not handed out either. The rebuild
copies each table once: on a large install, expect it to take a while. PostgreSQL's sequences never go back;
there, only the public id is added.

``contacts.public_id`` is the random identifier signed links name a contact by; existing contacts get one.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

import re
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BATCH = 1000
#: audit_log target types whose target_id is a row id of a table
AUDIT_TARGETS = {"contact": "contacts", "rule": "rules", "template": "templates", "task": "tasks"}
#: table -> (table, column) pairs holding its ids
COLUMNS = {
    "enrolments": [("journey_log", "enrolment_id")],
    "events": [("enrolments", "event_id")],
    "messages": [("message_status_changes", "message_id")],
    "rules": [
        ("rule_versions", "rule_id"),
        ("enrolments", "rule_id"),
        ("journey_log", "rule_id"),
        ("trigger_timers", "rule_id"),
        ("schedule_timers", "rule_id"),
    ],
    "rule_versions": [("rules", "active_version_id"), ("enrolments", "version_id")],
    "api_keys": [("idempotency_keys", "api_key_id")],
}
#: table -> (table, JSON column, path) holding its ids
JSON_PATHS = {
    "contacts": [("audit_log", "detail", "$.merged_from")],
    "enrolments": [("messages", "data", "$.enrolment")],
    "messages": [("journey_log", "data", "$.message")],
    "rules": [("messages", "data", "$.rule")],
    "notes": [("audit_log", "detail", "$.note_id")],
}
#: outbox keys naming ids: (prefix, pattern, {table: group})
KEYS = [
    ("enr:", re.compile(r"enr:(\d+):"), {"enrolments": 1}),
    ("broadcast:", re.compile(r"broadcast:.*:(\d+)$"), {"contacts": 1}),
    ("form-confirm:", re.compile(r"form-confirm:(\d+):(\d+):"), {"forms": 1, "contacts": 2}),
]


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("contacts", sa.Column("public_id", sa.String(length=32), nullable=True))
    _backfill_public_ids(bind)
    if bind.dialect.name != "sqlite":
        op.alter_column("contacts", "public_id", existing_type=sa.String(length=32), nullable=False)
        op.create_unique_constraint(op.f("uq_contacts_public_id"), "contacts", ["public_id"])
        return
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "migration 0008 rebuilds tables, and with SQLite's foreign keys on that would delete "
            "rows; run it with `nudge db upgrade`, which turns them off for the migration"
        )
    for table in _tables_with_integer_ids(bind):
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": True}) as batch:
            if table == "contacts":
                batch.alter_column("public_id", existing_type=sa.String(length=32), nullable=False)
                batch.create_unique_constraint(batch.f("uq_contacts_public_id"), ["public_id"])
        _seed_sequence(bind, table, _highest_id(bind, table))


def downgrade() -> None:
    # AUTOINCREMENT stays: handing out ids again is what 0008 fixed, and nothing depends on it
    with op.batch_alter_table("contacts", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_constraint(batch.f("uq_contacts_public_id"), type_="unique")
        batch.drop_column("public_id")


def _backfill_public_ids(bind: sa.Connection) -> None:
    contacts = sa.table("contacts", sa.column("id", sa.Integer), sa.column("public_id", sa.String))
    ids = list(bind.execute(sa.select(contacts.c.id).where(contacts.c.public_id.is_(None))).scalars())
    change = contacts.update().where(contacts.c.id == sa.bindparam("cid")).values(public_id=sa.bindparam("pid"))
    for start in range(0, len(ids), BATCH):
        bind.execute(change, [{"cid": cid, "pid": secrets.token_urlsafe(16)} for cid in ids[start : start + BATCH]])


def _tables_with_integer_ids(bind: sa.Connection) -> list[str]:
    """Every table whose primary key is one integer ``id`` (contacts always: it gains a constraint)."""
    inspector = sa.inspect(bind)
    out = []
    for table in inspector.get_table_names():
        columns = {c["name"]: c for c in inspector.get_columns(table)}
        pk = inspector.get_pk_constraint(table)["constrained_columns"]
        if pk == ["id"] and isinstance(columns["id"]["type"], sa.Integer):
            out.append(table)
    return sorted(out)


def _highest_id(bind: sa.Connection, table: str) -> int:
    """The highest id of *table* still written anywhere: in it, or where other rows refer to it."""
    inspector = sa.inspect(bind)
    tables = set(inspector.get_table_names())
    queries = [f"SELECT max(id) FROM {table}"]
    refs = list(COLUMNS.get(table, []))
    if table == "contacts":  # every contact_id column, with a foreign key or without (engine tables)
        refs += [
            (t, "contact_id")
            for t in sorted(tables)
            if t != "contacts" and "contact_id" in {c["name"] for c in inspector.get_columns(t)}
        ]
    queries += [f"SELECT max({column}) FROM {other}" for other, column in refs if other in tables]
    queries += [
        f"SELECT max(CAST(json_extract({column}, '{path}') AS INTEGER)) FROM {other}"
        for other, column, path in JSON_PATHS.get(table, [])
        if other in tables
    ]
    queries += [
        f"SELECT max(CAST(target_id AS INTEGER)) FROM audit_log WHERE target_type = '{kind}' "
        "AND target_id GLOB '[0-9]*'"
        for kind, target in AUDIT_TARGETS.items()
        if target == table
    ]
    if table == "users":  # actors and task sources: "user:3"
        queries += [
            "SELECT max(CAST(substr(actor, 6) AS INTEGER)) FROM audit_log WHERE actor GLOB 'user:[0-9]*'",
            "SELECT max(CAST(substr(source, 6) AS INTEGER)) FROM tasks WHERE source GLOB 'user:[0-9]*'",
        ]
    highest = max((bind.exec_driver_sql(q).scalar() or 0 for q in queries), default=0)
    for prefix, pattern, groups in KEYS:
        if table in groups:
            highest = max(highest, _highest_in_keys(bind, prefix, pattern, groups[table]))
    return highest


def _highest_in_keys(bind: sa.Connection, prefix: str, pattern: re.Pattern[str], group: int) -> int:
    highest = 0
    for (key,) in bind.exec_driver_sql("SELECT key FROM messages WHERE key LIKE ?", (prefix + "%",)):
        match = pattern.match(key)
        if match:
            highest = max(highest, int(match.group(group)))
    return highest


def _seed_sequence(bind: sa.Connection, table: str, highest: int) -> None:
    """Raise (never lower) the next id SQLite hands out for *table* to above *highest*."""
    if bind.exec_driver_sql("SELECT 1 FROM sqlite_sequence WHERE name = ?", (table,)).scalar() is None:
        bind.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, highest))
    else:
        bind.exec_driver_sql("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (highest, table))
