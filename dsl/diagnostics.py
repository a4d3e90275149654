"""Diagnostics: what went wrong, where, and what to do about it."""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .ast import Span

ERROR = "error"
WARNING = "warning"

#: how many characters of a user's name (rule, tag, template, field …) a message quotes
NAME_LIMIT = 60


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a source file.

    ``line`` and ``col`` are 1-based; ``col`` counts characters, not bytes.
    ``end_col`` (exclusive, same line) widens the caret into an underline.
    ``replacement``, set with a "did you mean" suggestion, is the text that fixes the problem when
    it replaces the underlined span (``col`` to ``end_col`` on ``line``): an editor offers it as a
    one-click fix. It never changes how the diagnostic is printed.
    """

    severity: str
    file: str
    line: int
    col: int
    message: str
    hint: str | None = None
    end_col: int | None = None
    replacement: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def location(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def headline(self) -> str:
        """``file:line:col: message`` (warnings say so after the location)."""
        prefix = "" if self.is_error else "warning: "
        return f"{self.location()}: {prefix}{self.message}"

    def format(self, source: str | Sequence[str] | None = None) -> str:
        """Render the diagnostic for people.

        :param source: the text of ``file`` (or its lines, split at ``\n``: a caller formatting many
            diagnostics of one long file splits it once); when given, the offending line is
            shown with a caret under the spot.
        :return: ``file:line:col: message``, the source line, a caret line and
            a ``hint: …`` line (lines that do not apply are left out).
        """
        out = [self.headline()]
        line_text = _source_line(source, self.line)
        if line_text is not None:
            shown = _printable(line_text)
            out.append(shown)
            out.append(_caret(shown, self.col, self.end_col))
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)


def _source_line(source: str | Sequence[str] | None, line: int) -> str | None:
    if source is None or line < 1:
        return None
    lines = source.split("\n") if isinstance(source, str) else source
    if line > len(lines):
        return None
    return lines[line - 1].rstrip("\r")


def _printable(text: str) -> str:
    """Replace control characters (but not tabs) with U+FFFD so the caret lines up."""
    return "".join(ch if ch == "\t" or unicodedata.category(ch)[0] != "C" else "\ufffd" for ch in text)


def _caret(line_text: str, col: int, end_col: int | None) -> str:
    """Spaces (tabs where the source has tabs) up to ``col``, then ``^~~~``."""
    start = max(col, 1)
    pad = "".join("\t" if ch == "\t" else " " for ch in line_text[: start - 1])
    pad += " " * max(0, start - 1 - len(line_text))
    width = 1
    if end_col is not None and end_col > start:
        width = min(end_col, len(line_text) + 1) - start
    return pad + "^" + "~" * max(0, width - 1)


def at(
    severity: str, file: str, span: Span, message: str, hint: str | None = None, replacement: str | None = None
) -> Diagnostic:
    """A diagnostic pointing at ``span`` (underlined when it stays on one line).

    :param replacement: text that fixes the problem in place of the span; kept only when the span
        stays on one line (a fix replaces exactly what is underlined).
    """
    end_col = span.end_column if span.end_line == span.line else None
    return Diagnostic(
        severity, file, span.line, span.column, message, hint, end_col, replacement if end_col is not None else None
    )


def shorten(name: str, limit: int = NAME_LIMIT) -> str:
    """``name`` as a message quotes it: its first ``limit`` characters and "…" when it is longer, so a
    megabyte-long name is not repeated whole; control characters are escaped to keep the message one line.

    Use it wherever a message or hint quotes a name the user wrote; a ``replacement`` keeps the full text.
    """
    cut = name if len(name) <= limit else name[:limit] + "…"
    if not any(_is_control(ch) for ch in cut):
        return cut
    return "".join(_escape(ch) if _is_control(ch) else ch for ch in cut)


def control_character(text: str) -> str | None:
    """The first control character or line break of ``text`` (``U+000A``), or None."""
    found = next((ch for ch in text if _is_control(ch)), None)
    return None if found is None else f"U+{ord(found):04X}"


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def _escape(ch: str) -> str:
    return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\u{ord(ch):04x}")


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The closest candidate to ``word`` (difflib), or None."""
    matches = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=cutoff)
    return matches[0] if matches else None


def suggestion(word: str, candidates: Iterable[str], quote: str = '"') -> str:
    """`` — did you mean "x"?`` or an empty string."""
    return suggest(word, candidates, quote)[0]


def suggest(word: str, candidates: Iterable[str], quote: str = '"') -> tuple[str, str | None]:
    """:func:`suggestion`'s text and the word it suggests (None when there is none)."""
    best = did_you_mean(word, candidates)
    return (f" — did you mean {quote}{shorten(best)}{quote}?" if best else ""), best


def unknown_step(word: str, candidates: Iterable[str]) -> tuple[str, str, str | None]:
    """``(message, hint, suggested step)`` for a step line starting with ``word``, a step no one knows."""
    known = sorted(set(candidates))
    text, best = suggest(word, known)
    return f'unknown step "{shorten(word)}"{text}', "steps are " + ", ".join(known), best


def sort_key(diagnostic: Diagnostic) -> tuple[str, int, int, str, str]:
    return (diagnostic.file, diagnostic.line, diagnostic.col, diagnostic.severity, diagnostic.message)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)
