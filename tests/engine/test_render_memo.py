"""A template part's output reused for the same values it reads: the same text as rendering it every time."""

from __future__ import annotations

import pytest

from server.engine.render import Renderer, TemplateError
from server.engine.render_memo import reads

PARTS = {
    "subject": "Welcome{% if contact.first_name %}, {{ contact.first_name }}{% endif %}!",
    "txt": "Hello {{ contact.first_name or 'there' }},\n"
    "{{ event.plan|default('free')|upper }} {{ contact['score'] }}\n",
    "html": "<p>Hello {{ contact.first_name|e }} ({{ contact.score + 1 }}) {{ unsubscribe_url }}</p>",
}
CONTEXTS = [
    {"contact": {"first_name": "Ann", "score": 1}, "event": {"plan": "pro"}, "unsubscribe_url": "https://x/u/1"},
    {"contact": {"first_name": "Ann", "score": 1}, "event": {"plan": "pro"}, "unsubscribe_url": "https://x/u/1"},
    {"contact": {"first_name": "Ann", "score": 1.0}, "event": {"plan": "pro"}, "unsubscribe_url": "https://x/u/1"},
    {"contact": {"first_name": "Ann", "score": True}, "event": {"plan": "pro"}, "unsubscribe_url": "https://x/u/1"},
    {"contact": {"first_name": "Ann", "score": -0.0}, "event": {}, "unsubscribe_url": "https://x/u/1"},
    {"contact": {"first_name": "Ann", "score": 0.0}, "event": {}, "unsubscribe_url": "https://x/u/1"},
    {"contact": {"first_name": "Zoë <b>", "score": 2}, "event": {"plan": None}, "unsubscribe_url": "https://x/u/2"},
    {"contact": {"score": 2}, "event": {"plan": "pro"}, "unsubscribe_url": "https://x/u/2"},
    {"contact": {"first_name": None, "score": 2}, "event": {"plan": "pro"}, "unsubscribe_url": "https://x/u/2"},
    {"contact": {"first_name": "", "score": 2}, "unsubscribe_url": "https://x/u/3"},
]


def test_a_part_rendered_again_for_the_same_values_gives_what_rendering_it_gives() -> None:
    kept, fresh = Renderer(), Renderer()
    for context in CONTEXTS * 2:
        expected = {part: fresh.render_part(part, source, context) for part, source in PARTS.items()}
        assert kept.render("email", PARTS, context) == expected


def test_the_values_a_part_reads_are_named_by_key() -> None:
    env = Renderer()._envs[False]
    assert reads(env.parse(PARTS["txt"])) == (("contact", "first_name"), ("event", "plan"), ("contact", "score"))


@pytest.mark.parametrize(
    "source",
    [
        "{{ [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]|random }}",  # not a function of what it reads
        "{% for x in range(3) %}{{ x }}{% endfor %}{{ contact.first_name }}",
        "{% set n = contact.first_name %}{{ n }}",
        "{{ contact.first_name|shout }}",  # a plugin's filter
        "{{ contact.first_name|upper }}",  # a plugin's filter under a built-in's name
    ],
)
def test_a_part_that_may_read_more_is_rendered_every_time(source: str) -> None:
    env = Renderer({"shout": str.upper, "upper": str.lower})._envs[False]
    assert reads(env.parse(source), {"shout", "upper"}) is None


def test_a_random_part_is_not_kept() -> None:
    renderer = Renderer()
    source = "{{ [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]|random }}"
    outputs = {renderer.render("email", {"subject": source}, {"contact": {}})["subject"] for _ in range(60)}
    assert len(outputs) > 1


@pytest.mark.parametrize(
    "source", ["{{ contact.values }}", "{{ contact['items'] }}", "{{ contact.first_name.upper }}", "{{ range }}"]
)
def test_a_method_or_function_shown_is_rendered_every_time(source: str) -> None:
    """Its text names where it lives in memory (a fresh dict each message): never the same twice."""
    env = Renderer()._envs[False]
    assert reads(env.parse(source), (), env.globals) is None


def test_a_part_with_a_plugin_filter_calls_it_for_every_message() -> None:
    calls: list[str] = []

    def count(value: str) -> str:
        calls.append(value)
        return value

    renderer = Renderer({"count": count})
    for _ in range(3):
        renderer.render("email", {"subject": "{{ contact.first_name|count }}"}, {"contact": {"first_name": "A"}})
    assert calls == ["A", "A", "A"]


def test_a_failed_render_is_not_kept() -> None:
    renderer = Renderer()
    parts = {"txt": "{{ 1 // contact.n }}"}
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        renderer.render("email", parts, {"contact": {"n": 0}})
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        renderer.render("email", parts, {"contact": {"n": 0}})
    assert renderer.render("email", parts, {"contact": {"n": 1}}) == {"txt": "1"}


def test_kept_outputs_stay_within_their_bound_and_stay_right(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.engine import render

    monkeypatch.setattr(render, "MEMO_CHARS", 100)
    renderer = Renderer()
    parts = {"txt": "{{ contact.first_name }}{{ contact.first_name }}"}
    for n in range(200):
        name = f"name-{n % 30}"
        assert renderer.render("email", parts, {"contact": {"first_name": name}}) == {"txt": name * 2}
        assert renderer._memo_chars <= 100


def test_a_context_is_made_plain_data_whatever_its_types_and_depth() -> None:
    """What a template sees of its context: JSON-like data (dates as ISO text, tuples and sets as lists, keys as
    text, anything else as its text), up to 20 levels; deeper is refused, not cut."""
    from datetime import UTC, date, datetime
    from enum import IntEnum

    class Level(IntEnum):
        HIGH = 3

    class Tag(str):
        pass

    show = {"txt": "{{ c|tojson }}"}
    context = {
        "c": {
            "when": datetime(2026, 12, 1, 4, 30, tzinfo=UTC),
            "day": date(2026, 12, 1),
            "pair": (1, 2.5),
            "one": {True},
            7: None,
            "level": Level.HIGH,
            "tag": Tag("vip"),
            "nested": [{"k": [None, "x"]}],
            "other": complex(1, 2),
        }
    }
    assert Renderer().render("email", show, context) == {
        "txt": '{"7": null, "day": "2026-12-01", "level": 3, "nested": [{"k": [null, "x"]}], "one": [true], '
        '"other": "(1+2j)", "pair": [1, 2.5], "tag": "vip", "when": "2026-12-01T04:30:00+00:00"}'
    }
    deep: object = "bottom"
    for _ in range(19):  # the context is level 0, its value "d" 1, the string 20
        deep = [deep]
    assert Renderer().render("email", {"txt": "{{ d|length }}"}, {"d": deep}) == {"txt": "1"}
    with pytest.raises(TemplateError, match="nests deeper than 20 levels"):
        Renderer().render("email", {"txt": "{{ d|length }}"}, {"d": [deep]})
    deep_dict: object = {"leaf": 1}
    for _ in range(18):  # the value 1 at level 20
        deep_dict = {"k": deep_dict}
    assert Renderer().render("email", {"txt": "{{ d.k|length }}"}, {"d": deep_dict}) == {"txt": "1"}
    with pytest.raises(TemplateError, match="nests deeper than 20 levels"):
        Renderer().render("email", {"txt": "{{ d|length }}"}, {"d": {"k": deep_dict}})
