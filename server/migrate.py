"""Apply Alembic migrations from the top-level ``migrations/`` folder."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).parent
#: arbitrary constant for pg_advisory_lock: two processes starting at once migrate one after the other
_PG_LOCK_ID = 7_243_117


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> bool:
    """Bring the schema to *revision*; return True when anything was applied."""
    url = engine.url.render_as_string(hide_password=False)
    if revision == "head" and current_revision(engine) == head_revision(url):
        return False
    cfg = alembic_config(url)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return True
