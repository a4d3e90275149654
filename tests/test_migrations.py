from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from server.db import get_db
from server.migrate import current_revisions, head_revisions, upgrade
from server.models import Base


def test_app_start_migrates_to_head(app):
    engine = get_db(app).engine
    assert current_revisions(engine) == head_revisions(app.config["DATABASE_URL"])
    assert upgrade(engine) is False  # nothing left to apply


def test_migrations_match_the_models(app):
    with get_db(app).engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


def test_db_upgrade_command(runner, app):
    result = runner.invoke(["db", "upgrade"])
    assert result.exit_code == 0
    assert "already up to date" in result.output
