"""Types of condition expressions, and the errors found while working them out.

Types are plain strings: the contact-field types of :mod:`dsl.vocabulary`
(``string number bool date datetime list any``) plus ``duration``, ``time``,
``null`` and ``tag`` (the word ``tag`` in ``tag == "vip"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import ast as A
from . import safe_regex
from .diagnostics import ERROR, WARNING, Diagnostic, at, control_character, shorten, suggest
from .formatter import string as quoted
from .vocabulary import BUILTIN_EVENT_PROPS, Vocabulary

ORDERED = frozenset({"number", "string", "date", "datetime", "duration", "time"})
DATES = frozenset({"date", "datetime"})

OPENS_WARNING = (
    "branching on `email.opened` is unreliable",
    "image proxies (Apple Mail Privacy Protection, corporate scanners) open mail on their own; prefer `email.clicked`",
)


class Reporter:
    """Collects diagnostics for one file. Every diagnostic says what to do: ``hint`` is required."""

    def __init__(self, filename: str):
        self.filename = filename
        self.diagnostics: list[Diagnostic] = []

    def error(self, node: A.Node, message: str, hint: str, replacement: str | None = None) -> None:
        """Report an error at *node*; *replacement* is the text that fixes it in place of the node."""
        self.diagnostics.append(at(ERROR, self.filename, node.span, message, hint, replacement))

    def warning(self, node: A.Node, message: str, hint: str, replacement: str | None = None) -> None:
        """Report a warning at *node*; *replacement* as for :meth:`error`."""
        self.diagnostics.append(at(WARNING, self.filename, node.span, message, hint, replacement))


@dataclass(frozen=True)
class Scope:
    """What ``event.…`` means here: the trigger's event, the counted event, or nothing."""

    event: str | None
    event_available: bool


def article(kind: str) -> str:
    return {
        "any": "a value",
        "null": "`null`",
        "tag": "`tag`",
        "list": "a list",
        "datetime": "a date-time",
        "date": "a date",
        "duration": "a duration",
        "time": "a time of day",
        "number": "a number",
        "string": "a string",
        "bool": "true/false",
    }.get(kind, kind)


#: the longest tag the engine stores (its column's size)
MAX_TAG = 128


def tag_problem(tag: A.String, keyword: str = "has tag") -> tuple[str, str] | None:
    """``(message, hint)`` when ``tag`` cannot name a tag (empty, with a line break or control character, or
    longer than :data:`MAX_TAG`): no contact can have it, so a step cannot give it nor a condition test it."""
    example = f'e.g. `{keyword} "vip"`'
    if not tag.value.strip():
        return "a tag cannot be empty", f"name the tag, {example}"
    control = control_character(tag.value)
    if control is not None:
        return (
            f"a tag cannot contain a line break or control character ({control})",
            f"a tag is a one-line label: remove the character, {example}",
        )
    if len(tag.value) > MAX_TAG:
        return (
            f"a tag has at most {MAX_TAG} characters (this one has {len(tag.value)})",
            'shorten it: a tag is a short label, like `"vip"`; a note can say more',
        )
    return None


def compatible(a: str, b: str) -> bool:
    return a == b or "any" in (a, b) or "null" in (a, b) or {a, b} <= DATES


