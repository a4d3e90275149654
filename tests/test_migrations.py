from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from server.db import get_db
from server.migrate import current_revisions, head_revisions, upgrade
from server.models import Base


def test_app_start_migrates_to_head(app):
    engine = get_db(app).engine
    assert current_revisions(engine) == head_revisions()
    assert upgrade(engine) is False  # nothing left to apply


def test_migrations_match_the_models(app):
    with get_db(app).engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


def test_db_upgrade_command(runner, app):
    result = runner.invoke(["db", "upgrade"])
    assert result.exit_code == 0
    assert "already up to date" in result.output


def test_the_heads_are_read_once_and_again_when_a_migration_file_changes(tmp_path, monkeypatch):
    import shutil

    from alembic.script import ScriptDirectory

    from server import migrate

    folder = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", folder)
    loads = []
    real = ScriptDirectory.from_config
    monkeypatch.setattr(ScriptDirectory, "from_config", lambda cfg: loads.append(1) or real(cfg))
    heads = migrate.head_revisions()
    assert migrate.head_revisions() == heads and len(loads) == 1  # the second app of a process reads nothing
    (head,) = heads
    (folder / "versions" / "9999_next.py").write_text(
        f'revision = "9999"\ndown_revision = "{head}"\nbranch_labels = None\ndepends_on = None\n\n\n'
        "def upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n"
    )
    assert migrate.head_revisions() == {"9999"} and len(loads) == 2  # a new migration is seen at once
