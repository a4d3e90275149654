"""Fixtures: the app built by create_app() on SQLite and PostgreSQL, a real Redis, a real SMTP server."""

from __future__ import annotations

import itertools
import os
import uuid

import pytest
from click.testing import CliRunner

from server.app import create_app
from server.clock import ShiftedClock
from server.embedded_redis import EmbeddedRedis

from .servers import MigratedTemplates, PostgresServer, SmtpServer

_db_counter = itertools.count()

# Tests never read the developer's own settings.
for _name in list(os.environ):
    if _name.startswith("NUDGE_"):
        del os.environ[_name]


def pytest_addoption(parser):
    parser.addoption(
        "--backends", default="sqlite,postgresql", help="database backends to run the app tests on (comma-separated)"
    )


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: without xdist (-p no:xdist) it is not known
def pytest_xdist_auto_num_workers(config):
    """``--numprocesses=auto``: a worker more than the cores this process may use (``--maxprocesses`` still caps it).
    The suite's tests spend much of their time waiting on other processes (``nudge`` commands, the browser, the
    database, real clocks): the extra worker fills that time (README, "Contributing", has the figures)."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere every core counts
    return (len(affinity(0)) if affinity is not None else os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(config, items):
    """PostgreSQL-only tests are deselected, not skipped, when ``--backends`` leaves PostgreSQL out. The slow tests
    (``slow``: real processes, half a minute or more) run first: pytest-xdist hands them out round-robin at the start,
    so no worker is left with a three-minute test while the others have finished."""
    if "postgresql" not in config.getoption("--backends").split(","):
        dropped = [item for item in items if item.get_closest_marker("postgresql")]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if not item.get_closest_marker("postgresql")]
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: each group keeps its order


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """No test passes by being skipped: a skip (a missing input, tool or package) is reported as a failure."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} was skipped ({_skip_reason(report)}); a test may not pass by being "
            "skipped: install what it needs (`make test` installs everything) or deselect it"
        )
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole module skipped at import (``pytest.importorskip``, ``pytest.skip(allow_module_level)``)."""
    report = yield
    if report.skipped:
        report.outcome = "failed"
        report.longrepr = (
            f"{collector.nodeid} was skipped ({_skip_reason(report)}); install what it needs "
            "(`make test` installs everything)"
        )
    return report


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        backends = metafunc.config.getoption("--backends").split(",")
        if metafunc.definition.get_closest_marker("sqlite"):
            backends = ["sqlite"]
        metafunc.parametrize("backend", backends, scope="session")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory):
    """Databases migrated once a session, copied into each ``app``'s new database (see :class:`MigratedTemplates`)."""
    templates = MigratedTemplates(tmp_path_factory.mktemp("templates"))
    yield templates
    templates.close()


@pytest.fixture
def database_url(backend, tmp_path, request):
    """A fresh database for one test: empty, or on PostgreSQL already a copy of the migrated template when the test's
    app will start from it (``migrated_templates`` in its fixtures: one CREATE DATABASE instead of an empty one
    dropped and created again; made in the background while the previous test ran). A PostgreSQL database is dropped
    after the test (in the background) unless something still uses it."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'nudge.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"t{next(_db_counter)}_{uuid.uuid4().hex[:8]}"
    if "migrated_templates" in request.fixturenames:
        templates = request.getfixturevalue("migrated_templates")
        url = templates.new_pg_database(server, name)
        yield url
        templates.drop_later(server, url.rsplit("/", 1)[1])
        return
    yield server.new_database(name)
    server.drop_database(name)


@pytest.fixture
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def clock(tmp_path) -> ShiftedClock:
    """The engine's clock for this test: the real time until the test moves it on with ``clock.advance(...)``.

    The app, the in-process CLI and every ``nudge`` process the test starts share it (``NUDGE_TEST_CLOCK_FILE``).
    """
    return ShiftedClock(tmp_path / "clock")


@pytest.fixture
def config(tmp_path, database_url, redis_server, smtp_server, clock):
    return {
        "TESTING": True,
        "TEST_CLOCK_FILE": str(clock.path),
        "HOME": str(tmp_path / "home"),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_server.url,
        "SMTP_URL": smtp_server.url,
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:10]}",
        "SECRET_KEY": "test-secret-key-0123456789",
        "LOAD_ENTRY_POINTS": False,
        "POSTAL_ADDRESS": "Acme Ltd, 1 Main Street, Springfield",  # marketing email is refused without one
    }


@pytest.fixture
def app(config, clock, migrated_templates, request):
    if config.get("MIGRATE_ON_START", True):  # starting would migrate the new database: start from a migrated copy
        migrated_templates.fill(config["DATABASE_URL"], lambda: request.getfixturevalue("postgres_server"))
    app = create_app(config, clock=clock)
    app.config["TESTING"] = True
    yield app
    app.extensions["nudge.queue"].close()
    app.extensions["nudge.db"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(config, monkeypatch):
    """Invoke the ``nudge`` CLI in-process with the test's settings as NUDGE_* variables."""
    from server.cli import main

    for key, value in config.items():
        monkeypatch.setenv(f"NUDGE_{key}", str(value))

    class Runner(CliRunner):
        def invoke(self, *args, **kwargs):
            kwargs.setdefault("catch_exceptions", False)
            return super().invoke(main, *args, **kwargs)

    return Runner()
