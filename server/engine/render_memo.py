"""Which data a template part reads, so that its rendering can be reused for every message that gives it the same.

A newsletter renders one template version for thousands of contacts, and a part such as ``Hello {{
contact.first_name or 'there' }}`` reads one value of each: its output is the same for every contact with that
value. :func:`reads` says, from a part's syntax tree, exactly which values of the context it reads — a name, or one
key of a name (``contact.first_name``) — or None when the part does anything whose output is not a function of
those values alone (a call, a loop, an assignment, a macro, a filter that is not one of Jinja's pure built-ins or
that a plugin replaced). :func:`memo_key` turns those values into a key; :class:`~.render.Renderer` keeps the
output of a part by it. Nothing is approximated: a part that is not certainly pure is rendered every time.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from jinja2 import nodes

__all__ = ["Reads", "memo_key", "reads"]

#: what a part reads: (name, key) pairs, key None for the whole value of the name
Reads = tuple[tuple[str, str | None], ...]

#: Jinja's built-in filters whose output is a function of their arguments alone (not ``random``; not the ones
#: that look attributes up by name or call anything)
PURE_FILTERS = frozenset(
    {
        "abs",
        "capitalize",
        "center",
        "count",
        "d",
        "default",
        "e",
        "escape",
        "filesizeformat",
        "first",
        "float",
        "forceescape",
        "format",
        "indent",
        "int",
        "join",
        "last",
        "length",
        "lower",
        "replace",
        "round",
        "safe",
        "string",
        "striptags",
        "title",
        "trim",
        "truncate",
        "upper",
        "urlencode",
        "wordcount",
        "wordwrap",
    }
)
#: the nodes of a part that only combine what it reads (outputs, literals, conditions, operators, tests)
_COMBINING = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Const,
    nodes.If,
    nodes.CondExpr,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.Compare,
    nodes.Operand,
    nodes.Concat,
    nodes.Test,  # Jinja's tests (defined, none, string, …) are pure; plugins register filters only
    nodes.Add,
    nodes.Sub,
    nodes.Mul,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Mod,
)
#: the attributes of plain data (and its methods): a key of that name may give one of them instead
_METHODS = frozenset(name for kind in (dict, list, str, int, float, bool, type(None)) for name in dir(kind))
#: a value missing from the context (not the same as None)
_MISSING = ("missing",)


class _Impure(Exception):
    """The part does something whose output is not a function of the values it reads."""


def reads(tree: nodes.Template, plugin_filters: Collection[str] = (), globals_: Collection[str] = ()) -> Reads | None:
    """The values of the context *tree* reads, or None when its output may depend on anything else.

    :param plugin_filters: filters plugins registered: never pure as far as we know (even under a built-in's name).
    :param globals_: the environment's globals (functions: their text is where they live in memory).
    """
    found: dict[tuple[str, str | None], None] = {}

    def visit(node: nodes.Node) -> None:
        if isinstance(node, nodes.Name):
            if node.ctx != "load" or node.name in globals_:
                raise _Impure
            found[(node.name, None)] = None
            return
        if isinstance(node, (nodes.Getattr, nodes.Getitem)):
            key = node.attr if isinstance(node, nodes.Getattr) else _const_key(node.arg)
            # a name plain data has as an attribute (``contact.items``, ``name.upper``) may give that method, whose
            # text shows where it lives in memory: not the same twice
            if key is None or key.startswith("_") or key in _METHODS:
                raise _Impure
            if isinstance(node.node, nodes.Name):
                if node.node.ctx != "load" or node.node.name in globals_:
                    raise _Impure
                found[(node.node.name, key)] = None
            else:
                visit(node.node)  # of a value read there: a function of it
            return
        if isinstance(node, nodes.Filter):
            if node.name not in PURE_FILTERS or node.name in plugin_filters or node.dyn_args or node.dyn_kwargs:
                raise _Impure
        elif not isinstance(node, _COMBINING):
            raise _Impure
        for child in node.iter_child_nodes():
            visit(child)

    try:
        visit(tree)
    except _Impure:
        return None
    return tuple(found)


def _const_key(arg: nodes.Node) -> str | None:
    return arg.value if isinstance(arg, nodes.Const) and isinstance(arg.value, str) else None


def memo_key(what: Reads, context: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The values *what* names in *context* (plain data, see ``render._plain``), as a key; None when one of them
    is not plain data (it cannot be compared)."""
    values: list[Any] = []
    append = values.append
    try:
        # every message asks this of each part it renders: the reading inlined, text and None taken as they are
        for name, key in what:
            value = context.get(name, _MISSING)
            if value is not _MISSING and key is not None:
                if type(value) is dict:
                    value = value.get(key, _MISSING)
                else:  # not a mapping: what the key gives of it is a function of all of it
                    append(("whole", _frozen(value)))
                    continue
            append(value if value is _MISSING or value is None or type(value) is str else _frozen(value))
    except TypeError:
        return None
    return tuple(values)


def _frozen(value: Any) -> Any:
    """*value* as a hashable key that tells apart what renders differently (``1``, ``1.0``, ``True``, ``-0.0``)."""
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is int or kind is bool:
        return (kind.__name__, value)
    if kind is float:
        return ("float", repr(value))
    if kind is dict:
        return ("dict", tuple((k, _frozen(v)) for k, v in value.items()))
    if kind is list:
        return ("list", tuple(map(_frozen, value)))
    raise TypeError(kind)
