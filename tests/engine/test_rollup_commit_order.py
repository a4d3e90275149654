"""On PostgreSQL, rows get their ids when they are written, not when they are committed: a transaction that took a
lower id can commit after one that took a higher id. The stats rollup reads each source past a watermark (an id):
it must not move the watermark past a row that is still being written, or that row is never counted. A row whose
transaction rolled back leaves a gap that must not hold the rollup up."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, insert

from server.db import get_session
from server.engine.funnel import broadcast_results
from server.engine.rollup import rollup
from server.models import Contact, Message, MessageStatusChange, utcnow

pytestmark = pytest.mark.postgresql  # SQLite has one writer at a time: ids are taken and committed in order


@pytest.fixture
def database_url(postgres_server):
    return postgres_server.new_database(f"order_{uuid.uuid4().hex[:8]}")


@pytest.fixture
def engine(database_url):
    """Connections of their own, as other workers and web processes write through."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def _messages(app, n: int) -> list[int]:
    """*n* sent messages of broadcast 7, with no status history yet."""
    with app.app_context():
        session = get_session()
        contacts = [Contact(email=f"o{i}@example.com", fields={}) for i in range(n)]
        session.add_all(contacts)
        session.flush()
        rows = [
            Message(key=f"broadcast:7:{c.id}", contact_id=c.id, channel="email", template="welcome", status="sent")
            for c in contacts
        ]
        session.add_all(rows)
        session.commit()
        return [m.id for m in rows]


def _sent(connection, message_id: int) -> None:
    connection.execute(insert(MessageStatusChange).values(message_id=message_id, status="sent", at=utcnow()))


def _counted(app) -> int:
    with app.app_context():
        session = get_session()
        rollup(session, limit=None)
        sent = broadcast_results(session, "7")["sent"]
        session.commit()
        return sent


def test_a_row_committed_after_a_higher_one_is_still_counted(app, engine):
    first, second, third = _messages(app, 3)
    with engine.connect() as slow, engine.connect() as quick:
        slow_tx = slow.begin()
        _sent(slow, first)  # takes the lower id, commits last
        with quick.begin():
            _sent(quick, second)
        assert _counted(app) == 0  # the second row waits: the first one's id may still be written
        slow_tx.commit()
    assert _counted(app) == 2
    with engine.begin() as connection:
        _sent(connection, third)
    assert _counted(app) == 3


def test_a_gap_left_by_a_rolled_back_write_does_not_hold_the_rollup_up(app, engine):
    first, second = _messages(app, 2)
    with engine.connect() as connection:
        undone = connection.begin()
        _sent(connection, first)
        undone.rollback()
    with engine.begin() as connection:
        _sent(connection, second)
    assert _counted(app) == 1


def test_rows_written_before_the_oldest_write_under_way_began_are_counted_while_it_goes_on(app, engine):
    # under steady load some write is always under way: what had been handed out before the oldest of them began is
    # read, so the counters follow one rollup behind, and nothing is lost
    first, second, third = _messages(app, 3)
    with engine.connect() as earlier, engine.connect() as later:
        earlier_tx = earlier.begin()
        _sent(earlier, first)
        with engine.begin() as connection:
            _sent(connection, second)
        assert _counted(app) == 0  # notes how far ids were handed out, at this moment
        earlier_tx.commit()
        later_tx = later.begin()
        _sent(later, third)  # begun after that note
        assert _counted(app) == 2
        later_tx.commit()
    assert _counted(app) == 3


def test_a_write_under_way_in_another_database_of_the_server_holds_nothing_back(
    app, engine, postgres_server, migrated_templates
):
    # PostgreSQL lists every database's locks together, and databases made from one template (as this test's, and
    # instances set up from one image) share their tables' oids
    other_url = migrated_templates.new_pg_database(postgres_server, f"other_{uuid.uuid4().hex[:8]}")
    other = create_engine(other_url)
    [mine] = _messages(app, 1)
    try:
        with other.connect() as elsewhere:
            under_way = elsewhere.begin()
            contact = elsewhere.execute(insert(Contact).values(email="x@example.com", fields={}).returning(Contact.id))
            message = elsewhere.execute(
                insert(Message)
                .values(key="broadcast:9:1", contact_id=contact.scalar_one(), channel="email", template="welcome")
                .returning(Message.id)
            )
            _sent(elsewhere, message.scalar_one())
            with engine.begin() as connection:
                _sent(connection, mine)
            assert _counted(app) == 1
            under_way.rollback()
    finally:
        other.dispose()
        migrated_templates.drop_later(postgres_server, other_url.rsplit("/", 1)[1])


def test_the_note_a_long_write_leaves_usable_outlives_many_rollups(app, engine, monkeypatch):
    from server.engine import rollup_settled

    monkeypatch.setattr(rollup_settled, "KEPT", 3)
    first, second = _messages(app, 2)
    with engine.connect() as oldest, engine.connect() as long:
        oldest_tx = oldest.begin()
        _sent(oldest, first)
        with engine.begin() as connection:
            _sent(connection, second)
        assert _counted(app) == 0  # notes where ids stood before the long write begins
        long_tx = long.begin()
        _sent(long, second)
        for _ in range(5):  # more rollups than notes are kept, all while the long write goes on
            assert _counted(app) == 0
        oldest_tx.commit()
        assert _counted(app) == 2  # the note from before the long write is still there
        long_tx.rollback()
    assert _counted(app) == 2
