"""Rendering message templates in Jinja2's immutable sandbox, within time and size limits.

Templates are stored per channel and name in the ``templates`` table; each has
the parts its channel declares (``Channel.template_parts``, e.g. ``subject``, ``html``
and ``txt``), and a channel may ship built-in ones (``Channel.builtin_templates``).
Only ``html`` is autoescaped. A template sees plain data only (``contact``,
``event``, ``links``, ``unsubscribe_url``), never model objects.

Hostile templates fail with :class:`TemplateError` instead of harming the
worker (the sandbox and its limits are in :mod:`server.engine.sandbox`): unsafe
attributes raise at once, the ``attr`` filter is gone, ``range`` is capped,
memory is bounded before it is spent (no value grows past the output limit, and
a render builds at most ten times that in all), macro recursion is limited, a
render is aborted past its time budget (a trace function checks the clock on
every template line) and output is streamed and cut off past its size limit.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Any, cast

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Contact, Template
from . import render_memo, sandbox
from .sandbox import DEFAULT_MAX_OUTPUT, DEFAULT_TIME_LIMIT, Environment, Limit

__all__ = [
    "ContactRow",
    "Renderer",
    "TemplateError",
    "TemplateProblem",
    "contact_data",
    "get_renderer",
    "load_parts",
    "missing_parts",
    "render",
    "save_template",
    "validate_template",
]

#: the parts rendered with HTML autoescaping
HTML_PARTS = frozenset({"html"})
#: the parts that become one header line: a line break in their source is refused when saving
ONE_LINE_PARTS = frozenset({"subject"})
#: the names a template may read; everything else is a typo caught when the template is saved
#: ``confirm_url`` is a double opt-in confirmation's link (its message's data; empty in any other message)
CONTEXT_NAMES = ("contact", "event", "links", "unsubscribe_url", "confirm_url")
#: outputs kept per template part, one per set of the values it reads (see :mod:`.render_memo`)
MEMO_OUTPUTS = 256
#: characters of kept outputs in all, whatever the size and number of templates: past it all are forgotten
MEMO_CHARS = 8_000_000


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

    def __init__(
        self, problems: list[TemplateProblem] | TemplateProblem, template: str | None = None, unsafe: bool = False
    ):
        self.problems = [problems] if isinstance(problems, TemplateProblem) else list(problems)
        self.template = template
        #: True when the template broke a sandbox rule or a limit (not merely missing data)
        self.unsafe = unsafe
        prefix = f"template {template}: " if template else ""
        super().__init__(prefix + "; ".join(str(p) for p in self.problems))


def _line_of(tb: TracebackType | None, filename: str) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


#: the types :func:`_plain` gives back as they are (exactly these: a subclass takes the longer way)
_SCALARS = frozenset({type(None), bool, int, float, str})


def _plain(value: Any, depth: int = 0) -> Any:
    """Copy *value* as JSON-like data; anything else becomes its string form.

    Every message's context goes through here (its contact's fields, the event's props): plain dicts, lists and
    scalars are copied by their exact type first, ~3× quicker than asking ``isinstance`` of each value."""
    kind = type(value)
    if depth < 20:  # a value at depth 21 is refused below: only shallower ones take the quick way
        if kind in _SCALARS:
            return value
        if kind is dict:
            return {
                (k if type(k) is str else str(k)): (v if type(v) in _SCALARS else _plain(v, depth + 1))
                for k, v in value.items()
            }
        if kind is list:
            return [v if type(v) in _SCALARS else _plain(v, depth + 1) for v in value]
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
    :param channels: the installed channel classes by name: their declared parts (and built-in templates).
    :param time_limit: seconds one part may take to render.
    :param max_output: characters one part (or any value built while rendering) may have.
    """

    def __init__(
        self,
        filters: Mapping[str, Callable[..., Any]] | None = None,
        *,
        channels: Mapping[str, Any] | None = None,
        time_limit: float = DEFAULT_TIME_LIMIT,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ):
        self.channels = dict(channels or {})
        self.time_limit = time_limit
        self.max_output = max_output
        self._envs = {escape: self._environment(escape, filters or {}) for escape in (False, True)}
        self._cache: dict[tuple[str, str], Any] = {}
        self._plugin_filters = frozenset(filters or ())
        #: per part and source: what it reads (None: not only that, see :mod:`.render_memo`) and its outputs by it
        self._memo: dict[tuple[str, str], tuple[render_memo.Reads | None, dict[Any, str]]] = {}
        self._memo_chars = 0  # characters of the outputs in _memo (about: threads may render at once)

    @staticmethod
    def _environment(autoescape: bool, filters: Mapping[str, Callable[..., Any]]) -> Environment:
        return sandbox.environment(autoescape, dict(filters))

    def _compile(self, part: str, source: str) -> Any:
        key = (part, source)
        template = self._cache.get(key)
        if template is None:
            env = self._envs[part in HTML_PARTS]
            # the globals as a plain dict, not Jinja's ChainMap over the environment's: every render copies them
            # into its context, and copying a ChainMap costs more than the rest of a short part's render
            template = env.template_class.from_code(
                env, env.compile(source, name=part, filename=f"<nudge:{part}>"), dict(env.make_globals(None)), None
            )
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
        sandbox.start(self.time_limit, self.max_output)
        out: list[str] = []
        size = 0
        stream: Iterator[str] = template.generate(context)
        previous_trace = sandbox.traced()
        try:
            for chunk in stream:
                size += len(chunk)
                if size > self.max_output:
                    raise Limit(f"output is longer than {self.max_output} characters")
                out.append(chunk)
        except (Limit, SecurityError) as exc:
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
            sandbox.stop()
            stream.close()  # type: ignore[attr-defined]
        return "".join(out)

    def render(
        self, channel: str, parts: Mapping[str, str], context: Mapping[str, Any], template: str | None = None
    ) -> dict[str, str]:
        """Render every part of a template with *context* (made plain first).

        :return: ``{part: text}``.
        :raises TemplateError: for the first part that fails.
        """
        plain = _plain(context)
        try:
            declared = getattr(self.channels.get(channel), "template_parts", None) or tuple(parts)
            return {part: self._rendered(part, source, plain) for part, source in parts.items() if part in declared}
        except TemplateError as exc:
            raise TemplateError(exc.problems, template, unsafe=exc.unsafe) from None

    def _rendered(self, part: str, source: str, plain: Mapping[str, Any]) -> str:
        """:meth:`render_part`, or its output for the same values when this part rendered them before: a part that
        reads only some values of the context (``contact.first_name``) and combines them purely
        (:func:`.render_memo.reads`) gives the same output for the same values. Failures are never kept."""
        memo = self._memo.get((part, source))
        if memo is None:
            try:
                env = self._envs[part in HTML_PARTS]
                what = render_memo.reads(env.parse(source), self._plugin_filters, env.globals)
            except TemplateSyntaxError:
                what = None  # render_part says what is wrong
            if len(self._memo) > 512:
                self._forget()
            memo = self._memo[(part, source)] = (what, {})
        what, outputs = memo
        key = None if what is None else render_memo.memo_key(what, plain)
        if key is None:
            return self.render_part(part, source, plain)
        text = outputs.get(key)
        if text is None:
            text = self.render_part(part, source, plain)
            if len(outputs) >= MEMO_OUTPUTS or self._memo_chars + len(text) > MEMO_CHARS:
                self._forget()  # values unique to each message (an email address), or large outputs: kept few
                outputs = self._memo.setdefault((part, source), (what, {}))[1]
            outputs[key] = text
            self._memo_chars += len(text)
        return text

    def _forget(self) -> None:
        """Drop every kept output (and what each part reads)."""
        self._memo.clear()
        self._memo_chars = 0

    def validate(self, channel: str, parts: Mapping[str, str]) -> list[TemplateProblem]:
        """Check a template before it is saved: part names, syntax, unknown names, unsafe constructs.

        :return: the problems found, each with its part and line; empty when the template is fine.
        """
        cls = self.channels.get(channel)
        problems: list[TemplateProblem] = []
        if cls is None:
            return [
                TemplateProblem(
                    "channel",
                    None,
                    f"unknown channel {channel!r}; installed: {', '.join(sorted(self.channels)) or 'none'}",
                )
            ]
        allowed = tuple(cls.template_parts)
        for part in parts:
            if part not in allowed:
                problems.append(
                    TemplateProblem(part, None, f"{channel} templates have no part {part!r}; use {', '.join(allowed)}")
                )
        problems += missing_parts(cls, parts)
        sample = {
            "contact": {},
            "event": {},
            "links": {},
            "unsubscribe_url": "https://example.invalid/u",
            "confirm_url": "https://example.invalid/c",
        }
        for part, source in parts.items():
            if part not in allowed or not isinstance(source, str):
                continue
            if part in ONE_LINE_PARTS and ("\r" in source or "\n" in source):
                line = source[: min(i for i in (source.find("\r"), source.find("\n")) if i >= 0)].count("\n") + 1
                problems.append(TemplateProblem(part, line, f"the {part} is one line: remove the line break"))
                continue
            env = self._envs[part in HTML_PARTS]
            try:
                tree = env.parse(source)
                self._compile(part, source)
            except TemplateSyntaxError as exc:
                problems.append(TemplateProblem(part, exc.lineno, exc.message or str(exc)))
                continue
            problems.extend(self._unknown_names(part, tree, env))
            other = next(tree.find_all((nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport)), None)
            if other is not None:  # no loader: each send of it would fail
                problems.append(
                    TemplateProblem(
                        part,
                        other.lineno,
                        "a template cannot include, extend or import another: put that text in this template",
                    )
                )
                continue
            try:  # a trial render catches what only shows at run time: unsafe access, runaway loops
                self.render_part(part, source, sample)
            except TemplateError as exc:  # errors from the sample's missing data are not the template's fault
                if exc.unsafe:
                    problems.extend(exc.problems)
        return problems

    @staticmethod
    def _unknown_names(part: str, tree: nodes.Template, env: Environment) -> list[TemplateProblem]:
        known = set(CONTEXT_NAMES) | set(env.globals)
        problems = []
        for name in sorted(meta.find_undeclared_variables(tree) - known):
            line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == name and n.ctx == "load"), None)
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f' — did you mean "{close[0]}"?' if close else f"; templates see {', '.join(CONTEXT_NAMES)}"
            problems.append(TemplateProblem(part, line, f'unknown name "{name}"{hint}'))
        return problems


