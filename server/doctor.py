"""Checks of an instance's set-up: unsafe defaults and what blocks sending (``nudge doctor``, the start-up log).

The core checks what is its own (the public address, test mode, Redis); every channel checks itself through
:meth:`server.sdk.Channel.diagnose`, told whether it is in use (an active rule sends on it, or
messages wait to go out on it), so a third-party channel's checks appear exactly like a built-in one's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from flask import Flask
from sqlalchemy import select

from dsl.plan import PLAN_VERSION, PlanVersionError, require_version

from .db import get_session
from .models import Message, MessageStatus, Rule, RuleStatus, RuleVersion
from .sdk import Check

log = logging.getLogger(__name__)


def _active_plans(session: Any) -> list[tuple[str, dict[str, Any]]]:
    """(rule name, stored plan) of every active rule's active version."""
    rows = session.execute(
        select(Rule.name, RuleVersion.plan)
        .join(Rule, Rule.active_version_id == RuleVersion.id)
        .where(Rule.status == RuleStatus.ACTIVE.value)
    )
    return [(name, plan or {}) for name, plan in rows]


def channels_in_use(session: Any) -> set[str]:
    """Channels an active rule sends on, or pending messages wait for."""
    used = set(session.scalars(select(Message.channel).where(Message.status == MessageStatus.PENDING.value).distinct()))
    for _name, plan in _active_plans(session):
        used.update(step["channel"] for step in plan.get("steps", ()) if step.get("op") == "send")
    return used


def _plan_formats(session: Any) -> Check:
    """Active rules whose stored plan this Nudge cannot run (compiled by another version of Nudge)."""
    for name, plan in _active_plans(session):
        try:
            require_version(plan, f"the active version of rule {name!r}")
        except PlanVersionError as exc:
            return Check("rule plans", "error", str(exc))
    return Check("rule plans", "ok", f"every active rule's plan is format {PLAN_VERSION}")


def _base_url(config: Any) -> Check:
    url = config["BASE_URL"]
    if url.startswith("https://"):
        return Check("public address", "ok", url)
    return Check(
        "public address",
        "warn",
        f"NUDGE_BASE_URL is {url}: links in messages and the one-click "
        "unsubscribe go over plain HTTP (Gmail and Yahoo want https); set NUDGE_BASE_URL=https://…",
    )


def _test_mode(config: Any) -> Check:
    if not config.get("TESTING"):
        return Check("test mode", "ok", "off")
    return Check(
        "test mode",
        "warn",
        "NUDGE_TESTING is on: errors reach the caller instead of a 500 page and a test clock may move time; "
        "it is for Nudge's own tests: unset NUDGE_TESTING (and NUDGE_TEST_CLOCK_FILE)",
    )


def _redis(app: Flask) -> Check:
    if not app.config.get("REDIS_URL"):
        return Check("redis", "ok", "embedded (nudge up starts it inside NUDGE_HOME)")
    try:
        app.extensions["nudge.queue"].redis.ping()
    except Exception as exc:  # whatever the client raises, the answer is "unreachable"
        return Check(
            "redis",
            "error",
            f"cannot reach NUDGE_REDIS_URL ({type(exc).__name__}: {exc}); nothing is queued or sent until it answers",
        )
    return Check("redis", "ok", "answers")


def run_checks(app: Flask) -> list[Check]:
    """Every check, core first, then each channel's in name order. Call inside an app context."""
    checks = [_base_url(app.config), _test_mode(app.config), _redis(app), _plan_formats(get_session())]
    pm = app.extensions["nudge.plugins"]
    in_use = channels_in_use(get_session())
    for name in sorted(pm.channels):
        try:
            found: Iterable[Check] = pm.channel(name, app.config).diagnose(in_use=name in in_use)
            checks.extend(found)
        except Exception as exc:  # a channel's broken check must not hide the others
            checks.append(
                Check(f"{name}: checks", "error", f"the {name} channel's checks failed: {type(exc).__name__}: {exc}")
            )
    return checks


def log_checks(app: Flask) -> list[Check]:
    """Run the checks and log every one that is not ok (errors as errors), for the start-up of a process.

    Never raises: a process starts whatever the checks find, or however they fail.
    """
    try:
        with app.app_context():
            checks = run_checks(app)
    except Exception:  # e.g. the database went away between start-up and here
        log.exception("the start-up checks failed; run nudge doctor")
        return []
    for check in checks:
        if check.status != "ok":
            log.log(
                logging.ERROR if check.status == "error" else logging.WARNING,
                "%s %s — %s (nudge doctor)",
                check.status,
                check.name,
                check.detail,
            )
    return checks


__all__ = ["channels_in_use", "log_checks", "run_checks"]
