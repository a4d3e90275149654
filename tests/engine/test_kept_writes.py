"""The sender's rounds' own SQLite connection: a commit that fails leaves no transaction open behind it."""

import sqlite3

import pytest
from sqlalchemy import create_engine

from server.engine.driver_sql import KeptWrites


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'kept.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id))")
    yield engine
    engine.dispose()


def test_a_failed_commit_is_rolled_back_and_the_next_transaction_begins(engine):
    kept = KeptWrites(engine)
    try:
        kept.cursor.execute("PRAGMA foreign_keys=ON")
        kept.begin()
        kept.cursor.execute("PRAGMA defer_foreign_keys=ON")  # the violation is found at COMMIT
        kept.cursor.execute("INSERT INTO child (id, parent_id) VALUES (1, 42)")
        with pytest.raises(sqlite3.IntegrityError):
            kept.commit()
        assert not kept.open
        kept.begin()  # "cannot start a transaction within a transaction" if the failed one were left open
        kept.cursor.execute("INSERT INTO parent (id) VALUES (7)")
        kept.commit()
    finally:
        kept.close()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM child").scalar() == 0
        assert conn.exec_driver_sql("SELECT id FROM parent").scalars().all() == [7]
