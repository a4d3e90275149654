"""Rendering message templates in Jinja2's immutable sandbox, within time and size limits.

Templates are stored per channel and name in the ``templates`` table; each has
parts (email: ``subject``, ``html``, ``txt``; sms: ``txt``; webhook: ``body``).
Only ``html`` is autoescaped. A template sees plain data only (``contact``,
``event``, ``links``, ``unsubscribe_url``), never model objects.

Hostile templates fail with :class:`TemplateError` instead of harming the
worker: unsafe attributes raise at once, the ``attr`` filter is gone, ``range``
is capped, string and list growth (``*``, ``+``, ``~``, ``%``, filters, calls)
is bounded, macro recursion is limited, a render is aborted past its time
budget (a trace function checks the clock on every template line) and output
is streamed and cut off past its size limit.
"""
from __future__ import annotations

import difflib
import re
import sys
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Any, Callable, Iterator, Mapping

from jinja2 import ChainableUndefined, TemplateSyntaxError, meta, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Contact, Template

__all__ = [
    "BUILTIN", "CHANNEL_PARTS", "Renderer", "TemplateError", "TemplateProblem", "contact_data", "get_renderer",
    "load_parts", "render", "render_message", "save_template", "validate_template",
]

#: the parts a template of each channel may have, and which of them it must have
CHANNEL_PARTS: dict[str, tuple[str, ...]] = {"email": ("subject", "html", "txt"), "sms": ("txt",), "webhook": ("body",)}
REQUIRED_PARTS: dict[str, tuple[str, ...]] = {"email": ("subject",), "sms": ("txt",), "webhook": ()}
#: the parts rendered with HTML autoescaping
HTML_PARTS = frozenset({"html"})
#: the names a template may read; everything else is a typo caught when the template is saved
CONTEXT_NAMES = ("contact", "event", "links", "unsubscribe_url")

DEFAULT_TIME_LIMIT = 0.5          # seconds per part
DEFAULT_MAX_OUTPUT = 1_000_000    # characters per part, and per intermediate string or list
MAX_CALL_DEPTH = 25               # nested calls (macros calling macros)
MAX_FILTER_WIDTH = 10_000         # width arguments of center, indent, wordwrap, truncate
MAX_EXPONENT = 64

#: built-in templates, used when the ``templates`` table has none of that name
BUILTIN: dict[str, dict[str, dict[str, str]]] = {
    "email": {
        "welcome": {
            "subject": "Welcome{% if contact.first_name %}, {{ contact.first_name }}{% endif %}!",
            "txt": "Hello {{ contact.first_name or 'there' }},\n\nthanks for signing up.\n",
            "html": "<p>Hello {{ contact.first_name or 'there' }},</p><p>thanks for signing up.</p>",
        },
        # double opt-in: sent by hosted forms; consent is recorded only when the link is followed
        "confirm_subscription": {
            "subject": "Please confirm your subscription",
            "txt": "Hello {{ contact.first_name or 'there' }},\n\nplease confirm that you want to hear from us:\n"
                   "{{ confirm_url }}\n\nIf you did not sign up, ignore this message: you will get nothing more.\n",
            "html": "<p>Hello {{ contact.first_name or 'there' }},</p><p>please confirm that you want to hear from "
                    "us:</p><p><a href=\"{{ confirm_url }}\">Confirm my subscription</a></p><p>If you did not sign "
                    "up, ignore this message: you will get nothing more.</p>",
        },
    },
    "sms": {
        "welcome": {"txt": "Hello {{ contact.first_name or 'there' }}, thanks for signing up."},
    },
}


@dataclass(frozen=True)
class TemplateProblem:
    """One problem of a template: the part, the 1-based line (when known) and what is wrong."""

    part: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.part}:{self.line}" if self.line else self.part
        return f"{where}: {self.message}"


class TemplateError(Exception):
    """A template cannot be saved or rendered; ``problems`` says where and why (the engine records it)."""

    def __init__(self, problems: list[TemplateProblem] | TemplateProblem, template: str | None = None,
                 unsafe: bool = False):
        self.problems = [problems] if isinstance(problems, TemplateProblem) else list(problems)
        self.template = template
        #: True when the template broke a sandbox rule or a limit (not merely missing data)
        self.unsafe = unsafe
        prefix = f"template {template}: " if template else ""
        super().__init__(prefix + "; ".join(str(p) for p in self.problems))


class _Limit(Exception):
    """A render went past one of its limits."""


# -- the guard: per-thread time budget and call depth --------------------------------
class _Guard(threading.local):
    deadline: float | None = None
    depth: int = 0
    max_output: int = DEFAULT_MAX_OUTPUT


_guard = _Guard()


def _check_size(value: Any) -> Any:
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)) and len(value) > _guard.max_output:
        raise _Limit(f"a value grew past {_guard.max_output} items")
    return value


