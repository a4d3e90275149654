"""Text → :class:`~dsl.ast.Program`, with every syntax error in the file.

The LALR parser is driven token by token (lark's interactive parser) so it can
recover: the parser state is saved after every separator (newline or ``;``);
on an error the rest of the statement is skipped, the saved state restored,
and parsing goes on with the next statement. When the broken statement opened
a block (``if … then``, ``when … then``, ``split``, ``else`` …) a stand-in head
is fed in its place so the block's ``end`` still matches and one mistake
gives one message.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, cast

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedToken
from lark.lexer import ContextualLexer, LexerThread
from lark.parsers.lalr_parser_state import ParserState

from . import ast as A
from .builder import AstBuilder
from .diagnostics import ERROR, Diagnostic, did_you_mean, unknown_step
from .syntax_errors import bare_name_message, character_message, close_keyword, is_bare_name, token_message
from .vocabulary import BUILTIN_STEPS

MAX_ERRORS = 50
"""Syntax errors reported per file before giving up."""

MAX_STACK = 200
"""Parser stack depth allowed (roughly 40 nested ``if`` blocks or 100 parentheses)."""

MAX_DEPTH = 60
"""Syntax-tree depth allowed, so every later walk stays far from Python's recursion limit."""

_lock = threading.Lock()
_parsers: dict[str, Lark] = {}


def grammar_text() -> str:
    """The grammar source, ``dsl/grammar.lark``."""
    return resources.files("dsl").joinpath("grammar.lark").read_text(encoding="utf-8")


def _shared(start: str, extra: str = "") -> Lark:
    """The LALR parser from rule *start*, built on first use (it is stateless and thread-safe)."""
    with _lock:
        if start not in _parsers:
            _parsers[start] = Lark(
                grammar_text() + extra,
                parser="lalr",
                start=start,
                propagate_positions=True,
                keep_all_tokens=True,
                maybe_placeholders=False,
                transformer=AstBuilder(),
            )
        return _parsers[start]


def lark_parser() -> Lark:
    """The parser of rules files."""
    return _shared("program")


def condition_lark_parser() -> Lark:
    """The parser of bare conditions: the same grammar from its ``condition`` rule, with new
    lines ignored so a condition may span lines."""
    return _shared("condition", "\n%ignore _NL\n")


@dataclass(frozen=True)
class ParseResult:
    """What :func:`parse` found: a program (None when there is any error) and diagnostics."""

    program: A.Program | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.program is not None


_COMMENT_RE = re.compile(r'"(?:\\.|[^"\\\n])*"|#[^\n]*')


def comments(text: str) -> tuple[A.Comment, ...]:
    """Every ``#`` comment outside strings, with its position."""
    found = []
    line, counted_to = 1, 0
    for match in _COMMENT_RE.finditer(text):
        if not match.group().startswith("#"):
            continue
        start = match.start()
        line += text.count("\n", counted_to, start)
        counted_to = start
        line_start = text.rfind("\n", 0, start) + 1
        column = start - line_start + 1
        own_line = not text[line_start:start].strip()
        span = A.Span(line, column, line, column + len(match.group()))
        found.append(A.Comment(match.group()[1:].rstrip(), own_line, span=span))
    return tuple(found)


_BAD_TEXT_RE = re.compile(r"[\ud800-\udfff]|\r(?!\n)")


def bad_text(text: str, filename: str) -> list[Diagnostic]:
    """Characters refused before parsing, each with its line and column: lone surrogates (no file can
    hold them, and nothing downstream can encode them) and the first carriage return without a new
    line after it (old Mac line ends: the file would read as one line and a ``#`` comment would swallow
    the steps after it)."""
    found: list[Diagnostic] = []
    line, counted_to, lone_cr = 1, 0, False
    for match in _BAD_TEXT_RE.finditer(text):
        char, start = match.group(), match.start()
        if char == "\r":
            if lone_cr:
                continue
            lone_cr = True
            message = "a carriage return (CR) without a new line after it"
            hint = "end lines with LF or CRLF (save the file with those line ends); a lone CR ends nothing"
        else:
            message = f"invalid text (a lone surrogate U+{ord(char):04X})"
            hint = "remove it; rules are plain UTF-8 text"
        line += text.count("\n", counted_to, start)
        counted_to = start
        column = start - text.rfind("\n", 0, start)
        found.append(Diagnostic(ERROR, filename, line, column, message, hint))
        if len(found) >= MAX_ERRORS:
            break
    return found


