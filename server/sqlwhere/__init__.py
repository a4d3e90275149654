"""Condition trees (``dsl``'s JSON form) → a SQLAlchemy ``WHERE`` clause over ``contacts``.

The clause selects exactly the contacts for which ``dsl.holds(tree, context)`` is true, on SQLite
and PostgreSQL, following the evaluator's rules (``dsl/evaluate.py``):

- three-valued logic: a comparison with a missing value is unknown (SQL ``NULL``), ``and``/``or``/
  ``not`` are Kleene's, and a row is selected only when the condition is true;
- values of different kinds compare as unknown; a date meets a date-time as midnight UTC;
- ``now``/``today`` are fixed when the clause is built; arithmetic on a field
  (``contact.renewal - 7d < today``) is moved to the constant side, so indexes still apply;
- custom fields are read from the ``fields`` JSON with a type guard, tags and ``did … within``
  are ``EXISTS``/count subqueries; the built-in fields are the vocabulary's (``dsl.BUILTIN_CONTACT_FIELDS``), read
  from their columns, except those kept in the JSON (``birthday``), which are left to the evaluator.

A call of a condition function becomes the function's SQL form for the dialect, with the
arguments spliced in (``{0}``, ``{1}`` …) as bound expressions; a function without one is
:class:`Unsupported` (the checker keeps such calls out of segments, see :func:`dsl.parse_condition`).

What it cannot express raises :class:`Unsupported` (``matches``, arithmetic between two fields,
event properties compared with dates …); callers then evaluate in Python instead
(:mod:`server.segments`). ``matches`` stays out of SQL on purpose: SQLite has no ``REGEXP`` and
PostgreSQL's ``~`` backtracks, while the evaluator runs patterns on RE2 in linear time
(:mod:`server.regex`). Values in a string field that look like ISO dates are compared as
strings here, while the engine reads them as dates.
"""

from __future__ import annotations

from .compiler import Compiler, where
from .terms import Unsupported, is_constant, reads_prop, unknown

__all__ = ["Compiler", "Unsupported", "is_constant", "reads_prop", "unknown", "where"]
