"""A throwaway instance's database is a copy of the models' schema: the same tables, indexes and AUTOINCREMENT as
``create_all`` makes, and each copy its own database."""

from __future__ import annotations

from sqlalchemy import text

from server.db import make_engine
from server.engine.blank_schema import create_schema
from server.models import Base


def _schema(engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return sorted(
            (name, sql) for name, sql in conn.execute(text("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
        )


def test_a_copied_schema_is_the_one_create_all_makes_and_each_copy_is_its_own(tmp_path):
    made = make_engine(f"sqlite:///{tmp_path / 'made.db'}")
    Base.metadata.create_all(made)
    first, second = make_engine("sqlite://"), make_engine("sqlite://")
    try:
        create_schema(first)
        create_schema(second)
        assert _schema(first) == _schema(made) and len(_schema(first)) > 60
        with first.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO segments (name, condition, description, created_at, updated_at) "
                    "VALUES ('vips', 'tag == \"vip\"', '', '2026-01-01', '2026-01-01')"
                )
            )
        with second.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM segments")).scalar() == 0
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        for engine in (made, first, second):
            engine.dispose()


def test_a_database_not_in_memory_gets_the_schema_made_in_it(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'file.db'}")
    try:
        create_schema(engine)
        assert {"contacts", "messages", "enrolments"} <= {row[0] for row in _schema(engine)}
    finally:
        engine.dispose()