def _check_clock() -> None:
    if _guard.deadline is not None and time.monotonic() > _guard.deadline:
        _guard.deadline = None  # raise once; the unwinding frames must not trip it again
        raise _Limit("rendering took longer than its time budget")


def _tracer(frame: Any, event: str, arg: Any) -> Callable[..., Any] | None:
    """Check the clock on every line of template code (and on each call from it)."""
    if event == "call" and frame.f_code.co_filename.startswith("<nudge:"):
        _check_clock()
        return _line_tracer
    return None


def _line_tracer(frame: Any, event: str, arg: Any) -> Callable[..., Any]:
    if event == "line":
        _check_clock()
    return _line_tracer


_FORMAT_PERCENT = re.compile(r"%[-#0 +]*(\*|\d{5,})|%[-#0 +]*\d*\.(\*|\d{5,})")
_FORMAT_BRACES = re.compile(r"\{[^{}]*:[^{}]*(\d{5,}|\{)")


def _check_format(spec: Any) -> None:
    if isinstance(spec, str) and (_FORMAT_PERCENT.search(spec) or _FORMAT_BRACES.search(spec)):
        raise _Limit("format widths above 9999 are not allowed")


class _Undefined(ChainableUndefined):
    """Missing data (also ``event.a.b``) renders as empty; an unsafe attribute is an error at once, not a blank."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self._undefined_exception is SecurityError:
            self._fail_with_undefined_error()


class _Generator(CodeGenerator):
    """Bounds the ``~`` operator too, which Jinja does not route through the sandbox."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked(")
        super().visit_Concat(node, frame)
        self.write(")")


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    widths = name in ("center", "indent", "wordwrap", "truncate")

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if widths and any(isinstance(a, int) and a > MAX_FILTER_WIDTH for a in (*args[1:], *kwargs.values())):
            raise _Limit(f"the {name} filter takes widths up to {MAX_FILTER_WIDTH}")
        if name == "format" and args:
            _check_format(args[-1] if getattr(function, "jinja_pass_arg", None) else args[0])
        return _check_size(function(*args, **kwargs))

    wrapper.__dict__.update(getattr(function, "__dict__", {}))  # keeps Jinja's pass_context / … marks
    wrapper.__name__ = getattr(function, "__name__", name)
    return wrapper


def _range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise _Limit(f"range() is limited to {MAX_RANGE} items")
    return rng


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _Generator

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            raise _Limit(f"exponents above {MAX_EXPONENT} are not allowed")
        if operator in ("*", "**") and isinstance(left, int) and isinstance(right, int) and \
                left.bit_length() * (abs(right) if operator == "**" else 1) + right.bit_length() > 100_000:
            raise _Limit("numbers that large are not allowed")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if hasattr(seq, "__len__") and isinstance(count, int) and len(seq) * count > _guard.max_output:
                    raise _Limit(f"a repeated value would grow past {_guard.max_output} items")
        if operator == "+" and hasattr(left, "__len__") and hasattr(right, "__len__"):
            _check_size(range(len(left) + len(right)))
        if operator == "%":
            _check_format(left)
        return _check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's spelling)
        _guard.depth += 1
        try:
            if _guard.depth > MAX_CALL_DEPTH:
                raise _Limit(f"calls nest deeper than {MAX_CALL_DEPTH} levels (recursive macro?)")
            return _check_size(super().call(__context, __obj, *args, **kwargs))
        finally:
            _guard.depth -= 1

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        _check_format(value.__self__)
        return wrapper

    def checked(self, value: Any) -> Any:
        return _check_size(value)


def _line_of(tb: TracebackType | None, filename: str) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _plain(value: Any, depth: int = 0) -> Any:
    """Copy *value* as JSON-like data; anything else becomes its string form."""
    if depth > 20:
        raise TemplateError(TemplateProblem("data", None, "template data nests deeper than 20 levels"))
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, depth + 1) for v in value]
    return str(value)


