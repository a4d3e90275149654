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


def head_revisions(url: str) -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def current_revisions(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def current_revision(engine: Engine) -> str:
    """The applied revision(s), for people: ``0002`` or ``0003a+0003b``."""
    return "+".join(sorted(current_revisions(engine))) or "none"


def upgrade(engine: Engine, revision: str = "heads") -> bool:
    """Bring the schema to *revision* (all heads by default); return True when anything was applied."""
    url = engine.url.render_as_string(hide_password=False)
    if revision == "heads" and current_revisions(engine) == head_revisions(url):
        return False
    cfg = alembic_config(url)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return True
