"""Conditions as JSON trees: the form the engine evaluates (and turns into SQL).

A tree node is one of (see docs/plan.md):

- a JSON scalar (string, number, true/false, null): that literal;
- a JSON array: a list of nodes;
- an object with a single operator key, e.g. ``{"==": [a, b]}``, ``{"and": [...]}``,
  ``{"field": "email"}``, ``{"duration": 259200}`` (``did`` adds its own keys, and a call of a
  condition function is ``{"call": "domain", "args": [...]}``).
"""

from __future__ import annotations

from . import ast as A
from .plan import Scalar, Tree


class CompileError(ValueError):
    """The program uses a form the checker rejects (run :func:`dsl.check` first)."""


COMPARE_KEYS = {
    "==": "==",
    "!=": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
    "in": "in",
    "contains": "contains",
    "starts with": "starts_with",
    "ends with": "ends_with",
}


def tree(expr: A.Expr) -> Tree:
    """The JSON tree for an expression node."""
    if isinstance(expr, A.String):
        return expr.value
    if isinstance(expr, A.Number):
        return expr.value
    if isinstance(expr, A.Bool):
        return expr.value
    if isinstance(expr, A.Null):
        return None
    if isinstance(expr, A.Duration):
        return {"duration": expr.seconds}
    if isinstance(expr, A.Time):
        return {"time": str(expr)}
    if isinstance(expr, A.Date):
        return {"date": expr.text}
    if isinstance(expr, A.ListLit):
        return [tree(item) for item in expr.items]
    if isinstance(expr, A.Path):
        return path(expr)
    if isinstance(expr, A.Now):
        return {"now": True}
    if isinstance(expr, A.Today):
        return {"today": True}
    if isinstance(expr, A.Compare):
        return _compare(expr)
    if isinstance(expr, A.Matches):
        return {"matches": [tree(expr.subject), expr.pattern.value]}
    if isinstance(expr, A.IsSet):
        test: Tree = {"is_set": tree(expr.subject)}
        return {"not": test} if expr.negated else test
    if isinstance(expr, A.HasTag):
        return {"has_tag": expr.tag.value}
    if isinstance(expr, A.InSegment):
        return {"segment": expr.segment.value}
    if isinstance(expr, A.Did):
        return {
            "did": expr.event.name,
            "where": tree(expr.where) if expr.where is not None else None,
            "at_least": expr.at_least.value if expr.at_least is not None else 1,
            "within": expr.within.seconds,
        }
    if isinstance(expr, A.Arith):
        return {expr.op: [tree(expr.left), tree(expr.right)]}
    if isinstance(expr, A.Call):
        return {"call": expr.name, "args": [tree(arg) for arg in expr.args]}
    if isinstance(expr, A.And):
        return {"and": [tree(item) for item in expr.items]}
    if isinstance(expr, A.Or):
        return {"or": [tree(item) for item in expr.items]}
    if isinstance(expr, A.Not):
        return {"not": tree(expr.item)}
    if isinstance(expr, A.TagRef):
        raise CompileError("`tag` can only be compared with a string or a list of strings")
    raise TypeError(f"not a condition: {expr!r}")


def path(expr: A.Path) -> Tree:
    if expr.root == "contact":
        return {"field": expr.rest}
    if expr.root == "event":
        return {"prop": expr.rest}
    raise CompileError(f"unknown path {expr}")


def _compare(expr: A.Compare) -> Tree:
    if isinstance(expr.left, A.TagRef):
        return _tag_test(expr)
    if isinstance(expr.right, A.TagRef):
        raise CompileError('`tag` goes on the left: `tag == "vip"`')
    if expr.op == "not in":
        return {"not": {"in": [tree(expr.left), tree(expr.right)]}}
    return {COMPARE_KEYS[expr.op]: [tree(expr.left), tree(expr.right)]}


def _tag_test(expr: A.Compare) -> Tree:
    right = expr.right
    refused = CompileError("`tag` can only be compared with a string or a list of strings")
    if expr.op in ("==", "!=") and isinstance(right, A.String):
        test: Tree = {"has_tag": right.value}
        return test if expr.op == "==" else {"not": test}
    if expr.op in ("in", "not in") and isinstance(right, A.ListLit):
        tags = [item.value for item in right.items if isinstance(item, A.String)]
        if len(tags) == len(right.items):
            any_of: Tree = {"or": [{"has_tag": tag} for tag in tags]}
            return any_of if expr.op == "in" else {"not": any_of}
    raise refused


_SCALARS = (A.String, A.Number, A.Bool)


def match_keys(condition: A.Expr | None) -> list[list[Scalar]]:
    """Equality tests in the top-level ``and`` chain, for indexing rules by event.

    ``event.kind == "trial" and tag == "vip"`` gives
    ``[["event.kind", "trial"], ["tag", "vip"]]``. Every key is a necessary
    condition: a contact that fails one cannot match the rule.
    """
    if condition is None:
        return []
    items = condition.items if isinstance(condition, A.And) else (condition,)
    keys: list[list[Scalar]] = []
    for item in items:
        if isinstance(item, A.HasTag):
            keys.append(["tag", item.tag.value])
        elif isinstance(item, A.Compare) and item.op == "==":
            left, right = item.left, item.right
            if isinstance(right, (A.Path, A.TagRef)) and isinstance(left, _SCALARS):
                left, right = right, left
            if isinstance(left, A.TagRef) and isinstance(right, A.String):
                keys.append(["tag", right.value])
            elif isinstance(left, A.Path) and left.root in ("contact", "event") and isinstance(right, _SCALARS):
                keys.append([str(left), right.value])
    return keys
