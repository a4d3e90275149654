"""docs/configuration.md lists every setting, generated from the declarations; it fails here when they drift."""

from __future__ import annotations

import re
from pathlib import Path

from server.config import DEFAULTS, SETTINGS
from server.configdoc import generate
from server.plugins import DEFAULT_PLUGINS, PluginManager
from server.sdk import validate_schema

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"
#: app.config keys that are Flask's or derived at start-up, not settings anyone sets
NOT_SETTINGS = {
    "CSRF_EXEMPT_BLUEPRINTS",
    "SESSION_COOKIE_SECURE",
    "SMTP",
    "TESTING",
    # Flask's own, set by server/web/security.py
    "MAX_CONTENT_LENGTH",
    "MAX_FORM_MEMORY_SIZE",
    "MAX_FORM_PARTS",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
}
READ = re.compile(r"""config(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]*)["']""")


def _plugin_schemas() -> dict[str, dict]:
    pm = PluginManager()
    pm.load({}, default_plugins=DEFAULT_PLUGINS, use_entry_points=False)
    return {name: dict(cls.config_schema) for name, cls in pm.channels.items()}


def test_the_committed_reference_is_what_the_declarations_generate():
    assert DOC.read_text() == generate(), "docs/configuration.md is stale: run `make docs` and commit it"


def test_nudge_config_docs_prints_the_reference(runner):
    result = runner.invoke(["config", "docs"])
    assert result.exit_code == 0 and result.stdout == generate()


def test_every_core_and_plugin_setting_is_in_the_reference_with_its_help():
    text = DOC.read_text()
    assert validate_schema(SETTINGS) == []
    assert {key: spec.get("default") for key, spec in SETTINGS.items()} == DEFAULTS
    declared = {**SETTINGS, **{k: v for schema in _plugin_schemas().values() for k, v in schema.items()}}
    for key, spec in declared.items():
        assert spec.get("help"), f"{key} is declared without help"
        assert f"| `NUDGE_{key}` |" in text, f"NUDGE_{key} is missing from docs/configuration.md"
    # what the issue names: SMTP, DKIM, postal address, Twilio, bounce endpoint, webhooks
    for key in (
        "SMTP_URL",
        "DKIM_SELECTOR",
        "POSTAL_ADDRESS",
        "TWILIO_AUTH_TOKEN",
        "EMAIL_WEBHOOK_SECRET",
        "WEBHOOK_ALLOW",
        "UNSUBSCRIBE_MAILTO",
        "LIST_ID",
        "FEEDBACK_ID",
    ):
        assert key in declared


def test_every_setting_the_code_reads_is_declared():
    declared = set(SETTINGS).union(*(schema.keys() for schema in _plugin_schemas().values()))
    undeclared = set()
    for path in [*(ROOT / "server").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]:
        for key in READ.findall(path.read_text()):
            if key not in declared and key not in NOT_SETTINGS:
                undeclared.add(f"{path.relative_to(ROOT)} reads {key}")
    assert not undeclared, (
        "declare these in server/config.py SETTINGS or the channel's config_schema, then "
        f"run `make docs`: {sorted(undeclared)}"
    )
