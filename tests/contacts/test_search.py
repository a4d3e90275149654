"""Finding contacts a page at a time (the admin UI's Contacts list): each search kind, keyset pages that cover
every match exactly once in order, the database-computed name keys, segments evaluated as the API does."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import event, select, update

from server.contact_search import SCAN_LIMIT, phone_prefix, search
from server.contacts import InvalidInput
from server.db import get_session
from server.engine.scope import Scope
from server.models import Contact, ContactTag, Segment

PEOPLE = [  # (email, first, last, phone, tags)
    ("ana.smith@example.com", "Ana", "Smith", "+4930111111", ["vip"]),
    ("anabel@example.com", "Anabel", "Jones", "+4930111222", []),
    ("bob@example.com", "Bob", "Anders", "+4940111333", ["vip"]),
    ("carla@example.com", None, "ANDERSSON", "+4930999444", ["vip", "b2b"]),
    ("dan@example.org", "Dan", None, None, []),
    ("eve@example.org", "Ana", "Smith", "+33611111555", []),
]


def _add(app, people=PEOPLE):
    with app.app_context():
        session = get_session()
        ids = []
        for email, first, last, phone, tags in people:
            contact = Contact(
                email=email,
                first_name=first,
                last_name=last,
                phone=phone,
                fields={},
                tags=[ContactTag(tag=t) for t in tags],
            )
            session.add(contact)
            session.flush()
            ids.append(contact.id)
        session.commit()
        return ids


def _all_pages(session, kind, query, limit):
    """Every page of a search, following the cursors: the emails in order, and how many pages."""
    emails, after, pages = [], None, 0
    while True:
        page = search(session, kind, query, after, limit=limit, scope=Scope.of)
        emails += [c.email for c in page.contacts]
        pages += 1
        if page.after is None:
            return emails, pages
        after = page.after


def test_each_kind_finds_its_contacts_in_its_order(app):
    _add(app)
    with app.app_context():
        s = get_session()
        assert [c.email for c in search(s, "email", "ANA").contacts] == ["ana.smith@example.com", "anabel@example.com"]
        # full names from their start, then last names alone; any case; each contact once
        assert [c.email for c in search(s, "name", "ana").contacts] == [
            "ana.smith@example.com",
            "eve@example.org",
            "anabel@example.com",
        ]  # "ana smith" < "anabel jones"
        assert [c.email for c in search(s, "name", "  ANA   SMI ").contacts] == [
            "ana.smith@example.com",
            "eve@example.org",
        ]
        assert [c.email for c in search(s, "name", "anders").contacts] == ["bob@example.com", "carla@example.com"]
        assert [c.email for c in search(s, "name", "dan").contacts] == ["dan@example.org"]
        assert [c.email for c in search(s, "phone", "+49 30").contacts] == [
            "ana.smith@example.com",
            "anabel@example.com",
            "carla@example.com",
        ]
        assert [c.email for c in search(s, "phone", "0049 (40) 111-333").contacts] == ["bob@example.com"]
        assert [c.email for c in search(s, "tag", "vip").contacts] == [
            "carla@example.com",
            "bob@example.com",
            "ana.smith@example.com",
        ]  # newest first
        assert search(s, "", "").contacts[0].email == "eve@example.org"
        assert search(s, "tag", "VIP").contacts == []  # tags are exact


def test_the_name_keys_follow_every_change_of_a_name(app):
    (ana, *_rest) = _add(app)
    with app.app_context():
        s = get_session()
        s.execute(update(Contact).where(Contact.id == ana).values(first_name="Zoë", last_name=None))  # a bulk write
        s.commit()
        assert [c.id for c in search(s, "name", "zo").contacts] == [ana]
        assert ana not in [c.id for c in search(s, "name", "smith").contacts]
        contact = s.get(Contact, ana)
        contact.last_name = "Quinn"  # an ORM write
        s.commit()
        assert [c.id for c in search(s, "name", "quinn").contacts] == [ana]


@pytest.mark.parametrize(
    "kind, query",
    [
        ("", ""),
        ("email", "user"),
        ("name", "ann"),
        ("name", "lee"),
        ("phone", "+4930"),
        ("tag", "many"),
        ("segment", "Many"),
    ],
)
def test_keyset_pages_cover_every_match_once_in_order(app, kind, query):
    # 23 matches (names tied, so the cursor's id breaks ties), 7 per page
    people = [
        (f"user{i:02}@example.com", "Ann" if i % 2 else "Anna", "Lee", f"+49301000{i:02}", ["many"]) for i in range(23)
    ]
    _add(app, people)
    with app.app_context():
        s = get_session()
        s.add(Segment(name="Many", condition='tag == "many"'))
        s.commit()
        whole = [c.email for c in search(s, kind, query, limit=100).contacts]
        assert len(whole) == 23
        paged, pages = _all_pages(s, kind, query, limit=7)
        assert paged == whole and pages == 4


def test_a_segment_without_an_sql_form_is_checked_contact_by_contact_a_stretch_at_a_time(app, monkeypatch):
    people = [(f"p{i}@{'keep' if i % 3 == 0 else 'drop'}.example", None, None, None, []) for i in range(30)]
    _add(app, people)
    monkeypatch.setattr("server.contact_search.SCAN_LIMIT", 10)
    with app.app_context():
        s = get_session()
        s.add(Segment(name="Keepers", condition='contact.email matches ".*@keep\\\\.example"'))
        s.commit()
        first = search(s, "segment", "Keepers", limit=50, scope=Scope.of)
        # ten contacts looked at (newest first), four of them members; the page says how far it looked
        assert [c.email for c in first.contacts] == ["p27@keep.example", "p24@keep.example", "p21@keep.example"]
        assert first.looked_to is not None and first.after == (first.looked_to,)
        found, pages = _all_pages(s, "segment", "Keepers", limit=50)
        assert found == [f"p{i}@keep.example" for i in range(27, -1, -3)] and pages == 3
        assert SCAN_LIMIT == 5000  # the real stretch


def test_the_segment_is_read_as_the_api_reads_it(app):
    ids = _add(app)
    with app.app_context():
        s = get_session()
        s.add(Segment(name="VIP Berliners", condition='tag == "vip" and contact.phone starts with "+4930"'))
        s.commit()
        assert [c.id for c in search(s, "segment", "VIP Berliners").contacts] == [ids[3], ids[0]]


@pytest.mark.parametrize(
    "kind, query, field, words",
    [
        ("phone", "call me", "q", "is not a phone number"),
        ("segment", "Nope", "q", "there is no segment named 'Nope'"),
        ("tag", "   ", "q", "type what to search for by tag"),
        ("country", "de", "by", "cannot search by 'country'"),
        ("email", "x" * 321, "q", "longer than 320"),
    ],
)
def test_bad_searches_say_what_is_wrong(app, kind, query, field, words):
    with app.app_context():
        with pytest.raises(InvalidInput, match=words) as caught:
            search(get_session(), kind, query)
        assert caught.value.field == field


def test_a_cursor_of_another_kind_of_search_is_refused(app):
    _add(app)
    with app.app_context(), pytest.raises(InvalidInput, match="belongs to another search"):
        search(get_session(), "name", "ana", (5,))


def test_phone_prefixes():
    assert phone_prefix("+49 30 123456") == "+4930123456"
    assert phone_prefix("030 123456", "DE") == "+4930123456"
    assert phone_prefix("0049 30") == "+4930"
    assert phone_prefix("4930") == "+4930"


def test_names_are_kept_by_the_database_for_rows_that_existed_before(app):
    """The keys are generated columns: nothing in the code path that writes a contact has to remember them."""
    _add(app)
    with app.app_context():
        keys = get_session().execute(select(Contact.name_key, Contact.last_name_key).order_by(Contact.id)).all()
    assert keys[0] == ("ana smith", "smith") and keys[3] == ("andersson", "andersson") and keys[4] == ("dan", None)


@pytest.mark.parametrize("kind, query, column", [("email", "ana", "email"), ("phone", "+4930", "phone")])
def test_an_address_prefix_is_one_index_range_on_every_database(app, kind, query, column):
    """The email and phone searches read one range of their column's index, from the prefix (or the cursor) to the
    prefix's end — never the index from the prefix to its end, nor the whole table. On PostgreSQL that needs the
    columns in the "C" collation (code point order, migration 0040): in a locale's order no range is safe."""
    _add(app)
    with app.app_context():
        session = get_session()
        statements: list[tuple[str, object]] = []
        engine = session.get_bind()

        def seen(conn, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith("SELECT") and "FROM contacts" in statement:
                statements.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", seen)
        try:
            found = search(session, kind, query).contacts
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert [c.email for c in found][:1] == ["ana.smith@example.com"]
        statement, parameters = statements[0]
        if engine.dialect.name == "sqlite":
            plan = " ".join(
                str(row[-1])
                for row in session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            )
            assert f"({column}>? AND {column}<?)" in plan, plan
        else:
            session.connection().exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny table: force the choice
            [[plan]] = session.connection().exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).all()
            text = json.dumps(plan)
            conds = re.findall(r'"Index Cond": "([^"]*)"', text)
            bounds = [re.search(rf"\(?{column}\)?(::text)? {op} ", c) for c in conds for op in (">=", "<")]
            assert len(conds) == 1 and all(bounds), text
            assert "starts_with" not in text
        session.rollback()
