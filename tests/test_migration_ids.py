"""Migration 0008 on an install with data: ids never reused, public ids for every contact, old links still safe."""

from datetime import timedelta

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask import Flask

from server.app import create_app
from server.consent import current_consent
from server.db import get_session, make_engine
from server.links import sign
from server.migrate import alembic_config, upgrade
from server.models import Base, Contact, Enrolment, Event, utcnow

TABLES_WITH_IDS = sorted(t.name for t in Base.metadata.sorted_tables if [c.name for c in t.primary_key] == ["id"])


def test_every_table_with_an_integer_id_declares_it_never_reused():
    assert "contacts" in TABLES_WITH_IDS and "messages" in TABLES_WITH_IDS
    assert [t for t in TABLES_WITH_IDS if not Base.metadata.tables[t].dialect_kwargs.get("sqlite_autoincrement")] == []


def _table(table_name, *keys):
    """A table with only the given columns, typed as the models type them (before 0008 there is no public_id)."""
    columns = Base.metadata.tables[table_name].columns
    return sa.table(table_name, *[sa.column(key, columns[key].type) for key in keys], sa.column("id", sa.Integer))


def _insert(conn, table_name, **values):
    """A row; returns its id when the table has one."""
    table = _table(table_name, *values)
    if "id" not in {c.name for c in Base.metadata.tables[table_name].primary_key}:
        conn.execute(sa.insert(table).values(**values))
        return None
    return conn.execute(sa.insert(table).values(**values).returning(table.c.id)).scalar_one()


def _contact(conn, email, created_at):
    return _insert(conn, "contacts", email=email, score=0, fields={}, created_at=created_at, updated_at=created_at)


def _counts(conn):
    """Rows per table, for the tables that exist at this revision (later migrations add some)."""
    present = set(sa.inspect(conn).get_table_names())
    return {
        name: conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar()
        for name in Base.metadata.tables
        if name in present
    }


def _before_0008(url):
    engine = make_engine(url)
    previous = ScriptDirectory.from_config(alembic_config(url)).get_revision("0008").down_revision
    upgrade(engine, previous)
    return engine


def test_upgrade_keeps_every_row_hands_out_no_freed_id_and_keeps_old_links_safe(config, backend, tmp_path):
    engine = _before_0008(config["DATABASE_URL"])
    now = utcnow()
    secret = Flask(__name__)
    secret.config["SECRET_KEY"] = config["SECRET_KEY"]
    with engine.begin() as conn:
        rule = _insert(conn, "rules", name="Welcome", status="active", created_at=now, updated_at=now)
        version = _insert(conn, "rule_versions", rule_id=rule, number=1, source="…", plan={}, created_at=now)
        conn.execute(sa.text("UPDATE rules SET active_version_id = :v"), {"v": version})
        kept = _contact(conn, "kept@example.com", now - timedelta(hours=1))
        gone = _contact(conn, "gone@example.com", now)
        for cid in (kept, gone):
            event = _insert(
                conn,
                "events",
                contact_id=cid,
                name="form.submitted",
                props={},
                source="api",
                occurred_at=now,
                received_at=now,
            )
            enrolment = _insert(
                conn,
                "enrolments",
                contact_id=cid,
                rule_id=rule,
                version_id=version,
                pc=1,
                state=1,
                entered=0,
                event_id=event,
            )
            _insert(
                conn, "journey_log", enrolment_id=enrolment, contact_id=cid, rule_id=rule, at=0, action="send", data={}
            )
            _insert(
                conn,
                "messages",
                key=f"enr:{enrolment}:s0",
                contact_id=cid,
                channel="email",
                template="welcome",
                status="sent",
                attempts=1,
                data={"enrolment": enrolment},
                created_at=now,
            )
            _insert(conn, "contact_tags", contact_id=cid, tag="vip", created_at=now)
        _insert(
            conn,
            "audit_log",
            at=now,
            actor="cli",
            action="contact.exported",
            target_type="contact",
            target_id=str(gone),
            detail={},
        )
    # links signed for the contact that is about to be erased, valid for years
    old_unsubscribe = sign("unsubscribe", {"c": gone, "ch": "email"}, app=secret)
    old_preferences = sign("preferences", {"c": gone}, app=secret)
    kept_unsubscribe = sign("unsubscribe", {"c": kept, "ch": "email"}, app=secret)
    with engine.begin() as conn:  # erased as 0007 erased: the messages stay, keyed by the gone enrolment
        messages = _table("messages", "contact_id", "data")
        conn.execute(sa.update(messages).where(messages.c.contact_id == gone).values(contact_id=None, data={}))
        for table in ("journey_log", "enrolments", "contact_tags", "events"):
            conn.execute(sa.text(f"DELETE FROM {table} WHERE contact_id = :c"), {"c": gone})
        conn.execute(sa.text("DELETE FROM contacts WHERE id = :c"), {"c": gone})
        highest_enrolment = conn.execute(sa.text("SELECT max(id) FROM enrolments")).scalar()
        newcomer = _contact(conn, "new@example.com", now + timedelta(seconds=2))  # after those links were signed
        if backend == "sqlite":
            assert newcomer == gone  # what 0007 did: the erased contact's id went to the next one
        before = _counts(conn)

    assert upgrade(engine) is True
    with engine.connect() as conn:
        after = _counts(conn)
        assert {name: after[name] for name in before} == before  # every row kept (new tables start empty)
        public_ids = conn.execute(sa.text("SELECT public_id FROM contacts")).scalars().all()
        assert len(public_ids) == 2 and len(set(public_ids)) == 2 and all(len(p) >= 20 for p in public_ids)
        if backend == "sqlite":
            schema = dict(conn.execute(sa.text("SELECT name, sql FROM sqlite_master")).all())
            assert [t for t in TABLES_WITH_IDS if "AUTOINCREMENT" not in schema[t]] == []
            assert schema["ix_enrolments_due"].endswith("WHERE state = 0")
            assert "REFERENCES contacts (id) ON DELETE CASCADE" in schema["events"]
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    engine.dispose()

    app = create_app(config)
    client = app.test_client()
    try:
        with app.app_context():
            session = get_session()
            session.add(Event(contact_id=newcomer, name="x", props={}))
            session.add(Enrolment(contact_id=newcomer, rule_id=rule, version_id=version, entered=0))
            contact = Contact(email="later@example.com", fields={})
            session.add(contact)
            session.commit()
            assert contact.id > max(gone, newcomer)
            assert session.scalar(sa.select(sa.func.max(Enrolment.id))) > highest_enrolment + 1  # past enr:<id> keys
            assert contact.public_id not in public_ids
            try:
                session.add(Event(contact_id=10**6, name="orphan", props={}))
                session.commit()
                raise AssertionError("foreign keys are not enforced after the upgrade")
            except sa.exc.IntegrityError:
                session.rollback()

        # the erased person's old links reach nobody, though the newcomer holds the same row id (on SQLite)
        assert client.post(f"/u/{old_unsubscribe}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
        assert client.get(f"/p/{old_preferences}").status_code == 404
        # an old link of a contact that existed when it was signed still works
        assert client.post(f"/u/{kept_unsubscribe}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
        with app.app_context():
            session = get_session()
            assert current_consent(session, newcomer, "email") is None
            assert current_consent(session, kept, "email") == "revoked"
    finally:
        app.extensions["nudge.queue"].close()
        app.extensions["nudge.db"].dispose()
