"""The template sandbox: Jinja2's immutable sandbox with limits on time, depth and memory.

Memory is bounded before it is spent, not only checked after: no operation (a filter, a call, an
operator, ``~``, a captured block, a ``{{ }}`` output) receives or produces a value *heavier* than
the output limit, where a value's weight counts every character and item it holds, shared ones
as often as they appear (``['x' * 999999] * 999`` weighs about a billion). Operations whose
result can be far larger than their inputs — ``join``, ``replace``, ``indent``, ``wordwrap``,
``urlize``, ``*``, the padding methods of strings — compute the size of the result first and
refuse it before building it. Across one render, everything built may add up to
:data:`WORK_FACTOR` times the output limit; past that the render stops. ``lipsum`` is gone, and
so are the string methods that cannot be bounded cheaply (``expandtabs``, ``translate``).
A render past a limit raises :class:`Limit`.
"""

from __future__ import annotations

import inspect
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from jinja2 import ChainableUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment

DEFAULT_TIME_LIMIT = 0.5  # seconds per part
DEFAULT_MAX_OUTPUT = 1_000_000  # characters per part, and the weight of any value built while rendering
WORK_FACTOR = 10  # a render may build this many times the output limit in all
MAX_CALL_DEPTH = 25  # nested calls (macros calling macros)
MAX_FILTER_WIDTH = 10_000  # width arguments of center, indent, wordwrap, truncate
MAX_EXPONENT = 64
#: string methods whose result size cannot be bounded from their arguments cheaply
BLOCKED_METHODS = frozenset({"expandtabs", "translate", "maketrans"})
_PADDING = frozenset({"ljust", "rjust", "center", "zfill"})


class Limit(Exception):
    """A render went past one of its limits."""


# -- the guard: per-thread budgets -------------------------------------------------------
class _Guard(threading.local):
    deadline: float | None = None
    cpu_deadline: float = 0.0
    depth: int = 0
    max_output: int = DEFAULT_MAX_OUTPUT
    spent: int = 0


guard = _Guard()


def start(time_limit: float, max_output: int) -> None:
    """Arm the guard for one render on this thread: *time_limit* seconds of this thread's CPU time."""
    guard.deadline = time.monotonic() + time_limit
    guard.cpu_deadline = time.thread_time() + time_limit
    guard.depth = 0
    guard.max_output = max_output
    guard.spent = 0


def stop() -> None:
    guard.deadline = None


def weight(value: Any, limit: int | None = None) -> int:
    """Characters and items in *value*, nested ones included, counted until past *limit* (no recursion)."""
    limit = guard.max_output if limit is None else limit
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 1
        else:
            total += 1
    return total


def refuse_heavy(value: Any, what: str = "a value") -> Any:
    """*value*, unless it is heavier than the output limit (then :class:`Limit`, before anyone uses it)."""
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)) and weight(value) > guard.max_output:
        raise Limit(f"{what} would grow past {guard.max_output} characters")
    return value


def charge(size: int) -> None:
    """Count *size* characters or items built; past the render's budget, stop it."""
    guard.spent += size
    if guard.spent > guard.max_output * WORK_FACTOR:
        raise Limit(f"rendering built more than {guard.max_output * WORK_FACTOR} characters in all")


def check_size(value: Any) -> Any:
    """*value* after an operation built it: within the limit, and counted against the budget."""
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)):
        if weight(value) > guard.max_output:
            raise Limit(f"a value grew past {guard.max_output} characters")
        charge(len(value))
    return value


def _ensure(size: int, what: str) -> None:
    if size > guard.max_output:
        raise Limit(f"{what} would grow past {guard.max_output} characters")


def check_clock() -> None:
    """Stop a render that has used its time: the clock is read on every line (cheap), and once it says the
    budget is spent the thread's CPU time decides. A thread that waited for a core (a busy machine, the other
    threads' turns at the GIL) gets the rest of its budget: only a template that does too much fails."""
    if guard.deadline is not None and time.monotonic() > guard.deadline:
        left = guard.cpu_deadline - time.thread_time()
        if left > 0:
            guard.deadline = time.monotonic() + left
            return
        guard.deadline = None  # raise once; the unwinding frames must not trip it again
        raise Limit("rendering took longer than its time budget")


