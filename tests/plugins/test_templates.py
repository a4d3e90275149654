"""Message templates: Jinja2's immutable sandbox, bounded in time and size, checked when saved."""

from __future__ import annotations

import sys

import pytest
from sqlalchemy import select

from server.db import get_session
from server.engine.ingest import upsert_contact
from server.engine.outbox import deliver
from server.engine.render import (
    Renderer,
    TemplateError,
    TemplateProblem,
    load_parts,
    render,
    save_template,
)
from server.models import Contact, Message, Template

CONTEXT = {
    "contact": {"first_name": "Ana <script>", "email": "ana@example.com"},
    "event": {"plan": "pro"},
    "links": {"pricing": "https://acme.example/p?a=1&b=2"},
    "unsubscribe_url": "https://n.example/u/t",
}


@pytest.fixture(scope="module")
def renderer():
    """A renderer knowing the built-in channels' declared parts, as the app's knows the installed ones."""
    from server.plugins import build_plugin_manager

    return Renderer(channels=build_plugin_manager({"LOAD_ENTRY_POINTS": False}).channels)


def test_html_is_autoescaped_and_text_parts_are_not(renderer):
    parts = {
        "subject": "Hi {{ contact.first_name }}",
        "txt": "Hi {{ contact.first_name }}",
        "html": '<p>Hi {{ contact.first_name }}</p><a href="{{ links.pricing }}">x</a>',
    }
    out = renderer.render("email", parts, CONTEXT)
    assert out["subject"] == out["txt"] == "Hi Ana <script>"
    assert out["html"] == '<p>Hi Ana &lt;script&gt;</p><a href="https://acme.example/p?a=1&amp;b=2">x</a>'


def test_missing_data_renders_empty(renderer):
    assert renderer.render_part(
        "txt", "[{{ contact.nickname }}][{{ event.nothing.deeper }}]", CONTEXT
    ) == "[][]" or pytest.fail("missing data must not fail a send")


HOSTILE = {
    "class walk": "{{ ''.__class__.__mro__ }}",
    "globals via a function": "{{ cycler.__init__.__globals__.os }}",
    "attr filter": "{{ ''|attr('format') }}",
    "format string attribute walk": "{{ '{0.__class__}'.format(contact) }}",
    "huge range": "{% for i in range(10**9) %}x{% endfor %}",
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "recursive macro": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "string multiplication": "{{ 'x' * 10**9 }}",
    "list multiplication": "{{ [0] * 1000000000 }}",
    "huge number": "{{ ((10**60)**60)**60 }}",
    "concatenation doubling": "{% set a = 'x' * 900000 %}{% set b = a ~ a %}{{ b }}",
    "format width": "{{ '%999999999d' % 1 }}",
    "filter width": "{{ 'x'|center(999999999) }}",
    "repeated replace": "{{ 'a'|replace('a', 'a' * 2000)|replace('a', 'a' * 2000) }}",
    "long output": "{% for i in range(100000) %}{{ 'padding-padding-padding' }}{% endfor %}",
}


@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_templates_fail_cleanly_and_rendering_goes_on(renderer, source):
    trace = sys.gettrace()
    with pytest.raises(TemplateError) as caught:
        renderer.render_part("txt", source, CONTEXT)
    assert caught.value.problems[0].part == "txt"
    assert sys.gettrace() is trace  # the time guard put back whatever tracer was there
    assert renderer.render_part("txt", "still {{ 'fine' }}", CONTEXT) == "still fine"


@pytest.mark.parametrize("source", [s for name, s in HOSTILE.items() if name != "long output"])
def test_hostile_templates_are_refused_when_saved(renderer, source):
    problems = renderer.validate("email", {"subject": "Hi", "txt": source})
    assert problems and problems[0].part == "txt" and problems[0].line == 1


