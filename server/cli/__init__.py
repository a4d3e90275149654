"""The ``nudge`` command line."""

from __future__ import annotations

import errno
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from .. import __version__
from ..config import ConfigError
from ..db import DatabaseUnavailable


def build_app(create: bool = False, **overrides: Any):
    """create_app(), with configuration and connection problems turned into one readable line.

    :param create: whether a new embedded instance may be made (``nudge up`` and ``nudge db upgrade``);
        every other command refuses, naming where it looked (see :func:`server.config.find_home`).
    """
    from ..app import create_app

    for attempt in range(1, START_TRIES + 1):
        app = _create(create_app, overrides, create, last=attempt == START_TRIES)
        if app is not None:
            break
        time.sleep(START_WAIT)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:  # release connections when the command ends (also when invoked in-process)
        ctx.call_on_close(lambda: (app.extensions["nudge.queue"].close(), app.extensions["nudge.db"].dispose()))
    return app


#: how often a command tries to start when the database drops its connection while it starts (a failover or a
#: restart under way: the connection check passed a moment before), and the seconds between tries
START_TRIES, START_WAIT = 10, 2


def _create(create_app: Any, overrides: dict[str, Any], create: bool, last: bool) -> Any:
    """The app; None when the database dropped the connection while it started and another try is allowed."""
    from ..db import database_trouble

    try:
        return create_app(overrides or None, create=create)
    except DatabaseUnavailable as exc:
        if not exc.passing or last:  # refused, a wrong address or password: no use waiting
            raise click.ClickException(str(exc)) from None
        logging.getLogger(__name__).warning("starting: %s; trying again in %d s", exc, START_WAIT)
        return None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # e.g. a plugin conflict: still one line, not a traceback
        from ..backup import BackupError
        from ..plugins import PluginError

        if isinstance(exc, PluginError | BackupError):
            raise click.ClickException(str(exc)) from None
        trouble = database_trouble(exc)
        if trouble is None:
            raise
        if last:
            raise click.ClickException(f"{trouble.title}: {trouble.detail} ({trouble.reason})") from None
        logging.getLogger(__name__).warning("starting: %s; trying again in %d s", trouble, START_WAIT)
        return None


def _setup_logging() -> None:
    from ..logsafe import configure_logging

    configure_logging(logging.INFO)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="nudge", message="%(prog)s %(version)s")
def main() -> None:
    """Nudge: marketing automation rules, run exactly once for every contact."""


# -- running ------------------------------------------------------------------
#: ``nudge up`` runs the start-up checks once itself, so its children skip them
_NO_CHECKS = click.option("--no-checks", is_flag=True, hidden=True, help="Skip the start-up checks (nudge doctor).")


def _startup_checks(app: Any, skip: bool) -> None:
    """Log what ``nudge doctor`` would say is unsafe or blocking (never stops the process)."""
    if skip:
        return
    from ..doctor import log_checks

    _setup_logging()
    log_checks(app)


def port_problem(host: str, port: int) -> str | None:
    """Why the web server could not listen on *host*:*port*, or None when it can (checked by binding)."""
    import socket

    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        return f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}"
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress does: TIME_WAIT is free
        try:
            sock.bind(address)
        except OSError as exc:
            return _listen_error(host, port, exc)
    return None


