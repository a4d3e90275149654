"""The Nudge rules language: parse, check, format and compile rules.

Pure Python: imports lark and the standard library only. The engine hands the
checker a :class:`Vocabulary`; the compiler's plan is described in docs/plan.md.
"""

from . import evaluate  # the module: evaluate.evaluate(tree, context) gives a value
from .ast import Program, Rule, Span
from .build import BuildResult, ConditionResult, build, parse_condition
from .checker import check, check_condition, listened_events
from .compiler import compile_program
from .diagnostics import ERROR, WARNING, Diagnostic
from .evaluate import EvalContext, holds, truth
from .formatter import FormatError, fmt, format_program
from .parser import ParseResult, parse, parse_bytes
from .plan import PLAN_VERSION, PlanVersionError, ProgramPlan, RulePlan, plan_problems, require_version
from .vocabulary import (
    BUILTIN_CONTACT_FIELDS,
    BUILTIN_EVENTS,
    RESERVED_FUNCTION_NAMES,
    SQL_TYPES,
    VALUE_TYPES,
    Function,
    Signature,
    Vocabulary,
)

__all__ = [
    "BUILTIN_CONTACT_FIELDS",
    "BUILTIN_EVENTS",
    "ERROR",
    "PLAN_VERSION",
    "RESERVED_FUNCTION_NAMES",
    "SQL_TYPES",
    "VALUE_TYPES",
    "WARNING",
    "BuildResult",
    "ConditionResult",
    "Diagnostic",
    "EvalContext",
    "FormatError",
    "Function",
    "ParseResult",
    "PlanVersionError",
    "Program",
    "ProgramPlan",
    "Rule",
    "RulePlan",
    "Signature",
    "Span",
    "Vocabulary",
    "build",
    "check",
    "check_condition",
    "compile_program",
    "evaluate",
    "fmt",
    "format_program",
    "holds",
    "listened_events",
    "parse",
    "parse_bytes",
    "parse_condition",
    "plan_problems",
    "require_version",
    "truth",
]
