"""An import whose rows are checked in a second process (``IMPORT_PROCESSES=2``) gives exactly what one process
gives; a checking process that stops, or an import stopped by its caller, leaves no process and no silent loss."""

import csv
import io
import os
import signal
import uuid

import pytest
from sqlalchemy import select

from server.app import create_app
from server.consent import suppress
from server.contacts import address_channels, define_field, import_pipeline, importer
from server.contacts.import_pipeline import CheckerStopped
from server.contacts.import_runs import write_report
from server.db import get_session
from server.models import Contact, ContactTag, Event

#: stored before the import: two contacts it updates, one it finds in conflict
BEFORE = "email,external_id,first_name,tags\nold@example.com,crm-1,Old,kept\nother@example.com,crm-2,Oth,\n"
#: chunks of 3 checked rows: bad rows, rows merged within a chunk and across chunks, updates, a conflict
FILE = (
    "E-Mail,ID,First Name,Phone,Plan,Seats,Tags\n"
    "a@example.com,,Ann,+49 30 123456,pro,3,x;y\n"
    "not-an-address,,Bad,,,1,\n"
    "b@example.com,,Bo,12,,1,\n"  # not a phone number
    "A@example.com,,,,team,4,z\n"  # merged with the row of a@ (same chunk)
    "old@example.com,crm-1,New,,free,1,\n"  # updates a stored contact
    "c@example.com,crm-2,Cy,,,1,\n"  # the next chunk: crm-2 is other@'s, which moves to c@
    "too,many,cells,here,,,,,\n"
    "a@example.com,,Anna,,,1,w\n"  # updates the contact the chunk before made
    "other@example.com,crm-1,,,,1,\n"  # the email of one contact (when the chunk began), the external id of another
    ",,NoKey,,,1,\n"
    "d@example.com,,Dee,,,lots,\n"  # not a number
    "gone@example.com,,Gone,,,1,\n"  # on the suppression list
    "e@example.com,crm-9,Eve,+49 30 654321,pro,2,x\n"
    "e@example.com,crm-9,,,,3,y\n"  # merged with the row above
)


