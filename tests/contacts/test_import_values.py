"""The import's bulk writes: rows bound to multi-row ``INSERT … VALUES`` statements on SQLite, whatever their
count; and the chunks of an import, small at first and growing."""

import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from server.contacts import importer, rowset
from server.contacts.import_rows import RowCleaner, cleaned_chunks, read_rows
from server.contacts.rowset import insert_values
from server.db import get_session
from server.models import Contact

NOW = datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=UTC)
COLUMNS = ("email", "score", "fields", "public_id")


def _cells(count):
    return [v for i in range(count) for v in (f"v{i}@example.com", i, f'{{"n":{i},"city":"Köln"}}', f"p{i}")]


@pytest.mark.sqlite
@pytest.mark.parametrize("count", [0, 1, 7, 10, 13, 37])
def test_rows_of_any_count_are_inserted_exactly_once_in_statements_of_a_few_sizes(app, monkeypatch, count):
    """Ten rows a statement here (40 values), the rest in statements of 8, 4, 2 and 1 rows: every row once, with
    its values, its JSON column as JSON and the constants as the column types store them."""
    monkeypatch.setattr(rowset, "VALUES_CELLS", 40)
    seen = []
    with app.app_context():
        session = get_session()
        connection = session.connection()
        driver = connection.connection.dbapi_connection
        driver.set_trace_callback(lambda sql: seen.append(sql.count("),(") + 1) if "VALUES" in sql else None)
        try:
            insert_values(session, Contact.__table__, COLUMNS, _cells(count), {"created_at": NOW, "updated_at": NOW})
        finally:
            driver.set_trace_callback(None)
        session.commit()
        stored = session.scalars(select(Contact).order_by(Contact.id)).all()
        assert [(c.email, c.score, c.fields, c.public_id) for c in stored] == [
            (f"v{i}@example.com", i, {"n": i, "city": "Köln"}, f"p{i}") for i in range(count)
        ]
        assert {c.created_at for c in stored} | {c.updated_at for c in stored} <= {NOW}
    full, rest = divmod(count, 10)
    assert seen == [10] * full + [1 << b for b in range(3, -1, -1) if rest & (1 << b)]


@pytest.mark.sqlite
def test_values_that_are_no_whole_number_of_rows_are_refused(app):
    with app.app_context(), pytest.raises(ValueError, match="no whole number of rows of 4 columns"):
        insert_values(get_session(), Contact.__table__, COLUMNS, _cells(2)[:-1], {})


def test_values_are_bound_this_way_on_sqlite_only(app, backend):
    with app.app_context():
        session = get_session()
        if backend == "sqlite":
            insert_values(session, Contact.__table__, COLUMNS, _cells(1), {"created_at": NOW, "updated_at": NOW})
            assert session.scalars(select(Contact.email)).all() == ["v0@example.com"]
        else:
            with pytest.raises(ValueError, match="SQLite only"):
                insert_values(session, Contact.__table__, COLUMNS, _cells(1), {})


def test_an_import_starts_with_a_small_chunk_and_grows_to_the_full_size():
    header, rows = read_rows(io.StringIO("email\n" + "".join(f"u{i}@example.com\n" for i in range(20))))
    cleaner = RowCleaner({0: "email"}, {}, None)
    sizes = [len(chunk.rows) for chunk in cleaned_chunks(rows, len(header), cleaner, {}, 5, first=2)]
    assert sizes == [2, 2, 3, 5, 5, 3]  # 2, 2.8, 3.92, then 5 (each 1.4 times the one before)


def test_an_import_of_more_rows_than_its_first_chunks_imports_every_row(app, monkeypatch):
    """Chunks of 2, 2, 3 … 5 rows: a person named in two of them is created by one and updated by the next."""
    monkeypatch.setattr(importer, "CHUNK", 5)
    monkeypatch.setattr(importer, "FIRST_CHUNK", 2)
    text = "email,first_name\n" + "".join(f"u{i}@example.com,N{i}\n" for i in range(20)) + "u0@example.com,Again\n"
    with app.app_context():
        report = importer.import_text(get_session(), text, secret=app.config["SECRET_KEY"], processes=2)
        names = dict(get_session().execute(select(Contact.email, Contact.first_name)).all())
    assert (report.rows, report.created, report.updated, report.merged_in_file) == (21, 20, 1, 0)
    assert names == {f"u{i}@example.com": f"N{i}" for i in range(1, 20)} | {"u0@example.com": "Again"}


class _Driver:
    """A driver connection allowing *limit* variables a statement."""

    def __init__(self, limit):
        self.limit = limit

    def getlimit(self, _category):
        return self.limit


@pytest.mark.parametrize(
    ("rows", "most", "limit", "bound", "expected"),
    [
        (0, 256, 32766, 0, []),
        (600, 256, 32766, 0, [256, 256, 64, 16, 8]),
        (7, 256, 32766, 0, [4, 2, 1]),
        # the limit of variables, less the values every statement binds, caps a statement's rows: (999 - 3) // 4
        (500, 1000, 999, 3, [249, 249, 2]),
    ],
)
def test_rows_split_into_full_statements_then_falling_powers_of_two(rows, most, limit, bound, expected):
    sizes = list(rowset.statement_rows(_Driver(limit), rows, 4, most, bound=bound))
    assert sizes == expected
    assert sum(sizes) == rows
