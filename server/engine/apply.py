"""``nudge apply DIR``: rules and templates kept in git, checked as one unit and applied in one transaction.

Layout: ``*.nudge`` files anywhere in DIR; ``templates/<channel>/<name>.<part>`` with the parts the channel
declares (``Channel.template_parts``); for a channel that sends to endpoints (``Channel.endpoints``),
``templates/<channel>/<name>.toml`` with ``url`` and ``secret`` (or ``secrets``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import has_app_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Template, WebhookEndpoint
from .rules import Checked, RuleChange, apply_plans, check_sources, plan_changes


class ApplyError(Exception):
    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class ApplyResult:
    rules: list[RuleChange] = field(default_factory=list)
    templates: list[tuple[str, str, str]] = field(default_factory=list)  # (action, channel, name)
    endpoints: list[tuple[str, str, str]] = field(default_factory=list)  # (action, channel, name)
    warnings: list[str] = field(default_factory=list)


def read_templates(
    root: Path, channels: Mapping[str, Any]
) -> tuple[dict[tuple[str, str], dict[str, str]], dict[tuple[str, str], dict[str, Any]], list[str]]:
    """The templates and endpoints under ``root/templates``, and the problems reading them.

    :param channels: the installed channel classes: which of them take endpoint files.
    :return: ``{(channel, name): parts}``, ``{(channel, name): {"url", "secrets"}}`` and problems.
    """
    templates: dict[tuple[str, str], dict[str, str]] = {}
    endpoints: dict[tuple[str, str], dict[str, Any]] = {}
    problems: list[str] = []
    base = root / "templates"
    if not base.is_dir():
        return templates, endpoints, problems
    for path in sorted(base.glob("*/*")):
        if not path.is_file():
            continue
        channel = path.parent.name
        if getattr(channels.get(channel), "endpoints", False) and path.suffix == ".toml":
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                problems.append(f"{path}: not valid TOML: {exc}")
                continue
            secrets = data.get("secrets") or ([data["secret"]] if data.get("secret") else [])
            if not isinstance(data.get("url"), str) or not data["url"].startswith(("http://", "https://")):
                problems.append(f'{path}: needs url = "https://…"')
                continue
            endpoints[(channel, path.stem)] = {"url": data["url"], "secrets": list(secrets)}
            continue
        name, dot, part = path.name.partition(".")
        if not dot:
            problems.append(f"{path}: template files are named <name>.<part>, e.g. welcome.subject or reminder.txt")
            continue
        try:
            templates.setdefault((channel, name), {})[part] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            problems.append(f"{path}: not UTF-8 text")
    return templates, endpoints, problems


def _vocabulary(session: Session, app: Any, templates: Iterable[tuple[str, str]]) -> Any:
    from .vocabulary import instance_vocabulary

    return instance_vocabulary(session, app.extensions["nudge.plugins"], templates)


def _name_unnamed_rules_within(root: Path, files: list[str], plans: list[dict[str, Any]]) -> None:
    """A rule without a header is named ``<file>:<line>``: make that file relative to DIR, so the same
    folder applied from another checkout (a CI runner, a colleague's clone) names its rules the same."""
    for plan in plans:
        path, _, line = plan["name"].rpartition(":")
        if path in files and line == str(plan.get("line")):
            plan["name"] = f"{Path(path).relative_to(root).as_posix()}:{line}"


@dataclass
class CheckedFolder:
    """A folder of rules and templates, read and checked as one unit."""

    checked: Checked
    templates: dict[tuple[str, str], dict[str, str]]
    endpoints: dict[tuple[str, str], dict[str, Any]]

    @property
    def problems(self) -> list[str]:
        """Every error, formatted for people: the folder may not be applied while there is one."""
        return self.checked.errors


def check_folder(root: Path, vocabulary: Callable[[Iterable[tuple[str, str]]], Any], plugins: Any) -> CheckedFolder:
    """Read and check DIR exactly as ``nudge apply`` does, for ``nudge apply`` and ``nudge check DIR`` alike.

    :param vocabulary: gives the names rules may use, from the folder's ``(channel, name)`` templates and
        endpoints (the instance's when there is one, else the plugins').
    :param plugins: the plugin manager: the channels' declared template parts and endpoint files.
    """
    from .render import Renderer, get_renderer

    templates, endpoints, template_problems = read_templates(root, plugins.channels)
    renderer = get_renderer() if has_app_context() else Renderer(plugins.template_filters, channels=plugins.channels)
    for (channel, name), parts in templates.items():
        where = root / "templates" / channel / name
        template_problems += [f"{where}: {p}" for p in renderer.validate(channel, parts)]
    sources = [(str(p), p.read_bytes()) for p in sorted(root.rglob("*.nudge"))]
    checked = check_sources(sources, vocabulary([*templates.keys(), *endpoints.keys()]))
    checked.problems[:0] = [(True, problem) for problem in template_problems]
    if checked.errors:
        checked.plans = []
    _name_unnamed_rules_within(root, [path for path, _text in sources], checked.plans)
    return CheckedFolder(checked, templates, endpoints)


def apply_directory(
    session: Session, app: Any, root: Path, dry_run: bool = False, migrate: bool = False
) -> ApplyResult:
    """Check DIR as one unit; unless *dry_run*, apply it in one transaction (all or nothing)."""
    folder = check_folder(root, lambda templates: _vocabulary(session, app, templates), app.extensions["nudge.plugins"])
    if folder.problems:
        raise ApplyError(folder.problems)
    templates, endpoints, plans = folder.templates, folder.endpoints, folder.checked.plans
    result = ApplyResult(warnings=folder.checked.warnings)
    existing = {(t.channel, t.name): t for t in session.scalars(select(Template))}
    for key, parts in sorted(templates.items()):
        row = existing.get(key)
        action = "create" if row is None else ("unchanged" if row.parts == parts else "update")
        result.templates.append((action, *key))
        if not dry_run and action != "unchanged":
            if row is None:
                session.add(Template(channel=key[0], name=key[1], parts=parts))
            else:
                row.parts = parts
    known = {e.name: e for e in session.scalars(select(WebhookEndpoint))}
    for (channel, name), spec in sorted(endpoints.items()):
        endpoint = known.get(name)
        action = (
            "create"
            if endpoint is None
            else (
                "unchanged"
                if (endpoint.url, list(endpoint.secrets or [])) == (spec["url"], spec["secrets"])
                else "update"
            )
        )
        result.endpoints.append((action, channel, name))
        if not dry_run and action != "unchanged":
            if endpoint is None:
                known[name] = endpoint = WebhookEndpoint(name=name, url=spec["url"], secrets=spec["secrets"])
                session.add(endpoint)
            else:
                endpoint.url, endpoint.secrets = spec["url"], spec["secrets"]
    if dry_run:
        result.rules = plan_changes(session, plans, prune=True)
        session.rollback()
        return result
    result.rules = apply_plans(session, plans, prune=True, migrate=migrate, from_files=True)
    replan_timers(session, app, result.rules)
    session.commit()
    return result


def replan_timers(session: Session, app: Any, changes: list[RuleChange]) -> None:
    """Plan the date and schedule triggers of rules that were created, changed or resumed, for every contact."""
    from ..models import utcnow
    from . import dispatch
    from .context import EngineContext
    from .rules import timed_rules_need_planning
    from .timeutil import to_ts

    contacts = timed_rules_need_planning(session, changes)
    if not contacts:
        return
    ctx = EngineContext(session, app.config, to_ts(utcnow()), plugins=app.extensions["nudge.plugins"])
    session.flush()
    for contact in contacts:
        dispatch.contact_changed(ctx, contact, None)
    ctx.write_buffered()


def format_changes(result: ApplyResult) -> list[str]:
    symbol = {"create": "+", "update": "~", "pause": "-", "resume": "+", "unchanged": " "}
    lines: list[str] = []
    for change in result.rules:
        if change.action == "unchanged":
            continue
        text = f"{symbol[change.action]} rule {change.name!r}"
        if change.action == "create":
            text += f" (new, v{change.version})"
        elif change.action == "update":
            text += f" → v{change.version}"
            if change.in_flight:
                text += f" ({change.in_flight} contacts mid-journey)"
        elif change.action == "pause":
            text += f" paused (no longer in the folder; {change.in_flight} contacts mid-journey wait)"
        elif change.action == "resume":
            text += " resumed"
        lines.append(text)
        lines += [f"    {detail}" for detail in change.details]
    lines += [f"{symbol[a]} template {c}/{n}" for a, c, n in result.templates if a != "unchanged"]
    lines += [f"{symbol[a]} {c} endpoint {n}" for a, c, n in result.endpoints if a != "unchanged"]
    counts = {a: sum(1 for c in result.rules if c.action == a) for a in ("create", "update", "pause")}
    lines.append(f"Rules: {counts['create']} to add, {counts['update']} to change, {counts['pause']} to pause.")
    lines += [f"warning: {w}" for w in result.warnings]
    return lines