@pytest.fixture
def twin(config, tmp_path, backend, migrated_templates, request, clock):
    """A second app with a database of its own, for the same import run the other way."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'twin.db'}"
    else:
        url = request.getfixturevalue("postgres_server").new_database(f"twin_{uuid.uuid4().hex[:8]}")
    migrated_templates.fill(url, lambda: request.getfixturevalue("postgres_server"))
    app = create_app({**config, "DATABASE_URL": url, "HOME": str(tmp_path / "twin-home")}, clock=clock)
    yield app
    app.extensions["nudge.queue"].close()
    app.extensions["nudge.db"].dispose()


@pytest.fixture
def forks(monkeypatch):
    """The ids of the processes an import forks."""
    made = []
    fork = os.fork

    def counted():
        pid = fork()
        if pid:
            made.append(pid)
        return pid

    monkeypatch.setattr(import_pipeline.os, "fork", counted)
    return made


def _import(app, text, processes, **kwargs):
    with app.app_context():
        return importer.import_text(
            get_session(),
            text,
            secret=app.config["SECRET_KEY"],
            channels=address_channels(app.extensions["nudge.plugins"]),
            processes=processes,
            **kwargs,
        )


def _state(app, report, tmp_path):
    """Everything the import wrote or said, but the random public ids and the times."""
    with app.app_context():
        session = get_session()
        columns = [c for c in Contact.__table__.c if c.name not in ("public_id", "created_at", "updated_at")]
        contacts = [tuple(row) for row in session.execute(select(*columns).order_by(Contact.id))]
        tags = [
            tuple(row)
            for row in session.execute(
                select(ContactTag.contact_id, ContactTag.tag).order_by(ContactTag.contact_id, ContactTag.tag)
            )
        ]
        events = [
            tuple(row)
            for row in session.execute(
                select(Event.contact_id, Event.name, Event.props, Event.source).order_by(Event.id)
            )
        ]
    path = tmp_path / f"report-{uuid.uuid4().hex}.csv"
    write_report(path, report.errors)
    counts = (report.rows, report.created, report.updated, report.merged_in_file, report.skipped, report.suppressed)
    return contacts, tags, events, path.read_bytes(), counts


def _prepare(app):
    with app.app_context():
        define_field(get_session(), "plan", "string")
        define_field(get_session(), "seats", "number")
        suppress(get_session(), app.config["SECRET_KEY"], "email", "gone@example.com", "erased")
        get_session().commit()
    _import(app, BEFORE, 1)


def test_two_processes_import_exactly_what_one_does(app, twin, monkeypatch, tmp_path, forks):
    monkeypatch.setattr(importer, "CHUNK", 3)
    states = []
    for each, processes in ((app, 1), (twin, 2)):
        _prepare(each)
        report = _import(each, FILE, processes, mapping={"E-Mail": "email", "ID": "external_id"}, tags=["imported"])
        states.append(_state(each, report, tmp_path))
    assert len(forks) == 1  # the second import, and only it, checked its rows in another process
    one, two = states
    assert one == two
    contacts, tags, events, errors, counts = two
    assert counts == (14, 3, 3, 2, 0, 1)  # what the file holds: no row was left out by both
    assert [row[:2] for row in csv.reader(io.StringIO(errors.decode()))][1:] == [
        ["3", "E-Mail"],
        ["4", "Phone"],
        ["8", ""],
        ["10", "E-Mail"],
        ["11", "E-Mail"],
        ["12", "Seats"],
    ]
    assert [c[1:5] for c in contacts] == [  # external id, email, phone, first name
        ("crm-1", "old@example.com", None, "New"),
        ("crm-2", "c@example.com", None, "Cy"),
        (None, "a@example.com", "+4930123456", "Anna"),
        ("crm-9", "e@example.com", "+4930654321", "Eve"),  # a chunk's new contacts take ids in email order
        (None, "gone@example.com", None, "Gone"),
    ]
    assert [(cid, name) for cid, name, _, _ in events[2:]] == [
        (1, "contact.updated"),
        (3, "contact.created"),
        (2, "contact.updated"),
        (3, "contact.updated"),
        (4, "contact.created"),
        (5, "contact.created"),
    ]
    assert tags == [(1, "imported"), (1, "kept"), (2, "imported")] + [
        (3, t) for t in ("imported", "w", "x", "y", "z")
    ] + [
        (4, "imported"),
        (4, "x"),
        (4, "y"),
        (5, "imported"),
    ]


def test_a_checking_process_that_dies_fails_the_import_after_the_chunks_it_checked(app, monkeypatch, forks):
    monkeypatch.setattr(importer, "CHUNK", 2)
    parent, merge_rows, seen = os.getpid(), import_pipeline.merge_rows, []

    def dies_on_the_third_chunk(rows):
        seen.append(rows)
        if len(seen) == 3 and os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return merge_rows(rows)

    monkeypatch.setattr(import_pipeline, "merge_rows", dies_on_the_third_chunk)
    text = "email\n" + "".join(f"u{i}@example.com\n" for i in range(10))
    with pytest.raises(CheckerStopped, match=r"stopped \(killed by signal 9\) after 4 rows: the rows before were"):
        _import(app, text, 2)
    with app.app_context():
        stored = get_session().scalars(select(Contact.email).order_by(Contact.id)).all()
    assert stored == [f"u{i}@example.com" for i in range(4)]  # the two chunks it sent, committed; nothing else
    with pytest.raises(ChildProcessError):  # and it was waited for
        os.waitpid(forks[0], os.WNOHANG)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_bad_line_or_a_stop_ends_the_import_where_one_process_would(app, monkeypatch, forks, processes):
    """A file that is not CSV further down raises its error after the chunks before it (from either process);
    a progress callback that raises (a cancel) stops the checking process at once."""
    monkeypatch.setattr(importer, "CHUNK", 2)
    huge = "x" * (csv.field_size_limit() + 1)  # more than csv.reader reads in one cell
    text = "email\n" + "".join(f"v{i}@example.com\n" for i in range(5)) + f"{huge}\nx@example.com\n"
    with pytest.raises(csv.Error, match="field larger than field limit"):
        _import(app, text, processes)
    with app.app_context():
        assert get_session().scalars(select(Contact.email)).all() == [f"v{i}@example.com" for i in range(4)]

    def cancel(rows):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _import(app, "email\n" + "".join(f"y{i}@example.com\n" for i in range(9)), processes, progress=cancel)
    with app.app_context():
        assert len(get_session().scalars(select(Contact.email).where(Contact.email.like("y%"))).all()) == 2
    assert len(forks) == (2 if processes == 2 else 0)
    for pid in forks:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


@pytest.mark.sqlite
def test_an_import_has_a_larger_page_cache_while_it_writes_and_leaves_the_connection_as_it_was(app):
    """Keys in no particular order land all over the contacts' indexes: the import's connection keeps more of
    them in memory, and gives the memory back at the end."""

    def cache_size():
        return get_session().connection().exec_driver_sql("PRAGMA cache_size").scalar_one()

    with app.app_context():
        before = cache_size()
        get_session().commit()
    seen = []
    _import(app, "email\na@example.com\n", 2, progress=lambda _rows: seen.append(cache_size()))
    assert seen == [-importer.PAGE_CACHE_KIB] and before != seen[0]
    with app.app_context():
        assert cache_size() == before


def test_when_no_second_process_can_be_started_the_import_checks_its_rows_itself(app, monkeypatch, caplog):
    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(import_pipeline.os, "fork", no_fork)
    report = _import(app, "email\na@example.com\nb@example.com\n", 2)
    assert (report.rows, report.created) == (2, 2)
    assert "no second one could be started (" in caplog.text


@pytest.mark.parametrize("listed", [1, 5])
def test_suppressed_rows_count_whether_the_list_is_shorter_or_longer_than_a_chunk(app, monkeypatch, listed):
    """A suppression list shorter than a chunk's addresses is read whole, a longer one looked up: the same count,
    only the email channel's entries counting."""
    monkeypatch.setattr(importer, "CHUNK", 3)
    with app.app_context():
        for i in range(listed):
            suppress(get_session(), app.config["SECRET_KEY"], "email", f"s{i}@example.com", "erased")
        suppress(get_session(), app.config["SECRET_KEY"], "sms", "n1@example.com", "erased")  # not the email list
        get_session().commit()
    text = "email\ns0@example.com\nn1@example.com\nn2@example.com\ns4@example.com\nn3@example.com\n"
    report = _import(app, text, 2)
    assert (report.created, report.suppressed) == (5, 1 if listed == 1 else 2)
