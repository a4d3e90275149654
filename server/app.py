"""The application factory: the one place where Nudge is wired together."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from functools import partial
from typing import Any

from flask import Flask, request
from flask_htmx import HTMX
from werkzeug.exceptions import HTTPException

from .clock import Clock, clock_for
from .config import load_config
from .db import Database, check_connection
from .plugins import build_plugin_manager
from .problems import problem
from .queue import TaskQueue
from .web.nudge_flask import NudgeFlask

htmx = HTMX()


def create_app(
    config: Mapping[str, Any] | None = None, create: bool = True, web: bool = True, clock: Clock | None = None
) -> Flask:
    """Build a Nudge app: config, database (migrated), queue, plugins, blueprints.

    :param config: settings that win over the config file and ``NUDGE_*`` variables
        (keys without the prefix, e.g. ``{"DATABASE_URL": "sqlite://"}``).
    :param create: whether a new embedded SQLite instance may be created (only ``nudge up`` and
        ``nudge db upgrade`` do; every other command and server process finds an existing one).
    :param web: whether to serve pages and the API; a throwaway simulation (the editor's "Try it") needs none,
        and building the routes is most of the time an app takes to start.
    :param clock: what "now" is for this app (``server.clock``); default the real clock (or, with
        ``TESTING``, the test clock file's). Tests pass one to move the engine's time.
    :raises server.config.ConfigError: when a setting is invalid, or *create* is false and there is no instance.
    :raises server.db.DatabaseUnavailable: when the database cannot be reached.
    """
    settings = load_config(config, create=create)
    app = NudgeFlask(__name__)  # URL builders and templates compiled once a process (server.web.nudge_flask)
    app.config.update(settings)
    app.extensions["nudge.clock"] = clock if clock is not None else clock_for(settings)
    from .web import security

    security.init_app(app)  # body and form limits on every route, cookie flags, framing headers
    logging.getLogger("server").setLevel(settings["LOG_LEVEL"])

    db = Database(app)
    try:
        _build(app, db, settings, web, config, create)
    except BaseException:
        db.dispose()  # a failed start must not leave a connection behind
        raise
    return app


def _build(
    app: Flask, db: Database, settings: dict[str, Any], web: bool, overrides: Mapping[str, Any] | None, create: bool
) -> None:
    check_connection(db.engine)
    if settings["MIGRATE_ON_START"]:
        from .backup import backup_before_upgrade
        from .migrate import upgrade

        upgrade(db.engine, before=partial(backup_before_upgrade, settings, db.engine, logging.getLogger(__name__).info))
    TaskQueue(app)
    htmx.init_app(app)

    pm = build_plugin_manager(app.config)
    pm.validate_config(app.config)
    from . import instance_settings

    instance_settings.check_plugin_settings(app.config, pm.channels)
    app.extensions["nudge.plugins"] = pm
    instance_settings.init_app(app, overrides, create)  # the settings saved in the admin UI, re-read when changed
    from . import plugin_writes

    app.extensions["nudge.sdk"] = plugin_writes  # what server.sdk's reads and writes call
    # the factory of throwaway instances (Try it in the rule editor): layers below the app never import it
    app.extensions["nudge.create_app"] = partial(create_app, web=False)
    if web:
        _serve(app, pm)
        _answer_database_trouble(app)
    pm.hook.startup(app=app)


def _answer_database_trouble(app: Flask) -> None:
    """The database away, full or read-only is no bug of the request: 503 (or 507: no space) with ``Retry-After``
    and what to do, problem+json under the API, instead of a 500 and a traceback.

    Two handlers: one for the error a view raised; one for the 500 Flask makes of an error raised outside a view
    (the lean event path hands its errors to ``handle_exception``, which looks only for 500 handlers).
    """
    from sqlalchemy import exc as sa_exc
    from werkzeug.exceptions import InternalServerError

    from .db import DatabaseUnavailable, database_trouble

    def answer(exc: BaseException) -> Any:
        trouble = database_trouble(exc)
        if trouble is None:
            return None
        logging.getLogger(__name__).warning("%s %s: %s", request.method, request.path, trouble)
        if request.path.startswith(("/api/", "/v1/")):
            response = problem(trouble.status, trouble.title, trouble.detail)
        else:
            response = app.response_class(
                f"{trouble.title}: {trouble.detail}.\n", status=trouble.status, mimetype="text/plain"
            )
        response.headers["Retry-After"] = str(trouble.retry_after)
        return response

    def from_view(exc: Exception) -> Any:
        response = answer(exc)
        if response is None:
            raise exc  # not the database's state: Flask's 500, as before
        return response

    def server_error(exc: InternalServerError) -> Any:
        original = exc.original_exception
        response = answer(original) if original is not None else None
        if response is not None:
            return response
        return _handler_behind(app, exc)(exc)  # the handler this one stands in front of

    # a raw driver connection's errors too (an API key's look-up runs on one): not wrapped by SQLAlchemy
    for error in (sa_exc.DBAPIError, sa_exc.TimeoutError, DatabaseUnavailable, sqlite3.Error, *_psycopg_errors()):
        app.register_error_handler(error, from_view)
    app.register_error_handler(InternalServerError, server_error)


def _psycopg_errors() -> tuple[type[Exception], ...]:
    """psycopg's base error when the PostgreSQL driver is installed (an optional extra)."""
    try:
        import psycopg
    except ImportError:
        return ()
    return (psycopg.Error,)


def _handler_behind(app: Flask, exc: HTTPException) -> Any:
    """The handler that answers *exc* when the database-trouble one steps aside: a blueprint's own (the admin areas
    show errors in their layout), else the app's for any HTTP error. A handler for code 500 outranks every handler
    by class, so without this the admin blueprints' error page would never be reached for a 500."""
    for name in (*request.blueprints, None):
        by_class = app.error_handler_spec.get(name, {}).get(None, {})
        for cls in type(exc).__mro__:
            if cls in by_class:
                return by_class[cls]
    return lambda error: error


def _serve(app: Flask, pm: Any) -> None:
    """The pages and the API: the admin UI's shell and areas, the public forms and links, the plugins' own pages."""
    from . import api
    from .web import admin, csrf, forms, health, shell, signin, tracking, unsubscribe

    csrf.init_app(app)
    shell.init_app(app)  # admin roles, flash area, navigation
    signin.SignInGuard(app)
    app.register_blueprint(api.bp)
    from .api import segment

    app.register_blueprint(segment.bp)  # /v1/batch …: the Segment clients' wire format
    app.session_interface = api.KeySessions()  # no cookie session is read or signed for API calls
    app.register_blueprint(health.bp)
    app.register_blueprint(admin.bp)
    from .web import rules as rules_area

    app.register_blueprint(rules_area.bp)
    from .web import templating as templates_area

    app.register_blueprint(templates_area.bp)
    app.register_blueprint(forms.bp)
    app.register_blueprint(tracking.bp)
    app.register_blueprint(unsubscribe.bp)
    app.register_blueprint(unsubscribe.prefs)
    from .web.crm import contacts as crm_contacts
    from .web.crm import messages as crm_messages
    from .web.crm import tasks as crm_tasks

    for area in (crm_contacts, crm_messages, crm_tasks):  # the admin UI's Contacts, Messages and Tasks
        app.register_blueprint(area.bp)
    from .web import audit as audit_area
    from .web import segments as segments_area

    app.register_blueprint(segments_area.bp)
    app.register_blueprint(audit_area.bp)
    from .web import results as results_area

    app.register_blueprint(results_area.bp)
    from .web import broadcasting, form_admin

    app.register_blueprint(form_admin.bp)
    app.register_blueprint(broadcasting.bp)
    from .web import settings as settings_area

    app.register_blueprint(settings_area.bp)  # the admin UI's Settings and Channels
    app.register_blueprint(settings_area.channels_bp)
    from .web import imports as imports_area

    app.register_blueprint(imports_area.bp)
    for blueprints in pm.hook.register_blueprints(app=app):
        for blueprint in blueprints or []:
            app.register_blueprint(blueprint)
    from .api.ingest_wsgi import LeanIngest

    app.wsgi_app = LeanIngest(app, app.wsgi_app)  # type: ignore[method-assign]  # event posts without Flask's overhead

    @app.get("/")
    def index():
        from flask import redirect, url_for

        return redirect(url_for("admin.dashboard"))
