import csv

import pytest
from sqlalchemy import func, select

from server.consent import suppress
from server.contacts import InvalidInput, address_channels, define_field
from server.contacts.importer import import_text, parse_mapping
from server.db import get_session
from server.models import AuditEntry, Contact, Event


def _import(app, text, **kwargs):
    with app.app_context():
        return import_text(
            get_session(),
            text,
            secret=app.config["SECRET_KEY"],
            channels=address_channels(app.extensions["nudge.plugins"]),
            **kwargs,
        )


def _contacts(app):
    with app.app_context():
        return {c.email or c.external_id: c for c in get_session().scalars(select(Contact))}


def test_import_validates_normalises_and_dedupes(app):
    with app.app_context():
        define_field(get_session(), "plan", "string")
        define_field(get_session(), "seats", "number")
        get_session().commit()
    text = (
        "E-Mail,First Name,Phone,Plan,Seats,Tags,Notes\n"
        "Ana@Example.com,Ana,+49 30 123456,pro,3,vip;beta,x\n"
        "bad-address,Bo,,,,,\n"
        "cy@example.com,Cy,,free,lots,,\n"
        "ana@example.com,,,team,5,new,\n"
        "dee@example.com,Dee,12,,,,\n"
    )
    report = _import(app, text, mapping=parse_mapping(["E-Mail=email", "Notes=-"]), tags=["imported"])
    assert (report.rows, report.created, report.merged_in_file) == (5, 1, 1)
    errors = {(e.line, e.column): e.reason for e in report.errors}
    assert set(errors) == {(3, "E-Mail"), (4, "Seats"), (6, "Phone")}
    assert "not a valid address" in errors[(3, "E-Mail")] and "not a phone number" in errors[(6, "Phone")]
    ana = _contacts(app)["ana@example.com"]
    assert ana.phone == "+4930123456" and ana.first_name == "Ana"
    assert ana.fields == {"plan": "team", "seats": 5}  # the later row wins
    with app.app_context():
        tags = sorted(t.tag for t in get_session().get(Contact, ana.id).tags)
    assert tags == ["beta", "imported", "new", "vip"]


def test_import_merges_into_existing_contacts(app):
    _import(app, "email,external_id,first_name\na@example.com,,Old\n")
    report = _import(app, "email,external_id,first_name\nA@example.com,crm-1,New\nb@example.com,,B\n")
    assert (report.created, report.updated) == (1, 1)
    a = _contacts(app)["a@example.com"]
    assert a.external_id == "crm-1" and a.first_name == "New"
    again = _import(app, "external_id,last_name\ncrm-1,Smith\n")
    assert again.updated == 1 and _contacts(app)["a@example.com"].last_name == "Smith"


def test_rows_naming_two_contacts_are_rejected(app):
    _import(app, "email,external_id\none@example.com,1\ntwo@example.com,2\n")
    report = _import(app, "email,external_id\ntwo@example.com,1\n")
    assert report.updated == 0 and "merge" in report.errors[0].reason


@pytest.mark.parametrize(
    "header,mapping,message",
    [
        ("email,company\n", [], "column 'company' matches no contact field"),
        ("name\n", ["name=first_name"], "no column maps to email or external_id"),
        ("email\n", ["Mail=email"], "does not have"),
        ("", [], "the file is empty"),
    ],
)
def test_unmappable_headers_import_nothing(app, header, mapping, message):
    with pytest.raises(InvalidInput, match=message):
        _import(app, header + "x@example.com\n" if header else "", mapping=parse_mapping(mapping))
    assert _contacts(app) == {}


def test_reimport_of_an_erased_address_is_created_but_suppressed(app):
    with app.app_context():
        suppress(get_session(), app.config["SECRET_KEY"], "email", "gone@example.com", "erased")
        get_session().commit()
    report = _import(app, "email\ngone@example.com\nnew@example.com\n")
    assert report.created == 2 and report.suppressed == 1


def test_import_is_audited(app):
    _import(app, "email\nq@example.com\n")
    with app.app_context():
        entry = get_session().scalar(select(AuditEntry).where(AuditEntry.action == "contacts.imported"))
        assert entry.actor == "cli" and entry.detail["created"] == 1