def tracer(frame: Any, event: str, arg: Any) -> Callable[..., Any] | None:
    """Check the clock on every line of template code (and on each call from it)."""
    if event == "call" and frame.f_code.co_filename.startswith("<nudge:"):
        check_clock()
        return _line_tracer
    return None


def _line_tracer(frame: Any, event: str, arg: Any) -> Callable[..., Any]:
    if event == "line":
        check_clock()
    return _line_tracer


def traced() -> Any:
    """Install :func:`tracer`; return what to restore with ``sys.settrace``."""
    previous = sys.gettrace()
    sys.settrace(tracer)
    return previous


_FORMAT_PERCENT = re.compile(r"%[-#0 +]*(\*|\d{5,})|%[-#0 +]*\d*\.(\*|\d{5,})")
_FORMAT_BRACES = re.compile(r"\{[^{}]*:[^{}]*(\d{5,}|\{)")


def _check_format(spec: Any) -> None:
    if isinstance(spec, str) and (_FORMAT_PERCENT.search(spec) or _FORMAT_BRACES.search(spec)):
        raise Limit("format widths above 9999 are not allowed")


# -- sizes of results, computed before building them ---------------------------------
def _text_length(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes)) else weight(value)


def _joined(items: Iterable[Any], separator: Any) -> list[Any]:
    """*items* as a list, refused when joining them with *separator* would pass the limit."""
    out: list[Any] = []
    total = 0
    sep = len(separator) if isinstance(separator, (str, bytes)) else len(str(separator))
    for item in items:
        total += _text_length(item) + (sep if out else 0)
        _ensure(total, "the joined text")
        out.append(item)
    return out


def _replaced(text: Any, old: Any, new: Any, count: Any = -1) -> None:
    if not isinstance(text, (str, bytes)) or not isinstance(old, type(text)) or not isinstance(new, type(text)):
        text, old, new = str(text), str(old), str(new)
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    _ensure(len(text) + hits * max(0, len(new) - len(old)), "the replaced text")