class Renderer:
    """A sandboxed template environment with limits, plus the filters plugins registered.

    :param filters: extra Jinja2 filters (from ``register_template_filters``).
    :param time_limit: seconds one part may take to render.
    :param max_output: characters one part (or any value built while rendering) may have.
    """

    def __init__(self, filters: Mapping[str, Callable[..., Any]] | None = None, *,
                 time_limit: float = DEFAULT_TIME_LIMIT, max_output: int = DEFAULT_MAX_OUTPUT):
        self.time_limit = time_limit
        self.max_output = max_output
        self._envs = {escape: self._environment(escape, filters or {}) for escape in (False, True)}
        self._cache: dict[tuple[str, str], Any] = {}

    @staticmethod
    def _environment(autoescape: bool, filters: Mapping[str, Callable[..., Any]]) -> _Environment:
        env = _Environment(autoescape=autoescape, undefined=_Undefined)
        env.globals["range"] = _range
        env.filters.pop("attr", None)  # getattr by string: a sandbox escape hatch, never needed in a message
        env.filters.update(filters)
        env.filters = {name: _bounded_filter(name, f) for name, f in env.filters.items()}
        return env

    def _compile(self, part: str, source: str) -> Any:
        key = (part, source)
        template = self._cache.get(key)
        if template is None:
            env = self._envs[part in HTML_PARTS]
            template = env.template_class.from_code(
                env, env.compile(source, name=part, filename=f"<nudge:{part}>"), env.make_globals(None), None)
            if len(self._cache) > 512:
                self._cache.clear()
            self._cache[key] = template
        return template

    def render_part(self, part: str, source: str, context: Mapping[str, Any]) -> str:
        """Render one part within the limits.

        :raises TemplateError: naming the part and, where known, the line.
        """
        filename = f"<nudge:{part}>"
        try:
            template = self._compile(part, source)
        except TemplateSyntaxError as exc:
            raise TemplateError(TemplateProblem(part, exc.lineno, exc.message or str(exc))) from None
        previous_trace = sys.gettrace()
        _guard.deadline = time.monotonic() + self.time_limit
        _guard.depth = 0
        _guard.max_output = self.max_output
        out: list[str] = []
        size = 0
        stream: Iterator[str] = template.generate(context)
        sys.settrace(_tracer)
        try:
            for chunk in stream:
                size += len(chunk)
                if size > self.max_output:
                    raise _Limit(f"output is longer than {self.max_output} characters")
                out.append(chunk)
        except (_Limit, SecurityError) as exc:
            line = _line_of(exc.__traceback__, filename)
            raise TemplateError(TemplateProblem(part, line, str(exc)), unsafe=True) from None
        except RecursionError:
            raise TemplateError(TemplateProblem(part, None, "recursion too deep"), unsafe=True) from None
        except MemoryError:
            raise TemplateError(TemplateProblem(part, None, "rendering ran out of memory"), unsafe=True) from None
        except Exception as exc:  # any error in template code: the engine records it, the worker goes on
            line = _line_of(exc.__traceback__, filename)
            raise TemplateError(TemplateProblem(part, line, f"{type(exc).__name__}: {exc}")) from None
        finally:
            sys.settrace(previous_trace)
            _guard.deadline = None
            stream.close()  # type: ignore[attr-defined]
        return "".join(out)

    def render(self, channel: str, parts: Mapping[str, str], context: Mapping[str, Any],
               template: str | None = None) -> dict[str, str]:
        """Render every part of a template with *context* (made plain first).

        :return: ``{part: text}``.
        :raises TemplateError: for the first part that fails.
        """
        plain = _plain(context)
        try:
            return {part: self.render_part(part, source, plain) for part, source in parts.items()
                    if part in CHANNEL_PARTS.get(channel, (part,))}
        except TemplateError as exc:
            raise TemplateError(exc.problems, template, unsafe=exc.unsafe) from None

    def validate(self, channel: str, parts: Mapping[str, str]) -> list[TemplateProblem]:
        """Check a template before it is saved: part names, syntax, unknown names, unsafe constructs.

        :return: the problems found, each with its part and line; empty when the template is fine.
        """
        allowed = CHANNEL_PARTS.get(channel)
        problems: list[TemplateProblem] = []
        if allowed is None:
            return [TemplateProblem("channel", None, f"unknown channel {channel!r}; known: {', '.join(CHANNEL_PARTS)}")]
        for part in parts:
            if part not in allowed:
                problems.append(TemplateProblem(part, None, f"{channel} templates have no part {part!r}; "
                                                            f"use {', '.join(allowed)}"))
        for part in REQUIRED_PARTS[channel]:
            if not (parts.get(part) or "").strip():
                problems.append(TemplateProblem(part, None, f"a {channel} template needs a {part}"))
        if channel == "email" and not any((parts.get(p) or "").strip() for p in ("html", "txt")):
            problems.append(TemplateProblem("txt", None, "an email template needs a txt or an html part"))
        sample = {"contact": {}, "event": {}, "links": {}, "unsubscribe_url": "https://example.invalid/u"}
        for part, source in parts.items():
            if part not in allowed or not isinstance(source, str):
                continue
            env = self._envs[part in HTML_PARTS]
            try:
                tree = env.parse(source)
                self._compile(part, source)
            except TemplateSyntaxError as exc:
                problems.append(TemplateProblem(part, exc.lineno, exc.message or str(exc)))
                continue
            problems.extend(self._unknown_names(part, tree, env))
            try:  # a trial render catches what only shows at run time: unsafe access, runaway loops
                self.render_part(part, source, sample)
            except TemplateError as exc:  # errors from the sample's missing data are not the template's fault
                if exc.unsafe:
                    problems.extend(exc.problems)
        return problems

    @staticmethod
    def _unknown_names(part: str, tree: nodes.Template, env: _Environment) -> list[TemplateProblem]:
        known = set(CONTEXT_NAMES) | set(env.globals)
        problems = []
        for name in sorted(meta.find_undeclared_variables(tree) - known):
            line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == name and n.ctx == "load"), None)
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f' — did you mean "{close[0]}"?' if close else f"; templates see {', '.join(CONTEXT_NAMES)}"
            problems.append(TemplateProblem(part, line, f'unknown name "{name}"{hint}'))
        return problems