def test_render_time_is_bounded_by_the_limit():
    quick = Renderer(time_limit=0.05)
    with pytest.raises(TemplateError, match="time budget"):
        quick.render_part("txt", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", {})


def test_a_render_that_waited_for_a_core_is_not_stopped_by_the_clock(monkeypatch):
    """The budget is the thread's CPU time: on a busy machine the clock runs on while the thread waits for a core
    (here a second passes at every look), and a small template still renders; a runaway one still stops."""
    import time as real

    from server.engine import sandbox

    class Busy:
        passed = 0.0

        def monotonic(self) -> float:
            self.passed += 1.0
            return real.monotonic() + self.passed

        thread_time = staticmethod(real.thread_time)

    monkeypatch.setattr(sandbox, "time", Busy())
    renderer = Renderer(time_limit=0.05)
    source = "{% for i in range(200) %}{{ i }}{% endfor %}"
    assert renderer.render_part("txt", source, {}) == "".join(map(str, range(200)))
    with pytest.raises(TemplateError, match="time budget"):
        renderer.render_part(
            "txt", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", {}
        )


def test_output_size_is_bounded_by_the_limit():
    small = Renderer(max_output=1000)
    assert len(small.render_part("txt", "{{ 'x' * 1000 }}", {})) == 1000
    with pytest.raises(TemplateError, match="longer than 1000"):
        small.render_part("txt", "{% for i in range(11) %}{{ 'x' * 100 }}{% endfor %}", {})


def test_only_plain_data_reaches_a_template(renderer):
    class Secret:
        def reveal(self):
            return "leaked"

        def __str__(self):
            return "a secret"

    out = renderer.render(
        "email",
        {"subject": "{{ event.obj }}", "txt": "{{ event.obj.reveal is defined }}"},
        {"event": {"obj": Secret()}},
    )
    assert out == {"subject": "a secret", "txt": "False"}


def test_runtime_errors_name_the_part_and_line(renderer):
    with pytest.raises(TemplateError) as caught:
        renderer.render("email", {"subject": "ok", "txt": "line one\nline two\n{{ 1 / 0 }}"}, {}, template="offer")
    [problem] = caught.value.problems
    assert (problem.part, problem.line) == ("txt", 3) and "ZeroDivisionError" in problem.message
    assert str(caught.value).startswith("template offer: txt:3: ")


def test_validation_reports_every_problem_with_its_line(renderer):
    problems = renderer.validate(
        "email",
        {
            "subject": "Hello {{ contcat.first_name }}",
            "html": "<p>\nHello\n{{ contact.first_name }\n</p>",
            "footer": "x",
        },
    )
    by_part = {p.part: p for p in problems}
    assert by_part["subject"] == TemplateProblem("subject", 1, 'unknown name "contcat" — did you mean "contact"?')
    assert by_part["html"].line == 3 and "unexpected '}'" in by_part["html"].message
    assert "no part 'footer'" in by_part["footer"].message


def test_validation_knows_each_channels_parts(renderer):
    assert renderer.validate("sms", {"txt": "Hi {{ contact.first_name }}"}) == []
    assert renderer.validate("webhook", {}) == []
    assert [str(p) for p in renderer.validate("sms", {"html": "<p>"})] == [
        "html: sms templates have no part 'html'; use txt",
        "txt: a sms template needs a txt",
    ]
    assert [str(p) for p in renderer.validate("email", {"subject": "Hi"})] == [
        "txt: an email template needs a txt or an html part"
    ]
    assert [str(p) for p in renderer.validate("fax", {"txt": "Hi"})] == [
        "channel: unknown channel 'fax'; installed: email, sms, webhook"
    ]


def test_a_saved_template_replaces_the_builtin_and_a_bad_one_is_not_saved(app):
    with app.app_context():
        session = get_session()
        with pytest.raises(TemplateError) as caught:
            save_template(session, "email", "welcome", {"subject": "Hi", "txt": "{% for x in %}"})
        assert caught.value.problems[0].line == 1
        assert session.scalar(select(Template)) is None
        save_template(
            session, "email", "welcome", {"subject": "Hey {{ contact.first_name }}", "txt": "Body", "html": ""}
        )
        session.commit()
        assert load_parts(session, "email", "welcome") == {"subject": "Hey {{ contact.first_name }}", "txt": "Body"}
        contact = Contact(email="a@example.com", first_name="Bo")
        assert render("welcome", channel="email", contact=contact, data={}) == {"subject": "Hey Bo", "txt": "Body"}
        with pytest.raises(TemplateError, match="no email template named 'missing'"):
            render("missing", channel="email", contact=None, data={})


def test_the_builtin_welcome_template_is_the_fallback(app):
    with app.app_context():  # the email channel ships it
        parts = render("welcome", channel="email", contact={"first_name": "Ana"}, data={})
    assert parts["subject"] == "Welcome, Ana!" and "thanks for signing up" in parts["txt"]
    assert parts["html"].startswith("<p>Hello Ana")


def test_a_hostile_stored_template_fails_its_message_and_the_worker_sends_the_next(app, smtp_server):
    with app.app_context():
        session = get_session()
        session.add(Template(channel="email", name="evil", parts={"subject": "x", "txt": HOSTILE["nested loops"]}))
        contact = upsert_contact(session, {"email": "ana@example.com"})
        rows = [
            Message(key=f"t:{name}", contact_id=contact.id, channel="email", template=name, data={"marketing": False})
            for name in ("evil", "welcome")
        ]
        session.add_all(rows)
        session.commit()
        sent = deliver(session, app, [row.id for row in rows])
        evil, welcome = (session.get(Message, row.id) for row in rows)
        session.refresh(evil)
        session.refresh(welcome)
    assert sent == 1
    assert evil.status == "failed" and "time budget" in evil.error and "txt:1" in evil.error
    assert welcome.status == "sent"
    assert [m["Subject"] for m in smtp_server.wait_for(1)] == ["Welcome!"]
