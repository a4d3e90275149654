"""Request bodies parsed the way every JSON endpoint of Nudge does."""

from __future__ import annotations

import json
import re
from typing import Any

#: levels of arrays and objects in one JSON body (event props may nest 32 levels inside an envelope)
MAX_JSON_DEPTH = 40
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonInputError(ValueError):
    """A JSON body that cannot be taken.

    :param field: where (``contact.first_name``, ``tags[0]``; ``""`` for the whole body).
    :param malformed: True when it is not JSON at all (HTTP 400), else it is JSON Nudge refuses (422).
    """

    def __init__(self, field: str, message: str, *, malformed: bool = False):
        super().__init__(message)
        self.field, self.message, self.malformed = field, message, malformed


def lone_surrogate(text: str) -> bool:
    """Whether *text* holds a UTF-16 surrogate on its own (``"\\ud800"`` in JSON): not text, and no database
    stores it."""
    return _SURROGATE.search(text) is not None


def parse_json(raw: bytes | str, field: str = "") -> Any:
    """Parse a request body the way every JSON endpoint of Nudge does (plugins' ones included).

    Refused: what is not JSON (``NaN`` and ``Infinity`` included), nesting deeper than
    :data:`MAX_JSON_DEPTH` levels and a lone surrogate in any string or key.

    :param field: the name of *raw* in errors; fields inside it are named from there.
    :raises JsonInputError: naming the field.
    """
    name = field or "the body"
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:  # the C parser's own guard, far beyond MAX_JSON_DEPTH
        raise JsonInputError(field, f"{name} nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise JsonInputError(field, f"{name} is not valid JSON: {exc}", malformed=True) from None
    if isinstance(raw, bytes) and _plainly_fine(raw, value):
        return value
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:  # no recursion: the depth is what is being checked
        item, path, depth = stack.pop()
        name = path or "the body"
        if isinstance(item, str) and lone_surrogate(item):
            raise JsonInputError(
                path,
                f"{name} holds a lone UTF-16 surrogate, which is not text; send valid UTF-8 (or \\u escapes in pairs)",
            )
        if isinstance(item, (dict, list)) and depth >= MAX_JSON_DEPTH:
            raise JsonInputError(path, f"{name} nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            for key, sub in item.items():
                if lone_surrogate(key):
                    shown = repr(key[:40]) + ("…" if len(key) > 40 else "")
                    raise JsonInputError(
                        path, f"{name} has a key {shown} holding a lone UTF-16 surrogate, which is not text"
                    )
                stack.append((sub, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(item, list):
            stack.extend((sub, f"{path}[{i}]", depth + 1) for i, sub in enumerate(item))
    return value


#: UTF-8 bytes of a surrogate (ED A0..BF ..), which ``json.loads`` decodes with ``surrogatepass``
_UTF8_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")


def _plainly_fine(raw: bytes, value: Any) -> bool:
    """Whether *value*, parsed from *raw*, holds no lone surrogate and nests at most :data:`MAX_JSON_DEPTH`
    levels, found quickly; False when unsure, and the full walk decides and names the field.

    No ``\\ud…`` escape and no UTF-8 surrogate bytes in *raw*: no surrogate at all (a C-speed scan of the bytes
    instead of a regex per string). The depth: level by level through the containers only.
    """
    if json.detect_encoding(raw) not in ("utf-8", "utf-8-sig"):
        return False
    if b"\\ud" in raw or b"\\uD" in raw or _UTF8_SURROGATE.search(raw):
        return False
    level = [value] if isinstance(value, (dict, list)) else []
    for _ in range(MAX_JSON_DEPTH):
        if not level:
            return True
        deeper = []
        for item in level:
            for sub in item.values() if isinstance(item, dict) else item:
                if isinstance(sub, (dict, list)):
                    deeper.append(sub)
        level = deeper
    return not level


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
