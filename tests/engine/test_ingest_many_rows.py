"""The ingest writer's inserts of many rows a statement (:func:`server.engine.driver_sql.insert_many`): every row,
in order, whatever the count and SQLite's limit of variables; all or none when one row fails."""

import sqlite3

import pytest

from server.engine.driver_sql import MANY_ROWS, insert_many

SQL = "INSERT INTO t (a, b, c) VALUES (?, ?, ?)"


@pytest.fixture
def cursor():
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, a INTEGER NOT NULL UNIQUE, b, c)")
    yield connection.cursor()
    connection.close()


@pytest.mark.parametrize("count", [1, 2, 3, 100, MANY_ROWS - 1, MANY_ROWS, MANY_ROWS + 1, 3 * MANY_ROWS + 77])
def test_every_row_goes_in_in_order(cursor, count):
    rows = [(i, f"b{i}", None if i % 3 else f"c{i}") for i in range(count)]
    insert_many(cursor, SQL, rows)
    stored = cursor.execute("SELECT id, a, b, c FROM t ORDER BY id").fetchall()
    assert [row[1:] for row in stored] == rows
    assert [row[0] for row in stored] == list(range(1, count + 1))  # one id after the other, in the rows' order


def test_statements_stay_within_the_limit_of_variables(cursor):
    cursor.connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 20)  # 6 rows of 3 at most
    rows = [(i, "b", "c") for i in range(50)]
    insert_many(cursor, SQL, rows)
    assert cursor.execute("SELECT a FROM t ORDER BY id").fetchall() == [(i,) for i in range(50)]


def test_a_failing_row_leaves_the_transaction_to_roll_back_whole(cursor):
    cursor.execute("BEGIN")
    with pytest.raises(sqlite3.IntegrityError):
        insert_many(cursor, SQL, [(1, "b", "c"), (2, "b", "c"), (1, "clash", "c")])
    cursor.execute("ROLLBACK")
    assert cursor.execute("SELECT count(*) FROM t").fetchone()[0] == 0


def test_nothing_to_insert_runs_nothing(cursor):
    insert_many(cursor, SQL, [])
    assert cursor.execute("SELECT count(*) FROM t").fetchone()[0] == 0


def test_only_an_insert_of_one_row_of_values_is_taken(cursor):
    with pytest.raises(ValueError, match="not an INSERT of one row"):
        insert_many(cursor, "INSERT INTO t (a, b, c) SELECT 1, 2, 3", [(1, 2, 3), (2, 3, 4)])