def parse(text: str, filename: str = "<input>", steps: Collection[str] = ()) -> ParseResult:
    """Parse a rules file. Never raises for bad input.

    :param text: the source.
    :param filename: used in diagnostics and to name rules without a header.
    :param steps: the plugins' step keywords: a line starting with one that fails to parse is not a misspelt
        built-in step (``sent``, a plugin's, is not "set" misspelt).
    :return: the program (None if there was any syntax error) and diagnostics.
    """
    if text.startswith("\ufeff"):
        text = " " + text[1:]
    bad = bad_text(text, filename)
    if bad:
        return ParseResult(None, bad)
    rules, diagnostics = _Driver(lark_parser(), text, filename, steps).run()
    if diagnostics:
        return ParseResult(None, diagnostics)
    program = A.Program(filename, tuple(rules), comments(text))
    too_deep = _depth_error(program, filename)
    if too_deep:
        return ParseResult(None, [too_deep])
    return ParseResult(program, [])


def parse_expression(text: str, filename: str = "<condition>") -> tuple[A.Expr | None, list[Diagnostic]]:
    """Parse a bare condition, such as a segment's ``tag == "vip" and did order.paid within 30d``.

    Lines and columns in diagnostics are those of ``text`` itself. Never raises for bad input.

    :return: the expression (None when there is an error) and the syntax diagnostics (at most one).
    """
    if text.startswith("\ufeff"):
        text = " " + text[1:]
    bad = bad_text(text, filename)
    if bad:
        return None, bad[:1]
    lark = condition_lark_parser()
    interactive = lark.parse_interactive(text)
    state = interactive.parser_state
    previous: Token | None = None

    def error(
        message: str,
        hint: str,
        line: int | None,
        column: int | None,
        end_column: int | None = None,
        replacement: str | None = None,
    ) -> tuple[A.Expr | None, list[Diagnostic]]:
        message = message.replace("the end of the file", "the end of the condition")
        return None, [
            Diagnostic(ERROR, filename, line or 1, column or 1, message, hint, end_column, replacement=replacement)
        ]

    try:
        for token in _lex(interactive.lexer_thread, state):
            state.feed_token(token)
            previous = token
            if len(state.state_stack) > MAX_STACK:
                return error("this condition nests too deeply", "flatten it", token.line, token.column)
        end = (
            Token("$END", "", 0, previous.end_line, previous.end_column, previous.end_line, previous.end_column)
            if previous
            else Token("$END", "", 0, 1, 1)
        )
        expr: A.Expr = state.feed_token(end, True)
    except UnexpectedCharacters as failure:
        return error(*character_message(failure, text), failure.line, failure.column)
    except UnexpectedToken as failure:
        if previous is not None and is_bare_name(failure, previous):
            message, hint, close = bare_name_message(previous)
            return error(message, hint, previous.line, previous.column, previous.end_column, close)
        token = failure.token
        return error(
            *token_message(lark, failure),
            token.line,
            token.column,
            token.end_column if token.type != "$END" else None,
            close_keyword(lark, token, set(failure.expected or ())),
        )
    except (ValueError, OverflowError, RecursionError) as failure:  # never a traceback
        line, column = (previous.line, previous.column) if previous else (1, 1)
        return error(f"cannot read this ({failure})", "simplify the condition", line, column)
    if A.depth(expr) > MAX_DEPTH:
        return error(
            "this condition nests too deeply",
            'flatten it, or split it into segments used with `in segment "…"`',
            expr.span.line,
            expr.span.column,
        )
    return expr, []