def missing_parts(cls: Any, parts: Mapping[str, str]) -> list[TemplateProblem]:
    """The parts a template of channel *cls* must have (``required_parts``) and *parts* lacks."""

    def a(word: str) -> str:  # spoken letters: an html part
        return f"{'an' if word[:1] in 'aeiou' or word in ('html', 'xml') else 'a'} {word}"

    problems = []
    for required in cls.required_parts:
        options = (required,) if isinstance(required, str) else tuple(required)
        if not any((parts.get(part) or "").strip() for part in options):
            what = a(options[0]) if len(options) == 1 else " or ".join(map(a, options)) + " part"
            problems.append(TemplateProblem(options[0], None, f"{a(cls.name)} template needs {what}"))
    return problems


_default_renderer: Renderer | None = None


def get_renderer(app: Any = None) -> Renderer:
    """The app's renderer, with the filters its plugins registered (built on first use).

    Outside an app context, a renderer without plugin filters.
    """
    from flask import current_app, has_app_context

    if app is None and has_app_context():
        app = cast(Any, current_app)._get_current_object()  # flask types the proxy as the app it stands for
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
            channels=getattr(pm, "channels", None),
            time_limit=float(app.config.get("TEMPLATE_TIME_LIMIT", DEFAULT_TIME_LIMIT)),
            max_output=int(app.config.get("TEMPLATE_MAX_OUTPUT", DEFAULT_MAX_OUTPUT)),
        )
        app.extensions["nudge.templates"] = renderer
    return renderer


