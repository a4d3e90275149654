"""``nudge doctor`` and the start-up log: unsafe defaults say so, and what blocks sending exits non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from server.db import get_session
from server.engine.rules import pause
from server.models import Message, RuleVersion

from .helpers import load_rules
from .servers import free_port, reap

PAGER = "plugins.email_smtp,plugins.sms_twilio,plugins.webhook,tests.plugins.pager_plugin"
SMS_RULE = 'rule "Reminder"\nwhen form.submitted then\n  send sms reminder\nend\n'
EMAIL_RULE = 'rule "Welcome"\nwhen form.submitted then\n  send email welcome\nend\n'


def doctor(runner) -> tuple[int, dict[str, tuple[str, str]]]:
    """Run ``nudge doctor``: its exit code and {check: (status, what to do)}, one line per check."""
    result = runner.invoke(["doctor"])
    checks = {}
    for line in result.stdout.splitlines():
        status, _, rest = line.partition("  ")
        name, _, detail = rest.strip().partition(" — ")
        assert status.strip() in ("ok", "warn", "error") and detail, line
        checks[name] = (status.strip(), detail)
    return result.exit_code, checks


def test_unsafe_defaults_are_warnings_that_say_what_to_do(runner, app):
    code, checks = doctor(runner)
    assert code == 0  # warnings alone do not block
    assert checks["public address"][0] == "warn" and "NUDGE_BASE_URL=https://" in checks["public address"][1]
    assert checks["email: sender"][0] == "warn" and "NUDGE_MAIL_FROM" in checks["email: sender"][1]  # @localhost
    assert checks["email: DKIM"][0] == "warn" and "NUDGE_DKIM_SELECTOR" in checks["email: DKIM"][1]
    assert checks["email: postal address"][0] == "ok" and checks["email: SMTP server"][0] == "ok"
    assert checks["sms: Twilio"] == ("ok", "not configured (no active rule sends SMS)")
    assert checks["redis"][0] == "ok"


def test_test_mode_is_a_warning_and_off_is_ok(runner, app, monkeypatch):
    code, checks = doctor(runner)
    assert code == 0 and checks["test mode"][0] == "warn" and "unset NUDGE_TESTING" in checks["test mode"][1]
    monkeypatch.setenv("NUDGE_TESTING", "false")
    monkeypatch.setenv("NUDGE_TEST_CLOCK_FILE", "")
    code, checks = doctor(runner)
    assert code == 0 and checks["test mode"] == ("ok", "off")


def test_an_active_rule_whose_plan_this_nudge_cannot_run_is_an_error(runner, app):
    load_rules(app, EMAIL_RULE)
    code, checks = doctor(runner)
    assert code == 0 and checks["rule plans"][0] == "ok"
    with app.app_context():
        version = get_session().scalar(select(RuleVersion))
        version.plan = {**version.plan, "version": 1}
        get_session().commit()
    code, checks = doctor(runner)
    assert code == 1 and checks["rule plans"][0] == "error"
    assert "rule 'Welcome'" in checks["rule plans"][1] and "nudge db upgrade" in checks["rule plans"][1]


def test_what_blocks_sending_is_an_error_and_exits_non_zero(runner, app, monkeypatch):
    load_rules(app, EMAIL_RULE)
    monkeypatch.setenv("NUDGE_POSTAL_ADDRESS", "")
    monkeypatch.setenv("NUDGE_SMTP_URL", f"smtp://127.0.0.1:{free_port()}?timeout=5")
    code, checks = doctor(runner)
    assert code == 1
    assert (
        checks["email: postal address"][0] == "error" and "NUDGE_POSTAL_ADDRESS" in checks["email: postal address"][1]
    )
    assert checks["email: SMTP server"][0] == "error" and "cannot connect" in checks["email: SMTP server"][1]


def test_twilio_missing_is_an_error_only_while_an_active_rule_sends_sms(runner, app):
    load_rules(app, SMS_RULE)
    code, checks = doctor(runner)
    assert code == 1 and checks["sms: Twilio"][0] == "error"
    assert "NUDGE_TWILIO_ACCOUNT_SID" in checks["sms: Twilio"][1]
    with app.app_context():
        pause(get_session(), "Reminder")
        get_session().commit()
    code, checks = doctor(runner)
    assert code == 0 and checks["sms: Twilio"][0] == "ok"


def test_a_third_party_channel_checks_itself_through_diagnose(runner, app, monkeypatch):
    monkeypatch.setenv("NUDGE_PLUGINS", PAGER)
    code, checks = doctor(runner)
    assert code == 0 and checks["pager: token"] == ("warn", "not set; set NUDGE_PAGER_TOKEN")
    with app.app_context():  # messages wait to go out on it: now its problem blocks sending
        get_session().add(Message(key="page-1", channel="pager", template="alert", status="pending", data={}))
        get_session().commit()
    code, checks = doctor(runner)
    assert code == 1 and checks["pager: token"][0] == "error"
    monkeypatch.setenv("NUDGE_PAGER_TOKEN", "t0ken")
    code, checks = doctor(runner)
    assert code == 0 and checks["pager: token"] == ("ok", "set")


def test_worker_logs_the_checks_when_it_starts(runner, app, monkeypatch, caplog):
    monkeypatch.setenv("NUDGE_POSTAL_ADDRESS", "")
    result = runner.invoke(["worker", "--burst"])
    assert result.exit_code == 0
    logged = {(r.levelname, r.getMessage().split(" — ")[0]) for r in caplog.records if r.name == "server.doctor"}
    assert ("WARNING", "warn email: DKIM") in logged and ("WARNING", "warn public address") in logged
    assert ("WARNING", "warn email: postal address") in logged  # no rule sends email yet: not blocking
    assert not any("ok " in message for _level, message in logged)


def _nudge(args: list[str], config: dict, **env: str) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    full.update({f"NUDGE_{k}": str(v) for k, v in config.items()}, **env)
    return subprocess.Popen(
        [sys.executable, "-m", "server.cli", *args],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until(proc: subprocess.Popen, needle: str, timeout: float = 60) -> list[str]:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} not seen in: {''.join(seen)}")


@pytest.mark.slow
@pytest.mark.parametrize("command", [["web", "--port", "0"], ["up", "--port", "0"]], ids=["web", "up"])
def test_web_and_up_log_the_checks_once_at_start_up(config, app, command):
    port = str(free_port())
    proc = _nudge([*command[:-1], port], config, NUDGE_MIGRATE_ON_START="false")
    try:
        seen = _read_until(proc, "Nudge is up" if command[0] == "up" else "Serving on")
    finally:
        reap(proc)
    dkim = [line for line in seen if "warn email: DKIM" in line]
    assert len(dkim) == 1, "".join(seen)  # nudge up checks once, its children do not repeat it
    assert "NUDGE_DKIM_SELECTOR" in dkim[0]