class TypeChecker:
    """Infers expression types against a vocabulary, reporting what does not fit."""

    def __init__(
        self,
        vocabulary: Vocabulary,
        report: Reporter,
        check_event: Callable[[A.EventName], None],
        sql_dialect: str | None = None,
    ) -> None:
        self.vocabulary = vocabulary
        self.report = report
        self.check_event = check_event  # callable(EventName) shared with the rule checker
        self.sql_dialect = sql_dialect  # set when the condition must run as SQL (a segment)

    def condition(self, expr: A.Node, scope: Scope) -> None:
        """Check ``expr`` as something true or false."""
        kind = self.infer(expr, scope)
        if kind not in ("bool", "any"):
            self.report.error(
                expr,
                f"this condition is {article(kind)}, not true or false",
                "compare it, e.g. `contact.email is set` or `contact.score > 10`",
            )

    def infer(self, expr: A.Node, scope: Scope) -> str:
        method: Callable[[A.Node, Scope], str] | None = getattr(self, "_" + type(expr).__name__.lower(), None)
        if method is None:
            return "any"
        return method(expr, scope)

    # ---- leaves ---------------------------------------------------------------

    def _string(self, expr: A.String, scope: Scope) -> str:
        return "string"

    def _number(self, expr: A.Number, scope: Scope) -> str:
        return "number"

    def _bool(self, expr: A.Bool, scope: Scope) -> str:
        return "bool"

    def _null(self, expr: A.Null, scope: Scope) -> str:
        return "null"

    def _duration(self, expr: A.Duration, scope: Scope) -> str:
        return "duration"

    def _time(self, expr: A.Time, scope: Scope) -> str:
        return "time"

    def _date(self, expr: A.Date, scope: Scope) -> str:
        return "date"

    def _now(self, expr: A.Now, scope: Scope) -> str:
        return "datetime"

    def _today(self, expr: A.Today, scope: Scope) -> str:
        return "date"

    def _tagref(self, expr: A.TagRef, scope: Scope) -> str:
        return "tag"

    def _listlit(self, expr: A.ListLit, scope: Scope) -> str:
        kinds = {self.infer(item, scope) for item in expr.items}
        if "tag" in kinds:
            self.report.error(expr, "`tag` cannot go in a list", 'write `tag in ["a", "b"]`')
        return "list"

    def _path(self, expr: A.Path, scope: Scope) -> str:
        return self.path_type(expr, scope)

    def path_type(self, path: A.Path, scope: Scope) -> str:
        if path.root == "contact":
            return self.contact_field(path)
        if path.root == "event":
            if not scope.event_available:
                self.report.error(
                    path,
                    f"`{shorten(str(path))}` has no event to refer to",
                    "`event.…` is only available in rules triggered by an event, "
                    "and inside `where` of `did` and `wait for`",
                )
                return "any"
            props = BUILTIN_EVENT_PROPS.get(scope.event or "", {})
            return props.get(path.rest, "any")
        self.report.error(
            path,
            f"unknown name `{shorten(str(path))}`",
            "paths start with `contact.` (fields) or `event.` (event properties)",
        )
        return "any"

    def contact_field(self, path: A.Path) -> str:
        fields = self.vocabulary.contact_fields
        name = path.rest
        if name in fields:
            return fields[name]
        text, best = suggest(name, fields)
        self.report.error(
            path,
            f'unknown contact field "{shorten(name)}"{text}',
            "custom fields must exist before rules use them",
            f"{path.root}.{best}" if best else None,
        )
        return "any"

    # ---- tests ----------------------------------------------------------------

    def _compare(self, expr: A.Compare, scope: Scope) -> str:
        left = self.infer(expr.left, scope)
        right = self.infer(expr.right, scope)
        if "tag" in (left, right):
            self._tag_test(expr, left)
            return "bool"
        op = expr.op
        if op in ("==", "!="):
            self._equality(expr, left, right)
        elif op in ("<", "<=", ">", ">="):
            self._ordering(expr, left, right)
        elif op in ("in", "not in"):
            if right not in ("list", "any"):
                self.report.error(
                    expr.right,
                    f"`{op}` needs a list on its right, not {article(right)}",
                    'write `contact.stage in ["lead", "sql"]`',
                )
            elif isinstance(expr.right, A.ListLit):
                for item in expr.right.items:
                    kind = self.infer(item, scope)
                    if not compatible(left, kind):
                        self.report.error(
                            item,
                            f"this list item is {article(kind)}, but the value looked for is {article(left)}",
                            f"make every item {article(left)}; {_conversion_hint(left, kind)}",
                        )
        elif op == "contains":
            if left not in ("string", "list", "any"):
                self.report.error(
                    expr.left,
                    f"`contains` needs a string or a list, not {article(left)}",
                    "`contains` looks inside a string or a list; compare other values with `==`",
                )
            elif left == "string" and right not in ("string", "any"):
                self.report.error(
                    expr.right,
                    f"a string can only contain a string, not {article(right)}",
                    'write what to look for in quotes, e.g. `contact.email contains "@"`',
                )
        else:  # starts with, ends with
            for side, kind in ((expr.left, left), (expr.right, right)):
                if kind not in ("string", "any"):
                    self.report.error(
                        side,
                        f"`{op}` works on strings, not {article(kind)}",
                        f'e.g. `contact.email {op} "…"`; compare other values with `==`',
                    )
        return "bool"

    def _tag_test(self, expr: A.Compare, left: str) -> None:
        right_ok = (expr.op in ("==", "!=") and isinstance(expr.right, A.String)) or (
            expr.op in ("in", "not in")
            and isinstance(expr.right, A.ListLit)
            and all(isinstance(item, A.String) for item in expr.right.items)
        )
        if left != "tag" or not right_ok:
            self.report.error(
                expr,
                '`tag` can only be tested like `tag == "vip"`, `tag != "vip"` or `tag in ["a", "b"]`',
                'or write `has tag "vip"`',
            )
            return
        for tag in expr.right.items if isinstance(expr.right, A.ListLit) else (expr.right,):
            problem = tag_problem(tag, f"tag {expr.op}") if isinstance(tag, A.String) else None
            if problem is not None:
                self.report.error(tag, *problem)

    def _equality(self, expr: A.Compare, left: str, right: str) -> None:
        if "null" in (left, right):
            self.report.warning(
                expr,
                f"`{expr.op} null` is never true: a missing value compares false",
                "test for a missing value with `is set` or `is not set`",
            )
        elif not compatible(left, right):
            self.report.error(
                expr, f"cannot compare {article(left)} with {article(right)}", _conversion_hint(left, right)
            )

    def _ordering(self, expr: A.Compare, left: str, right: str) -> None:
        for side, kind in ((expr.left, left), (expr.right, right)):
            if kind not in ORDERED and kind != "any":
                self.report.error(
                    side,
                    f"`{expr.op}` cannot order {article(kind)}",
                    "`<`, `<=`, `>`, `>=` compare numbers, strings, dates, times and durations; use `==` or `!=`",
                )
                return
        if not compatible(left, right) or "null" in (left, right):
            self.report.error(
                expr, f"cannot compare {article(left)} with {article(right)}", _conversion_hint(left, right)
            )

    def _matches(self, expr: A.Matches, scope: Scope) -> str:
        kind = self.infer(expr.subject, scope)
        if kind not in ("string", "any"):
            self.report.error(
                expr.subject,
                f"`matches` works on strings, not {article(kind)}",
                "match a text field such as `contact.email`; compare other values with `==`, `<` or `>`",
            )
        problem = safe_regex.problem(expr.pattern.value)
        if problem:
            self.report.error(
                expr.pattern,
                problem,
                f"patterns are {safe_regex.engine().name} syntax (docs/language.md, Patterns); "
                "or use `contains`, `starts with`, `ends with`",
            )
        return "bool"

    def _isset(self, expr: A.IsSet, scope: Scope) -> str:
        if not isinstance(expr.subject, A.Path):
            self.report.error(
                expr.subject, "only a field or an event property can be set or not", "write `contact.phone is set`"
            )
        self.infer(expr.subject, scope)
        return "bool"

    def _hastag(self, expr: A.HasTag, scope: Scope) -> str:
        problem = tag_problem(expr.tag)
        if problem is not None:
            self.report.error(expr.tag, *problem)
        return "bool"

    def _insegment(self, expr: A.InSegment, scope: Scope) -> str:
        segments = self.vocabulary.segments
        name = expr.segment.value
        if segments is not None and name not in segments:
            text, best = suggest(name, segments)
            self.report.error(
                expr.segment,
                f'unknown segment "{shorten(name)}"{text}',
                "create the segment first, or check its name",
                quoted(best) if best else None,
            )
        return "bool"

    def _did(self, expr: A.Did, scope: Scope) -> str:
        self.check_event(expr.event)
        if self.vocabulary.is_open(expr.event.name):
            self.report.warning(expr, *OPENS_WARNING)
        if expr.where is not None:
            self.condition(expr.where, Scope(expr.event.name, True))
        if expr.at_least is not None:
            count = expr.at_least.value
            if not isinstance(count, int) or count < 1:
                self.report.error(
                    expr.at_least, "`at least` needs a whole number of times, 1 or more", "e.g. `at least 3 times`"
                )
        if expr.within.seconds <= 0:
            self.report.error(
                expr.within,
                "`within` needs a duration longer than zero",
                "say how far back to look, e.g. `within 30d`",
            )
        return "bool"

    def _call(self, expr: A.Call, scope: Scope) -> str:
        kinds = [self.infer(arg, scope) for arg in expr.args]
        functions = self.vocabulary.functions
        name = expr.name
        function = functions.get(name)
        if function is None:
            known = ", ".join(sorted(functions))
            text, best = suggest(name, functions)
            self.report.error(
                expr.function,
                f'unknown function "{shorten(name)}"{text}',
                f"functions come from plugins; installed: {known}"
                if known
                else "functions come from plugins, and no installed plugin declares one (docs/plugins.md)",
                best,
            )
            return "any"
        params = tuple(function.params)
        usage = f"`{name}({', '.join(params)})`"
        if len(kinds) != len(params):
            wanted = (
                "no arguments"
                if not params
                else (
                    f"{len(params)} argument{'s' if len(params) > 1 else ''} ({', '.join(article(p) for p in params)})"
                )
            )
            self.report.error(expr, f"`{name}()` takes {wanted}, not {len(kinds)}", f"call it as {usage}")
        else:
            for number, (arg, param, kind) in enumerate(zip(expr.args, params, kinds, strict=True), start=1):
                if kind == "tag" or not compatible(param, kind):
                    self.report.error(
                        arg,
                        f"argument {number} of `{name}()` must be {article(param)}, not {article(kind)}",
                        f"call it as {usage}",
                    )
        if self.sql_dialect is not None and self.sql_dialect not in function.sql:
            self.report.error(
                expr.function,
                f"`{name}()` has no SQL form, so a segment cannot use it",
                "segments are counted by the database; use it in a rule's condition instead, "
                "or give the function an SQL form in its plugin (docs/plugins.md)",
            )
        return function.result

    # ---- arithmetic and logic -------------------------------------------------

    def _arith(self, expr: A.Arith, scope: Scope) -> str:
        left = self.infer(expr.left, scope)
        right = self.infer(expr.right, scope)
        result = arith_type(expr.op, left, right, expr.right)
        if result is None:
            verb = "add" if expr.op == "+" else "subtract"
            joiner = "and" if expr.op == "+" else "from"
            first, second = (left, right) if expr.op == "+" else (right, left)
            self.report.error(
                expr,
                f"cannot {verb} {article(first)} {joiner} {article(second)}",
                "dates and date-times take durations (`now - 14d`); numbers take numbers",
            )
            return "any"
        return result

    def _logic(self, expr: A.And | A.Or, scope: Scope) -> str:
        word = "and" if isinstance(expr, A.And) else "or"
        for item in expr.items:
            kind = self.infer(item, scope)
            if kind not in ("bool", "any"):
                self.report.error(
                    item,
                    f"`{word}` joins conditions; this is {article(kind)}",
                    "compare it, e.g. `contact.email is set`",
                )
        return "bool"

    _and = _or = _logic

    def _not(self, expr: A.Not, scope: Scope) -> str:
        kind = self.infer(expr.item, scope)
        if kind not in ("bool", "any"):
            self.report.error(
                expr.item,
                f"`not` needs a condition; this is {article(kind)}",
                'put `not` before a condition, e.g. `not has tag "vip"` or `not contact.phone is set`',
            )
        return "bool"


def arith_type(op: str, left: str, right: str, right_node: A.Node | None = None) -> str | None:
    """The type of ``left op right``, or None when the operation makes no sense."""
    if "any" in (left, right):
        return "any"
    if left == right == "number":
        return "number"
    if left == right == "duration":
        return "duration"
    if left in DATES and right == "duration":
        whole_days = isinstance(right_node, A.Duration) and right_node.seconds % 86400 == 0
        return "date" if left == "date" and whole_days else "datetime"
    if op == "+" and left == "duration" and right in DATES:
        return right
    if op == "-" and left in DATES and right in DATES:
        return "duration"
    return None


def _conversion_hint(left: str, right: str) -> str:
    kinds = {left, right}
    if "duration" in kinds and "string" in kinds:
        return 'durations are written without quotes: `3d`, not `"3d"`'
    if kinds & DATES and "string" in kinds:
        return "dates are written without quotes: `2026-12-31`"
    if "number" in kinds and "string" in kinds:
        return 'numbers are written without quotes: `10`, not `"10"`'
    if "duration" in kinds and kinds & DATES:
        return "to compare a date with a time span, move it: `contact.last_seen < now - 14d`"
    return "both sides must be the same kind of value"