class ContactRow:
    """A contact's columns read as a plain row, with the attributes a :class:`Contact` would give them.

    What the outbox reads of a batch's contacts (the address, the time zone, the public id, what templates
    see) needs no ORM object: building one costs several times more than the row (its state, its identity map
    entry), and leaves more objects for the garbage collector to walk. Only the columns read are set (see
    ``outbox_handoff``); an attribute not set is missing, as ``getattr(contact, name, None)`` expects.
    """

    id: int
    public_id: str
    fields: dict[str, Any] | None
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    external_id: str | None
    stage: str | None
    score: int
    timezone: str | None
    locale: str | None

    def __init__(self, columns: dict[str, Any]):
        self.__dict__ = columns

    def __repr__(self) -> str:
        return f"<ContactRow {self.__dict__.get('id')}>"


def contact_data(contact: Contact | ContactRow | Mapping[str, Any] | None) -> dict[str, Any]:
    """Plain data only: templates never see model objects."""
    if contact is None:
        return {}
    kind = type(contact)
    if kind is ContactRow:  # every column read is set (see ContactRow)
        loaded = contact.__dict__
        data = dict(loaded["fields"] or {})
        for name in _CONTACT_COLUMNS:
            data[name] = loaded[name]
        return data
    if isinstance(contact, Mapping):
        return dict(contact)
    # a contact the ORM loaded has its columns in its __dict__, where the attribute would read them (a message
    # each: ~half the cost of asking the attribute); one not loaded (expired, deferred) is asked as before
    data = dict(contact.fields or {})
    loaded = contact.__dict__ if kind is Contact else {}
    for name in _CONTACT_COLUMNS:
        data[name] = loaded[name] if name in loaded else getattr(contact, name)
    return data