def _listen_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use: stop what uses it, or choose another port "
            f"(nudge up --port {port + 1}, or make run PORT={port + 1})"
        )
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
def up(host: str, port: int) -> None:
    """Migrate, then run web server, workers (journeys; sends) and scheduler together (Ctrl-C stops all).

    Creates the instance (``./nudge-data``, or NUDGE_HOME) when there is none yet.
    """
    from ..auth import ensure_first_admin
    from ..config import DEFAULTS
    from ..db import get_session
    from ..embedded_redis import EmbeddedRedis
    from ..supervisor import Supervisor, child_command, child_env

    busy = port_problem(host, port)  # before anything is created or printed
    if busy:
        raise click.ClickException(busy)
    app = build_app(create=True)
    extra = {"NUDGE_HOME": app.config["HOME"], "NUDGE_MIGRATE_ON_START": "false"}
    if app.config["BASE_URL"] == DEFAULTS["BASE_URL"]:  # links in messages point at this server
        extra["NUDGE_BASE_URL"] = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"
        app.config["BASE_URL"] = extra["NUDGE_BASE_URL"]  # and the start-up checks speak of that address
    _startup_checks(app, skip=False)
    embedded = None
    if not app.config.get("REDIS_URL"):
        embedded = EmbeddedRedis(app.config["HOME"])
        already = embedded.is_alive()
        try:
            extra["NUDGE_REDIS_URL"] = embedded.ensure()
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None
        if already:
            embedded = None  # someone else's server: not ours to stop
    app.extensions["nudge.db"].dispose()

    sup = Supervisor(env=child_env(**extra), echo=lambda m: click.echo(m, err=True))
    sup.install_signal_handlers()
    sup.start("web", child_command("web", "--host", host, "--port", str(port), "--no-migrate", "--no-checks"))
    # sends have a worker of their own: behind a steady stream of events a shared one would never reach them
    sup.start("worker", child_command("worker", "--queues", "engine", "--no-checks"))
    sup.start("sender", child_command("worker", "--queues", "send", "--no-checks"))
    sup.start("scheduler", child_command("scheduler"))
    base = f"http://{host}:{port}"
    if sup.wait_http(f"{base}/healthz", timeout=3600):
        # only now: a start-up that fails leaves no admin behind whose one-time password nobody saw
        with app.app_context():
            first = ensure_first_admin(get_session())
        app.extensions["nudge.db"].dispose()
        click.echo(f"Nudge is up: {base}/admin/")
        if first:
            click.echo(f"First admin login: {first[0]} / {first[1]}  (shown once; change it after signing in)")
        else:
            click.echo("Sign in with your admin account (reset a password with: nudge admin password EMAIL)")
        click.echo("Press Ctrl-C to stop.")
    code = sup.run()
    if embedded is not None:
        embedded.stop()
    click.echo("Nudge stopped.", err=True)
    sys.exit(code)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    help="Processes serving the port (default NUDGE_WEB_PROCESSES).",
)
@click.option("--no-migrate", is_flag=True, help="Skip applying migrations on start.")
@_NO_CHECKS
def web(host: str, port: int, threads: int, processes: int | None, no_migrate: bool, no_checks: bool) -> None:
    """Run the web server (admin UI, API, tracking endpoints)."""
    from ..api.spec import REGISTRY
    from ..web.prefork import serve
    from ..web.security import declared_bodies, largest_body

    _setup_logging()
    app = build_app(**({"MIGRATE_ON_START": False} if no_migrate else {}))
    _startup_checks(app, skip=no_checks)
    _exit_on_sigterm()
    processes = processes or app.config["WEB_PROCESSES"]
    app.extensions["nudge.signin"].processes = processes  # sign-in attempts counted apart when Redis is away
    try:  # waitress refuses a larger body itself (413), before buffering it
        code = serve(
            app,
            processes=processes,
            host=host,
            port=port,
            release=lambda: (app.extensions["nudge.db"].dispose(), app.extensions["nudge.queue"].disconnect()),
            threads=threads,
            ident="nudge",
            max_request_body_size=largest_body([*(op.max_body for op in REGISTRY), *declared_bodies(app)]),
            **_proxy_options(app.config.get("TRUSTED_PROXY")),
        )
    except KeyboardInterrupt:
        code = 0
    except OSError as exc:  # the port is taken (or the address is not ours): one line, not a traceback
        raise click.ClickException(_listen_error(host, port, exc)) from None
    if code:
        sys.exit(code)


def _proxy_options(proxy: str | None) -> dict[str, Any]:
    """waitress's options to take the client's address and scheme from *proxy*'s X-Forwarded-* headers."""
    if not proxy:
        return {}
    return {
        "trusted_proxy": proxy,
        "trusted_proxy_count": 1,
        "trusted_proxy_headers": "x-forwarded-for x-forwarded-proto",
        "clear_untrusted_proxy_headers": True,
    }


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option(
    "--queues",
    type=click.Choice(["all", "engine", "send"]),
    default="all",
    show_default=True,
    help="Which jobs to take: all (journey work first, then sends), engine (events and journeys) or send.",
)
@_NO_CHECKS
def worker(burst: bool, queues: str, no_checks: bool) -> None:
    """Run a worker that processes queued jobs (it waits out Redis outages)."""
    from ..queue import serve

    _setup_logging()
    app = build_app()
    _startup_checks(app, skip=no_checks)
    serve(app, burst=burst, queues=queues)


@main.command()
@click.option("--once", is_flag=True, help="Run one tick and exit.")
def scheduler(once: bool) -> None:
    """Run the scheduler: moves due work from the database onto the queue."""
    from .scheduler_ticks import Ticks

    _setup_logging()
    app = build_app()
    stop = _stop_flag()
    interval = app.config["SCHEDULER_INTERVAL"]
    ticks = Ticks(app)
    while True:
        ticks.tick(finish_cleanup=once)  # --once: a whole cleanup when one is due
        if once or stop():
            return
        time.sleep(interval)


# -- administration -------------------------------------------------------------
@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    from ..backup import BackupError, backup_before_upgrade
    from ..db import get_db
    from ..migrate import current_revision, upgrade

    app = build_app(create=True, MIGRATE_ON_START=False)
    engine = get_db(app).engine

    def backup_first() -> None:
        def echo(line: str) -> None:
            click.echo(line, err=True)

        made = backup_before_upgrade(app.config, engine, echo)
        if made is not None:
            echo(f"backed up to {made}")

    try:
        applied = upgrade(engine, before=backup_first)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"database at revision {current_revision(engine)}" + ("" if applied else " (already up to date)"))


@main.group()
def apikey() -> None:
    """API keys."""