def _before_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Pre-checks for methods of strings: padding widths, replace and join sizes."""
    owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
    if not isinstance(owner, (str, bytes)):
        return args
    if name in _PADDING and args and isinstance(args[0], int):
        _ensure(args[0], f"{name}()")
    elif name == "replace" and len(args) >= 2:
        _replaced(owner, *args[:3])
    elif name == "join" and args:
        return (_joined(args[0], owner), *args[1:])
    return args


def _bound(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return dict(inspect.signature(function).bind_partial(*args, **kwargs).arguments)
    except (TypeError, ValueError):
        return None


def _before_filter(
    name: str, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Pre-checks for the filters whose output can outgrow their input."""
    if name in ("center", "indent", "wordwrap", "truncate") and any(
        isinstance(a, int) and a > MAX_FILTER_WIDTH for a in (*args[1:], *kwargs.values())
    ):
        raise Limit(f"the {name} filter takes widths up to {MAX_FILTER_WIDTH}")
    if name == "format" and args:
        _check_format(args[-1] if getattr(function, "jinja_pass_arg", None) else args[0])
    if name not in ("join", "replace", "indent", "wordwrap", "urlize"):
        return args
    bound = _bound(function, args, kwargs)
    if bound is None:
        return args
    if name == "join" and "value" in bound:
        items = _joined(bound["value"], bound.get("d", ""))
        return tuple(items if a is bound["value"] else a for a in args)
    text = str(bound.get("s", bound.get("value", "")))
    if name == "replace":
        _replaced(text, bound.get("old", ""), bound.get("new", ""), bound.get("count") or -1)
    elif name == "indent":
        width = bound.get("width", 4)
        pad = len(width) if isinstance(width, str) else int(width)
        _ensure(len(text) + (text.count("\n") + 1) * pad, "the indented text")
    elif name == "wordwrap":
        width = max(1, int(bound.get("width", 79)))
        wrap = len(bound.get("wrapstring") or "\n")
        _ensure(len(text) + (len(text) // width + 1) * wrap, "the wrapped text")
    elif name == "urlize":
        extra = len(str(bound.get("target") or "")) + len(str(bound.get("rel") or "")) + 64
        _ensure(2 * len(text) + (len(text) // 4 + 1) * extra, "the linked text")
    return args


def bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """*function* as a filter that never takes or builds a value past the limits."""
    passes = getattr(function, "jinja_pass_arg", None) is not None

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        value_at = 1 if passes else 0
        if len(args) > value_at:
            refuse_heavy(args[value_at], f"the value given to {name}")
        args = _before_filter(name, function, args, kwargs)
        return check_size(function(*args, **kwargs))

    wrapper.__dict__.update(getattr(function, "__dict__", {}))  # keeps Jinja's pass_context / … marks
    wrapper.__name__ = getattr(function, "__name__", name)
    return wrapper


def bounded_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise Limit(f"range() is limited to {MAX_RANGE} items")
    return rng


class Undefined(ChainableUndefined):
    """Missing data (also ``event.a.b``) renders as empty; an unsafe attribute is an error at once, not a blank."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self._undefined_exception is SecurityError:
            self._fail_with_undefined_error()


class _Generator(CodeGenerator):
    """Bounds the ``~`` operator too, which Jinja does not route through the sandbox: the operands
    are weighed before they are joined, and the result counted."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked(")
        if frame.eval_ctx.volatile:
            self.write("(markup_join if context.eval_ctx.volatile else str_join)")
        else:
            self.write("markup_join" if frame.eval_ctx.autoescape else "str_join")
        self.write("(environment.joinable((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))))")


def _bounded_concat(parts: Iterable[str]) -> str:
    """Joins captured output (``{% set %}`` blocks, macros, ``caller()``): sized before it is built."""
    parts = list(parts)
    size = sum(len(p) for p in parts)
    _ensure(size, "a captured block")
    charge(size)
    return "".join(parts)


class Environment(ImmutableSandboxedEnvironment):
    """The sandbox with Nudge's limits; build one with :func:`environment`."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _Generator
    concat = staticmethod(_bounded_concat)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, (str, bytes)) and attr in BLOCKED_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            raise Limit(f"exponents above {MAX_EXPONENT} are not allowed")
        if (
            operator in ("*", "**")
            and isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() * (abs(right) if operator == "**" else 1) + right.bit_length() > 100_000
        ):
            raise Limit("numbers that large are not allowed")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if hasattr(seq, "__len__") and isinstance(count, int) and not isinstance(count, bool):
                    _ensure(weight(seq) * count, "a repeated value")
        if operator == "+" and hasattr(left, "__len__") and hasattr(right, "__len__"):
            _ensure(weight(left) + weight(right), "the sum")
        if operator == "%":
            _check_format(left)
            refuse_heavy(right, "the formatted values")
        return check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        guard.depth += 1
        try:
            if guard.depth > MAX_CALL_DEPTH:
                raise Limit(f"calls nest deeper than {MAX_CALL_DEPTH} levels (recursive macro?)")
            for arg in (*args, *kwargs.values()):
                refuse_heavy(arg, "an argument")
            args = _before_method(__obj, args, kwargs)
            return check_size(super().call(__context, __obj, *args, **kwargs))
        finally:
            guard.depth -= 1

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        _check_format(value.__self__)
        return wrapper

    def checked(self, value: Any) -> Any:
        return check_size(value)

    def joinable(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        _ensure(sum(_text_length(v) for v in values), "the joined text")
        return values


def environment(autoescape: bool, filters: dict[str, Callable[..., Any]]) -> Environment:
    """A sandbox with the limits, the bounded ``range`` and *filters* (plugins' ones included), each bounded."""
    env = Environment(autoescape=autoescape, undefined=Undefined, finalize=refuse_heavy)
    env.globals["range"] = bounded_range
    env.globals.pop("lipsum", None)  # paragraphs of filler on demand: unbounded, never needed in a message
    env.filters.pop("attr", None)  # getattr by string: a sandbox escape hatch, never needed in a message
    env.filters.update(filters)
    env.filters = {name: bounded_filter(name, f) for name, f in env.filters.items()}
    return env


__all__ = [
    "DEFAULT_MAX_OUTPUT",
    "DEFAULT_TIME_LIMIT",
    "Environment",
    "Limit",
    "check_size",
    "environment",
    "start",
    "stop",
    "traced",
    "weight",
]