def test_cli_import_reports_rows_and_errors(app, runner, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("Mail,Vorname\nx@example.com,Xa\nbroken,Yo\n")
    errors = tmp_path / "errors.csv"
    result = runner.invoke(
        ["contacts", "import", str(path), "--map", "Mail=email", "--map", "Vorname=first_name", "--errors", str(errors)]
    )
    assert result.exit_code == 0, result.output
    assert "2 rows: 1 created" in result.output and "1 rejected" in result.output
    rows = list(csv.reader(errors.read_text().splitlines()))
    assert rows[0] == ["line", "column", "reason"] and rows[1][:2] == ["3", "Mail"]
    bad = runner.invoke(["contacts", "import", str(path)])
    assert bad.exit_code != 0 and "column 'Mail' matches no contact field" in bad.output
    again = runner.invoke(
        ["contacts", "import", str(path), "--map", "Mail=email", "--map", "Vorname=-", "--merge", "skip"]
    )
    assert again.exit_code == 0 and "0 updated, 1 skipped (existing)" in again.output


def test_cli_import_of_many_rows(app, runner, tmp_path):
    path = tmp_path / "many.csv"
    with path.open("w") as fh:
        fh.write("email,score\n")
        for i in range(2500):
            fh.write(f"user{i % 2000}@example.com,{i}\n")
    result = runner.invoke(["contacts", "import", str(path)])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert get_session().scalar(select(func.count(Contact.id))) == 2000
        assert get_session().scalar(select(Contact.score).where(Contact.email == "user5@example.com")) == 2005


def test_imported_values_read_back_exactly_and_count_in_segments(app):
    """New contacts are written set-wise: text, numbers, lists and custom fields come back as they went in."""
    from server.engine.scope import Scope
    from server.segments import compile_condition, count

    with app.app_context():
        session = get_session()
        for name, kind in (("city", "string"), ("seats", "number"), ("langs", "list"), ("vip", "bool")):
            define_field(session, name, kind)
        session.commit()
    text = (
        "email,external_id,first_name,last_name,score,city,seats,langs,vip,tags\n"
        'zoë@example.com,crm-ü,Zoë,"O\'Brien ""Z""",-7,Köln 🎉,2.5,de;en,yes,a;b\n'
        ",crm-2,,,12345,,12345678901,,no,\n"
    )
    report = _import(app, text)
    assert (report.created, report.errors) == (2, [])
    contacts = _contacts(app)
    zoe, two = contacts["zoë@example.com"], contacts["crm-2"]
    assert (zoe.external_id, zoe.first_name, zoe.last_name, zoe.score) == ("crm-ü", "Zoë", 'O\'Brien "Z"', -7)
    assert zoe.fields == {"city": "Köln 🎉", "seats": 2.5, "langs": ["de", "en"], "vip": True}
    assert (two.email, two.score) == (None, 12345)
    assert two.fields == {"city": "", "seats": 12345678901, "langs": [], "vip": False}
    assert zoe.public_id and two.public_id and zoe.public_id != two.public_id
    with app.app_context():
        session = get_session()
        assert sorted(t.tag for t in session.get(Contact, zoe.id).tags) == ["a", "b"]
        for condition, members in (
            ('contact.city == "Köln 🎉"', 1),
            ("contact.seats > 2", 2),
            ('"en" in contact.langs', 1),
            ("contact.vip == true", 1),
            ('contact.last_name starts with "O\'B"', 1),
        ):
            assert count(session, compile_condition(session, condition).tree, scope=Scope.of) == members, condition


def test_merge_within_one_file_sees_earlier_rows(app):
    """Rows apply in order, each seeing what the rows before it changed; unchanged contacts are not rewritten."""
    _import(app, "email,external_id,first_name,tags\na@example.com,crm-a,A,old\nb@example.com,crm-b,B,\n")
    before = _contacts(app)
    text = (
        "email,external_id,first_name,tags\n"
        "a2@example.com,crm-a,A2,new\n"  # crm-a moves from a@ to a2@
        "b@example.com,crm-b,B,\n"  # nothing changes for B
        "a@example.com,crm-c,C,\n"  # a@ was crm-a's when the import began
        "c@example.com,crm-b,,\n"  # B's external id, another email: merged with B's row, B moves to c@
        "d@example.com,,D,x;y\n"
        "d@example.com,,,y;z\n"  # merged with the row above
    )
    report = _import(app, text)
    a_id = before["a@example.com"].id
    assert (report.rows, report.created, report.updated, report.merged_in_file) == (6, 1, 2, 2)
    assert [(e.line, e.column, e.reason) for e in report.errors] == [
        (
            4,
            "external_id",
            f"email belongs to contact {a_id}, which has another external_id; fix the file or merge the contacts",
        ),
    ]
    after = _contacts(app)
    assert {(c.email, c.external_id, c.first_name) for c in after.values()} == {
        ("a2@example.com", "crm-a", "A2"),
        ("c@example.com", "crm-b", "B"),
        ("d@example.com", None, "D"),
    }
    with app.app_context():
        session = get_session()
        tags = {c.email: sorted(t.tag for t in session.get(Contact, c.id).tags) for c in after.values()}
    assert tags == {"a2@example.com": ["new", "old"], "c@example.com": [], "d@example.com": ["x", "y", "z"]}
    assert after["a2@example.com"].updated_at > before["a@example.com"].updated_at
    again = _import(app, "email,external_id,first_name\na2@example.com,crm-a,A2\n")
    assert again.updated == 1 and _contacts(app)["a2@example.com"].updated_at == after["a2@example.com"].updated_at


def test_merge_modes_update_fill_only_empty_values_or_skip_existing_contacts(app):
    _import(app, "email,first_name,last_name,tags\na@example.com,Old,,old\nb@example.com,Bo,,\n")
    text = (
        "email,first_name,last_name,tags\na@example.com,New,Last,new\nb@example.com,Ben,Bell,new\nc@example.com,Cy,,\n"
    )
    report = _import(app, text, merge="skip")
    assert (report.created, report.updated, report.skipped) == (1, 0, 2)
    assert _contacts(app)["a@example.com"].first_name == "Old" and "2 skipped" in report.summary()
    report = _import(app, text, merge="fill_empty")
    assert (report.created, report.updated, report.skipped) == (0, 3, 0)
    a = _contacts(app)["a@example.com"]
    assert (a.first_name, a.last_name) == ("Old", "Last")  # only the empty last name was filled
    with app.app_context():
        assert sorted(t.tag for t in get_session().get(Contact, a.id).tags) == ["new", "old"]
    _import(app, text, merge="update")
    assert _contacts(app)["b@example.com"].first_name == "Ben"
    with pytest.raises(InvalidInput, match="unknown merge mode 'newest'; use one of update, fill_empty, skip"):
        _import(app, text, merge="newest")


@pytest.mark.parametrize("enabled", [True, False])
def test_import_leaves_the_garbage_collector_as_it_found_it(app, enabled):
    """The import turns the cyclic collector off while it runs (its full passes cost a third of the time) and
    back on after, also when the import fails; a process that had it off keeps it off."""
    import gc

    was = gc.isenabled()
    try:
        if not enabled:
            gc.disable()
        report = _import(app, "email,tags\na@example.com,x\nb@example.com,y\n")
        assert report.created == 2
        assert gc.isenabled() is enabled
        seen = []

        def progress(rows):  # runs inside the import, after a chunk is written: the collector is off there
            seen.append(gc.isenabled())
            raise RuntimeError("stopped by the test")

        with pytest.raises(RuntimeError, match="stopped by the test"):
            _import(app, "email\nc@example.com\n", progress=progress)
        assert seen == [False]
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_tags_many_contacts_share_and_rare_ones_are_all_written(app):
    """A tag most rows carry is inserted for all its contacts at once, rare ones pair by pair: every contact ends
    with exactly its tags, new and updated ones alike, and a tag a contact already has is not added twice."""
    from server.models import ContactTag

    rows = "".join(f"u{i}@example.com,{'common' if i % 7 else 'rare' + str(i)};all\n" for i in range(140))
    report = _import(app, "email,tags\n" + rows, tags=["batch1"])
    assert report.created == 140 and not report.errors
    again = "".join(f"u{i}@example.com,all;{'late' if i < 100 else 'late' + str(i)}\n" for i in range(140))
    report = _import(app, "email,tags\n" + again + "new@example.com,all\n")
    assert (report.created, report.updated) == (1, 140)
    with app.app_context():
        session = get_session()
        tags = {}
        for email, tag in session.execute(
            select(Contact.email, ContactTag.tag).join(ContactTag, ContactTag.contact_id == Contact.id)
        ):
            tags.setdefault(email, set()).add(tag)
    for i in range(140):
        expected = {"all", "batch1", "common" if i % 7 else f"rare{i}", "late" if i < 100 else f"late{i}"}
        assert tags[f"u{i}@example.com"] == expected
    assert tags["new@example.com"] == {"all"}
    assert sum(len(t) for t in tags.values()) == 140 * 4 + 1
    with app.app_context():  # each contact's events, announced set-wise the same way
        events = get_session().execute(select(Event.contact_id, Event.name, Event.props, Event.source)).all()
    ids = {c.email: c.id for c in _contacts(app).values()}
    # the second file gives the stored contacts no other value (only tags): no contact.updated
    assert sorted((cid, name, props, source) for cid, name, props, source in events) == sorted(
        [(cid, "contact.created", {}, "import") for cid in ids.values()]
    )


def test_a_reimport_announces_contact_updated_only_for_values_that_changed(app):
    """A nightly re-import of the same file is no update for the rules: ``contact.updated`` is recorded only for
    the contacts whose values differ, naming only the fields that differ."""
    _import(app, "email,first_name,stage\n" + "".join(f"r{i}@example.com,Ann{i},gold\n" for i in range(6)))
    again = "".join(
        f"r{i}@example.com,{'Bea' if i == 1 else 'Ann'}{i},{'silver' if i in (1, 2) else 'gold'}\n" for i in range(6)
    )
    report = _import(app, "email,first_name,stage\n" + again)
    assert (report.created, report.updated) == (0, 6)
    with app.app_context():
        updated = (
            get_session()
            .execute(
                select(Contact.email, Event.props)
                .join(Contact, Contact.id == Event.contact_id)
                .where(Event.name == "contact.updated")
            )
            .all()
        )
    assert sorted((email, props["fields"]) for email, props in updated) == [
        ("r1@example.com", ["first_name", "stage"]),
        ("r2@example.com", ["stage"]),
    ]


def test_imported_contacts_take_ids_in_email_order_and_never_a_deleted_contacts(app):
    """New contacts get ids above every id ever given (a deleted contact's is not reused), a chunk's in the order of
    their emails (written page after page whatever order the file is in), each with its own public id, tags and
    event: the file's e before d gives d the lower id, and each keeps its own row's tag."""
    from server.models import ContactTag

    _import(app, "email,tags\na@example.com,t-a\nb@example.com,t-b\nc@example.com,t-c\n")
    with app.app_context():
        session = get_session()
        last = session.scalars(select(Contact).where(Contact.email == "c@example.com")).one()
        deleted = last.id
        session.delete(last)
        session.commit()
    report = _import(app, "email,tags\ne@example.com,t-e\nd@example.com,t-d\nb@example.com,t-b2\n")
    assert (report.created, report.updated) == (2, 1)
    contacts = _contacts(app)
    assert contacts["a@example.com"].id < contacts["b@example.com"].id < deleted
    assert deleted < contacts["d@example.com"].id < contacts["e@example.com"].id
    assert len({c.public_id for c in contacts.values()}) == 4
    with app.app_context():
        session = get_session()
        tags = {tuple(row) for row in session.execute(select(ContactTag.contact_id, ContactTag.tag))}
        events = {tuple(row) for row in session.execute(select(Event.contact_id, Event.name))}
    ids = {email: c.id for email, c in contacts.items()}
    assert tags == {(ids[f"{x}@example.com"], f"t-{x}") for x in "abde"} | {(ids["b@example.com"], "t-b2")}
    assert {(ids[f"{x}@example.com"], "contact.created") for x in "abde"} <= events


def _count(app) -> int:
    with app.app_context():
        return get_session().scalar(select(func.count(Contact.id)))


def _rows(n: int) -> bytes:
    return "".join(f"user{i}@example.com,Name{i}\n" for i in range(n)).encode()


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        # Latin-1 after the first chunk (500 rows) was already written, before the file was read first
        (b"late@example.com,Ren\xe9e\n", "is not utf-8-sig text (invalid continuation byte at byte {at}); nothing"),
        # a lenient reader took everything after the quote for one value: one rejected row, the rest silently gone
        (b'"late@example.com,Ann\n' + _rows(3), "(line 805: a quoted value opened on line 802 is never closed"),
        (b"late@example.com," + b"x" * 200_000 + b"\n", "(line 802: a value is longer than 131,072 characters"),
        (b'"late"@example.com,Ann\n', "(line 802: text follows a closing quote"),
    ],
    ids=["undecodable", "quote-never-closed", "value-past-the-limit", "text-after-a-quote"],
)
def test_cli_import_of_a_malformed_file_says_where_and_imports_nothing(app, runner, tmp_path, tail, message):
    head = b"email,first_name\n" + _rows(800)
    path = tmp_path / "people.csv"
    path.write_bytes(head + tail)
    result = runner.invoke(["contacts", "import", str(path)])
    assert result.exit_code == 1, result.output
    assert message.format(at=len(head) + len("late@example.com,Ren") + 1) in result.output
    assert "Traceback" not in result.output
    assert _count(app) == 0


def test_cli_import_with_an_encoding_python_does_not_know_is_a_usage_error(app, runner, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("email\nq@example.com\n")
    result = runner.invoke(["contacts", "import", str(path), "--encoding", "klingon"])
    assert result.exit_code == 2 and "Invalid value for --encoding: 'klingon' is no text encoding" in result.output
    assert _count(app) == 0


def test_cli_import_reads_the_encoding_it_is_given(app, runner, tmp_path):
    path = tmp_path / "people.csv"
    path.write_bytes("email,first_name\nr@example.com,Renée\n".encode("utf-16"))
    result = runner.invoke(["contacts", "import", str(path), "--encoding", "utf-16"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert get_session().scalar(select(Contact.first_name).where(Contact.email == "r@example.com")) == "Renée"