_default_renderer: Renderer | None = None


def get_renderer(app: Any = None) -> Renderer:
    """The app's renderer, with the filters its plugins registered (built on first use).

    Outside an app context, a renderer without plugin filters.
    """
    from flask import current_app, has_app_context

    if app is None and has_app_context():
        app = current_app._get_current_object()
    if app is None:
        global _default_renderer
        if _default_renderer is None:
            _default_renderer = Renderer()
        return _default_renderer
    renderer = app.extensions.get("nudge.templates")
    if renderer is None:
        pm = app.extensions.get("nudge.plugins")
        renderer = Renderer(
            getattr(pm, "template_filters", None),
            time_limit=float(app.config.get("TEMPLATE_TIME_LIMIT", DEFAULT_TIME_LIMIT)),
            max_output=int(app.config.get("TEMPLATE_MAX_OUTPUT", DEFAULT_MAX_OUTPUT)),
        )
        app.extensions["nudge.templates"] = renderer
    return renderer


def contact_data(contact: Contact | Mapping[str, Any] | None) -> dict[str, Any]:
    """Plain data only: templates never see model objects."""
    if contact is None:
        return {}
    if isinstance(contact, Mapping):
        return dict(contact)
    data = dict(contact.fields or {})
    for name in ("email", "phone", "first_name", "last_name", "external_id", "stage", "score", "timezone", "locale"):
        data[name] = getattr(contact, name)
    return data


def load_parts(session: Session | None, channel: str, name: str) -> dict[str, str]:
    """The parts of template *name* of *channel*: from the ``templates`` table, else the built-in one.

    :raises TemplateError: when neither exists.
    """
    if session is not None:
        row = session.scalar(select(Template).where(Template.channel == channel, Template.name == name))
        if row is not None:
            return dict(row.parts)
    builtin = BUILTIN.get(channel, {}).get(name)
    if builtin is None:
        raise TemplateError(TemplateProblem("name", None, f"no {channel} template named {name!r}"), name)
    return dict(builtin)


def render(name: str, *, channel: str, contact: Contact | Mapping[str, Any] | None, data: Mapping[str, Any],
           session: Session | None = None, renderer: Renderer | None = None) -> dict[str, str]:
    """Render template *name* of *channel* for *contact*.

    :param data: the rest of the context: ``event`` (its props), ``links``, ``unsubscribe_url``.
    :return: ``{part: text}``, e.g. ``{"subject": …, "html": …, "txt": …}``.
    :raises TemplateError: when the template is missing or fails; the worker goes on.
    """
    if session is None:
        session = _app_session()
    parts = load_parts(session, channel, name)
    context = {"contact": contact_data(contact), **{k: v for k, v in data.items() if k != "contact"}}
    return (renderer or get_renderer()).render(channel, parts, context, template=name)


def render_message(template: str, *, contact: Contact | None, data: Mapping[str, Any], channel: str = "email",
                   session: Session | None = None) -> tuple[str, str, str | None]:
    """Render an email-shaped message: ``(subject, text, html or None)``.

    :raises TemplateError: when the template is missing or fails.
    """
    parts = render(template, channel=channel, contact=contact, data=data, session=session)
    return parts.get("subject", ""), parts.get("txt", ""), parts.get("html") or None


def validate_template(channel: str, parts: Mapping[str, str]) -> list[TemplateProblem]:
    """Check a template before it is saved; see :meth:`Renderer.validate`."""
    return get_renderer().validate(channel, parts)


def save_template(session: Session, channel: str, name: str, parts: Mapping[str, str]) -> Template:
    """Validate and store a template (insert or replace); the caller commits.

    :raises TemplateError: listing every problem, with part and line, when it is not valid.
    """
    problems = validate_template(channel, parts)
    if problems:
        raise TemplateError(problems, name)
    row = session.scalar(select(Template).where(Template.channel == channel, Template.name == name))
    if row is None:
        row = Template(channel=channel, name=name)
        session.add(row)
    row.parts = {k: v for k, v in parts.items() if v}
    session.flush()
    return row


def _app_session() -> Session | None:
    from flask import has_app_context

    if not has_app_context():
        return None
    from ..db import get_session

    return get_session()
