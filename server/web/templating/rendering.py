"""A template rendered for a preview: each part on its own in the sandbox, and what its channel says about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...engine.render import HTML_PARTS, TemplateError, TemplateProblem, get_renderer


@dataclass
class Preview:
    """A template rendered part by part: text per part, problems per part, the channel's facts about the result."""

    parts: dict[str, str] = field(default_factory=dict)
    problems: list[TemplateProblem] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    html_parts: frozenset[str] = HTML_PARTS
    note: str | None = None


def rendered(cls: Any, parts: dict[str, str], context: dict[str, Any]) -> Preview:
    """Render every part of *parts* on its own (so each failing part says why) and ask the channel for its facts."""
    renderer = get_renderer()
    preview = Preview()
    for part in cls.template_parts:
        source = parts.get(part)
        if not source:
            continue
        try:
            preview.parts.update(renderer.render(cls.name, {part: source}, context))
        except TemplateError as exc:
            preview.problems.extend(exc.problems)
    if not preview.problems:
        preview.facts = list(cls.preview_facts(preview.parts))
    return preview


__all__ = ["Preview", "rendered"]