#: the contact's own columns a template reads as ``contact.*`` (besides its custom fields)
_CONTACT_COLUMNS = ("email", "phone", "first_name", "last_name", "external_id", "stage", "score", "timezone", "locale")


def load_parts(
    session: Session | None, channel: str, name: str, channels: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The parts of template *name* of *channel*: from the ``templates`` table, else the channel's built-in one.

    :param channels: the installed channel classes (default: the renderer's).
    :raises TemplateError: when neither exists.
    """
    if session is not None:
        row = session.scalar(select(Template).where(Template.channel == channel, Template.name == name))
        if row is not None:
            return dict(row.parts)
    cls = (get_renderer().channels if channels is None else channels).get(channel)
    builtin = getattr(cls, "builtin_templates", {}).get(name)
    if builtin is None:
        raise TemplateError(TemplateProblem("name", None, f"no {channel} template named {name!r}"), name)
    return dict(builtin)


def missing_template(session: Session | None, channel: str, name: str) -> str | None:
    """What to say when *channel* has no template *name* (neither stored nor built in), else None."""
    try:
        load_parts(session, channel, name)
    except TemplateError:
        return f"there is no {channel} template named {name!r}: create it in Templates first, or name one that exists"
    return None


def render(
    name: str,
    *,
    channel: str,
    contact: Contact | ContactRow | Mapping[str, Any] | None,
    data: Mapping[str, Any],
    session: Session | None = None,
    renderer: Renderer | None = None,
    parts: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Render template *name* of *channel* for *contact*.

    :param data: the rest of the context: ``event`` (its props), ``links``, ``unsubscribe_url``.
    :param parts: the template's parts when the caller loaded them already (:func:`load_parts`; the outbox does
        once per batch); compiled templates are cached by their source, so each version compiles once.
    :return: ``{part: text}``, e.g. ``{"subject": …, "html": …, "txt": …}``.
    :raises TemplateError: when the template is missing or fails; the worker goes on.
    """
    if parts is None:
        parts = load_parts(_app_session() if session is None else session, channel, name)
    context = {"contact": contact_data(contact), **{k: v for k, v in data.items() if k != "contact"}}
    return (renderer or get_renderer()).render(channel, parts, context, template=name)


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