def parse_bytes(data: bytes, filename: str = "<input>", steps: Collection[str] = ()) -> ParseResult:
    """Parse a file's raw bytes (*steps*: see :func:`parse`); invalid UTF-8 is a diagnostic with line and column."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _bad_utf8(data, filename, steps)
    return parse(text, filename, steps)


def _bad_utf8(data: bytes, filename: str, steps: Collection[str]) -> ParseResult:
    diagnostics: list[Diagnostic] = []
    position = 0
    while position < len(data) and len(diagnostics) < MAX_ERRORS:
        try:
            data[position:].decode("utf-8")
            break
        except UnicodeDecodeError as error:
            bad = position + error.start
            line_start = data.rfind(b"\n", 0, bad) + 1
            line = data.count(b"\n", 0, bad) + 1
            column = len(data[line_start:bad].decode("utf-8", errors="replace")) + 1
            diagnostics.append(
                Diagnostic(
                    ERROR,
                    filename,
                    line,
                    column,
                    f"invalid UTF-8 (byte 0x{data[bad]:02x})",
                    "save the file as UTF-8",
                )
            )
            position = position + error.end
    result = parse(data.decode("utf-8", errors="replace"), filename, steps)
    seen = {(d.line, d.col) for d in diagnostics}
    extra = [
        d for d in result.diagnostics if (d.line, d.col) not in seen and "invalid or unknown text" not in d.message
    ]
    combined = sorted(diagnostics + extra, key=lambda d: (d.line, d.col))
    if len(combined) > MAX_ERRORS:
        last = combined[MAX_ERRORS - 1]
        combined = combined[:MAX_ERRORS] + [
            Diagnostic(
                ERROR,
                filename,
                last.line,
                last.col,
                f"too many errors; stopped after {MAX_ERRORS}",
                "fix the errors above and check again",
            )
        ]
    return ParseResult(None, combined)


def _depth_error(program: A.Program, filename: str) -> Diagnostic | None:
    for rule in program.rules:
        if A.depth(rule) > MAX_DEPTH:
            return Diagnostic(
                ERROR,
                filename,
                rule.span.line,
                rule.span.column,
                "this rule nests too deeply",
                'flatten the conditions or move part of it into another rule started with `start "Other rule"`',
            )
    return None


# Heads that open a block: what to feed instead of a broken statement so the
# block's `end` still has something to close. "THEN" marks heads that need it.
_STAND_INS = {
    "IF": [("IF", "if"), ("TRUE", "true"), ("THEN", "then")],
    "ELIF": [("ELIF", "elif"), ("TRUE", "true"), ("THEN", "then")],
    "WHEN": [("WHEN", "when"), ("DOTTED", "x.x"), ("THEN", "then")],
    "WAIT": [
        ("WAIT", "wait"),
        ("FOR", "for"),
        ("DOTTED", "x.x"),
        ("UP", "up"),
        ("TO", "to"),
        ("DURATION", "1s"),
        ("THEN", "then"),
    ],
    "SPLIT": [("SPLIT", "split")],
    "ELSE": [("ELSE", "else")],
    "RULE": [("RULE", "rule"), ("STRING", '""')],
    "PERCENT": [("PERCENT", "0%"), ("COLON", ":")],
}
_NEEDS_THEN = {"IF", "ELIF", "WHEN", "WAIT"}
_SEPARATORS = {"_NL", "_SEMI"}
#: what may follow a plugin step's word (grammar.lark, ``plugin_arg``)
_PLUGIN_ARGS = {"STRING", "NAME", "NUMBER", "DURATION", "TIME", "DATE", "DOTTED"}


class _Driver:
    """One parse of one text, with error recovery (see the module docstring)."""

    def __init__(self, lark: Lark, text: str, filename: str, steps: Collection[str] = ()):
        self.lark = lark
        self.steps = steps  # the plugins' step keywords (see ``_misspelt_step``)
        self.text = text
        self.filename = filename
        self.diagnostics: list[Diagnostic] = []
        self.interactive = lark.parse_interactive(text)
        self.state = self.interactive.parser_state
        self.lexer = self.interactive.lexer_thread
        self.saved = self._save()
        self.statement: list[Token] = []
        #: the word a plugin step (or a misspelt step) of the current statement starts with
        self.step_word: Token | None = None
        self.aborted = False

    # ---- the loop ---------------------------------------------------------

    def run(self) -> tuple[list[A.Rule], list[Diagnostic]]:
        tokens = _lex(self.lexer, self.state)
        last: Token | None = None
        while not self.aborted:
            try:
                token = next(tokens)
            except StopIteration:
                break
            except UnexpectedCharacters as error:
                # a character stuck to the word is part of it (`untgа`, a Cyrillic `а`): that is the mistake
                glued = self.step_word is not None and self.step_word.end_pos == error.pos_in_stream
                if glued or not self._misspelt_step():
                    self._report(*character_message(error, self.text), error.line, error.column)
                self._skip_char(error)
                self._recover(None)
                tokens = _lex(self.lexer, self.state)
                continue
            except UnexpectedToken as error:
                self._token_error(error)
                tokens = _lex(self.lexer, self.state)
                continue
            last = token
            step_start = "SEND" in self.state.parse_conf.states[self.state.position]
            try:
                self.state.feed_token(token)
            except UnexpectedToken as error:
                self._token_error(error)
                tokens = _lex(self.lexer, self.state)
                continue
            except (ValueError, OverflowError, RecursionError) as error:  # never a traceback
                self._report(f"cannot read this ({error})", "simplify this part of the rule", token.line, token.column)
                self.aborted = True
                break
            if step_start:
                self.step_word = token if token.type == "NAME" else None
            elif token.type not in _PLUGIN_ARGS:  # the step is over (`end`, `else` …)
                self.step_word = None
            self._after(token)
        if self.aborted:
            return [], self.diagnostics
        end = (
            Token("$END", "", 0, last.end_line, last.end_column, last.end_line, last.end_column)
            if last
            else Token("$END", "", 0, 1, 1)
        )
        try:
            rules: list[A.Rule] = self.state.feed_token(end, True)
        except UnexpectedToken as error:
            self._end_error(error)
            return [], self.diagnostics
        return rules, self.diagnostics

    def _after(self, token: Token) -> None:
        if len(self.state.state_stack) > MAX_STACK:
            self._report(
                "this rule nests too deeply",
                "flatten the conditions or move part of it into another rule",
                token.line,
                token.column,
            )
            self.aborted = True
        elif token.type in _SEPARATORS:
            self.saved = self._save()
            self.statement = []
            self.step_word = None
        else:
            self.statement.append(token)

    # ---- recovery -------------------------------------------------------------

    def _save(self) -> tuple[list[int], list[Any]]:
        return list(self.state.state_stack), list(self.state.value_stack)

    def _restore(self) -> None:
        self.state.state_stack[:] = self.saved[0]
        self.state.value_stack[:] = self.saved[1]

    def _misspelt_step(self) -> bool:
        """Report the statement's step word when it looks like a misspelt step keyword (`sned`); whatever
        broke the line after it is then only a symptom: the rest of the line was read as a plugin step's
        arguments. A plugin's own step (one of ``steps``) is no misspelling: the line's error is reported as it is. The
        checker names an unknown step that parses."""
        word = self.step_word
        if word is None or str(word) in self.steps or did_you_mean(str(word), BUILTIN_STEPS) is None:
            return False
        message, hint, best = unknown_step(str(word), BUILTIN_STEPS)
        self._report(message, hint, word.line, word.column, word.end_column, replacement=best)
        return True

    def _token_error(self, error: UnexpectedToken) -> None:
        token = error.token
        previous = self.statement[-1] if self.statement else None
        if self._misspelt_step():
            close = None
        elif previous is not None and is_bare_name(error, previous):
            message, hint, close = bare_name_message(previous)
            self._report(message, hint, previous.line, previous.column, previous.end_column, replacement=close)
        else:
            message, hint = token_message(self.lark, error)
            close = close_keyword(self.lark, token, set(error.expected or ()))  # the message's "did you mean"
            self._report(message, hint, token.line, token.column, token.end_column, replacement=close)
        if token.type == "$END":
            self.aborted = True
            return
        if token.type in _SEPARATORS:
            self._recover(token)
            return
        if close and not self.statement:
            # `wehn …` recovers as `when …`, so its steps do not cascade.
            token = Token.new_borrow_pos(close.upper(), close, token)
        self.statement.append(token)
        self._recover(None)

    def _recover(self, separator: Token | None) -> None:
        """Skip the rest of the statement, restore the saved state, feed a stand-in head."""
        head = self.statement[0].type if self.statement else None
        found_then = any(t.type == "THEN" for t in self.statement)
        if separator is None:
            stop = self._skip_statement(head in _NEEDS_THEN and not found_then)
            if stop is not None and stop.type == "THEN":
                found_then = True
            separator = stop if stop is not None and stop.type in _SEPARATORS else None
        self._restore()
        if head in _STAND_INS and (head != "WAIT" or found_then):
            self._feed_stand_in(head)
        self.statement = []
        self.step_word = None
        if separator is not None:
            try:
                self.state.feed_token(separator)
            except UnexpectedToken:
                return
            self.saved = self._save()

    def _feed_stand_in(self, head: str) -> None:
        where = self.statement[0]
        saved = self._save()
        try:
            for kind, value in _STAND_INS[head]:
                self.state.feed_token(Token.new_borrow_pos(kind, value, where))
        except UnexpectedToken:
            self.state.state_stack[:], self.state.value_stack[:] = saved

    def _skip_statement(self, stop_at_then: bool) -> Token | None:
        """Read raw tokens up to the next separator (or ``then``); return it, None at the end."""
        lexer, lexer_state = self.lexer.lexer, self.lexer.state
        if not isinstance(lexer, ContextualLexer) or lexer_state is None:  # what Lark(parser="lalr") makes
            raise TypeError(f"the parser needs lark's contextual lexer, not {type(lexer).__name__}")
        root = lexer.root_lexer
        while True:
            try:
                token = root.next_token(lexer_state, self.state)
            except EOFError:
                return None
            except UnexpectedCharacters as error:
                self._skip_char(error)
                continue
            if token.type in _SEPARATORS or (stop_at_then and token.type == "THEN"):
                found: Token = token
                return found

    def _skip_char(self, error: UnexpectedCharacters) -> None:
        if self.lexer.state is None or error.pos_in_stream is None:
            return
        line_counter = self.lexer.state.line_ctr
        if line_counter.char_pos <= error.pos_in_stream:
            line_counter.feed(self.text[line_counter.char_pos : error.pos_in_stream + 1])

    # ---- reporting ------------------------------------------------------------

    def _end_error(self, error: UnexpectedToken) -> None:
        opener = _open_block(self.state.value_stack)
        if opener is not None and "END" in (error.expected or ()):
            word = "wait for" if opener.type == "WAIT" else str(opener)
            self._report(
                f"this `{word}` has no `end`",
                "close every `if`, `split` and `wait for … then` with `end`",
                opener.line,
                opener.column,
                opener.end_column,
            )
        else:
            message, hint = token_message(self.lark, error)
            token = error.token
            self._report(message, hint, token.line, token.column)

    def _report(
        self,
        message: str,
        hint: str,
        line: int | None,
        column: int | None,
        end_column: int | None = None,
        replacement: str | None = None,
    ) -> None:
        line, column = line or 1, column or 1  # tokens from the lexer always have a position
        if self.diagnostics and (self.diagnostics[-1].line, self.diagnostics[-1].col) == (line, column):
            return
        if len(self.diagnostics) >= MAX_ERRORS:
            self.diagnostics.append(
                Diagnostic(
                    ERROR,
                    self.filename,
                    line,
                    column,
                    f"too many syntax errors; stopped after {MAX_ERRORS}",
                    "fix the errors above and check again",
                )
            )
            self.aborted = True
            return
        self.diagnostics.append(
            Diagnostic(
                ERROR,
                self.filename,
                line,
                column,
                message,
                hint,
                end_column,
                replacement if end_column is not None else None,
            )
        )


def _lex(thread: LexerThread, state: ParserState[Any]) -> Iterator[Token]:
    """The tokens *thread* reads for the parser in *state* (lark leaves ``LexerThread.lex`` unannotated)."""
    lex = cast(Callable[[ParserState[Any]], Iterator[Token]], thread.lex)
    return lex(state)


def _open_block(values: list[Any]) -> Token | None:
    """The innermost keyword token of a block still waiting for its ``end``."""
    for value in reversed(values):
        if isinstance(value, Token) and value.type in {"IF", "SPLIT", "WAIT"}:
            return value
    return None
