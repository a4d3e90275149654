"""The Nudge rules language: parse, check, format and compile rules.

Pure Python: imports lark and the standard library only.
"""

from .ast import Program, Rule, Span
from .checker import check
from .diagnostics import Diagnostic
from .parser import ParseResult, parse, parse_bytes
from .vocabulary import Vocabulary

__all__ = ["Diagnostic", "ParseResult", "Program", "Rule", "Span", "Vocabulary", "check",
           "parse", "parse_bytes"]
