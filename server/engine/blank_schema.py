"""The models' schema in a fresh in-memory SQLite database, copied page by page from one built once per process.

A throwaway instance (a simulation, the editor's "Try it") needs an empty database with every table. Building it
with ``create_all`` compiles and runs about seventy DDL statements, some 0.3-0.6 s a run; SQLite's backup API copies
a database built once into the new one in about a millisecond. The copy is rebuilt when the models change (a plugin
loaded later that declares tables of its own).
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine

from ..db import make_engine
from ..models import Base

_lock = threading.Lock()
_template: tuple[frozenset[str], Engine, Any] | None = None


def _built() -> Any:
    """The driver connection of the in-memory database holding the current schema (built on first use)."""
    global _template
    tables = frozenset(Base.metadata.tables)
    if _template is None or _template[0] != tables:
        engine = make_engine("sqlite://")
        Base.metadata.create_all(engine)
        _template = (tables, engine, engine.raw_connection().driver_connection)
    return _template[2]


def create_schema(engine: Engine) -> None:
    """Give *engine*'s empty database the models' schema: copied when it is an in-memory SQLite database (one
    connection shared by the engine), else made with ``create_all``."""
    if str(engine.url) not in ("sqlite://", "sqlite:///:memory:"):
        Base.metadata.create_all(engine)
        return
    raw = engine.raw_connection()
    try:
        with _lock:
            _built().backup(raw.driver_connection)
    finally:
        raw.close()


__all__ = ["create_schema"]