@apikey.command("create")
@click.option("--scope", type=click.Choice(["ingest", "admin"]), required=True)
@click.option("--name", default="", help="A label to recognise the key by.")
@click.option(
    "--expires",
    default=None,
    metavar="WHEN",
    help="When the key stops working: 90d, 12h, 4w, or a date (2027-01-31, UTC).",
)
def apikey_create(scope: str, name: str, expires: str | None) -> None:
    """Create an API key; the key is printed once, as the last line."""
    from ..apikeys import new_key, parse_expiry
    from ..db import get_session

    try:
        expires_at = parse_expiry(expires) if expires else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires") from None
    app = build_app()
    with app.app_context():
        key, _row = new_key(get_session(), scope, name, expires_at, "cli")
    until = f", valid until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
    click.echo(f"Created an API key with scope {scope}{until}. Store it now; it is not shown again:", err=True)
    click.echo(key)


@apikey.command("list")
def apikey_list() -> None:
    """List API keys: prefix, name, scope, state and dates (never the keys themselves)."""
    from ..apikeys import key_dict, list_keys
    from ..db import get_session

    app = build_app()
    with app.app_context():
        rows = [key_dict(row) for row in list_keys(get_session())]
    if not rows:
        click.echo("No API keys. Create one with: nudge apikey create --scope ingest")
        return
    columns = ("prefix", "scope", "state", "name", "created_at", "last_used_at", "expires_at", "revoked_at")
    click.echo("  ".join(columns))
    for row in rows:
        click.echo("  ".join(str(row[c] if row[c] not in (None, "") else "-") for c in columns))


@apikey.command("revoke")
@click.argument("prefix")
def apikey_revoke(prefix: str) -> None:
    """Revoke the key with PREFIX (from ``nudge apikey list``); it is refused from the next request on."""
    from ..apikeys import find_key, revoke
    from ..db import get_session

    app = build_app()
    with app.app_context():
        session = get_session()
        row = find_key(session, prefix)
        if row is None:
            raise click.ClickException(f"no API key with prefix {prefix!r}; see: nudge apikey list")
        changed = revoke(session, row, "cli")
    click.echo(f"Revoked API key {row.prefix}." if changed else f"API key {row.prefix} was revoked already.")


@main.group()
def admin() -> None:
    """Admin users."""


@admin.command("password")
@click.argument("email", default="admin@localhost")
@click.option("--prompt", "ask", is_flag=True, help="Type the new password (asked twice) instead of a random one.")
@click.option(
    "--password-stdin", "from_stdin", is_flag=True, help="Read the new password from the first line of standard input."
)
@click.option(
    "--role",
    type=click.Choice(["admin", "editor", "viewer"]),
    default=None,
    help="Give the user this role (default: an existing user keeps theirs, a new one is an admin).",
)
def admin_password(email: str, ask: bool, from_stdin: bool, role: str | None) -> None:
    """Set a new password for EMAIL (creating the user) and end every session they have.

    By default the password is random and printed as the last line; --prompt or --password-stdin
    set one you choose (at least 12 characters, not a common one). A new user is an admin unless
    --role says otherwise; an existing one keeps their role unless --role changes it.
    """
    import secrets

    from sqlalchemy import select

    from ..auth import set_password
    from ..db import get_session
    from ..models import User
    from ..passwords import password_problem

    if ask and from_stdin:
        raise click.UsageError("use either --prompt or --password-stdin, not both")
    chosen = None
    if from_stdin:
        # sys.stdin, not click.get_text_stream: Click 8.5 deprecates that (a DeprecationWarning on every use)
        chosen = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    elif ask:
        chosen = click.prompt(
            "New password", default="", show_default=False, hide_input=True, confirmation_prompt="Repeat it"
        )
    if chosen is not None:
        problem = password_problem(chosen, email)
        if problem:
            raise click.ClickException(
                f"password refused: {problem} (leave out --prompt/--password-stdin for a random one)"
            )
    app = build_app()
    with app.app_context():
        session = get_session()
        user = session.scalar(select(User).where(User.email == email.lower()))
        if user is None:
            user = User(email=email.lower(), password_hash="", role=role or "admin")
            session.add(user)
        elif role is not None:
            user.role = role
        password = chosen if chosen is not None else secrets.token_urlsafe(12)
        set_password(session, user, password)  # also signs the user out everywhere
        session.commit()
    if chosen is None:
        click.echo(password)
    else:
        click.echo(f"Password set for {email.lower()}.", err=True)


def _exit_on_sigterm() -> None:
    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _stop_flag() -> Callable[[], bool]:
    state = {"stop": False}

    def handler(_signum: int, _frame: object) -> None:
        state["stop"] = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return lambda: state["stop"]


#: modules under server/cli/ that add their commands with ``register(main)``
COMMAND_MODULES = (
    "lang",
    "check",
    "engine",
    "plugins",
    "contacts",
    "doctor",
    "config",
    "tasks",
    "stats",
    "backup",
    "splits",
    "cleanup",
)


def _register_optional() -> None:
    import importlib

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        module.register(main)


_register_optional()
