"""Reading a CSV import: each row checked as contact input (:class:`RowCleaner`), in chunks of cleaned rows and
rejected ones (:func:`cleaned_chunks`), which the importer writes one at a time."""

from __future__ import annotations

import codecs
import csv
import functools
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

from ..db import json_dumps
from .errors import InvalidInput
from .fields import STANDARD_FIELDS, coerce_value
from .normalize import normalize_email, normalize_phone
from .service import clean_value

__all__ = [
    "Chunk",
    "NotText",
    "Packed",
    "RowCleaner",
    "RowError",
    "cleaned_chunks",
    "csv_rows",
    "merge_rows",
    "new_cells",
    "pack",
    "read_rows",
    "text_blocks",
    "unpack",
]

#: attributes that differ from row to row: checked every time; the others (tags, a plan, a stage) repeat, so each
#: distinct cell is checked once per import and its answer (value or error) reused
_PER_ROW = frozenset({"email", "phone", "external_id", "first_name", "last_name"})
#: how many distinct repeating cells an import remembers
_REMEMBERED = 100_000


@dataclass(frozen=True)
class RowError:
    """A rejected row: where it is in the file and why."""

    line: int  # line number in the file (the header is line 1)
    column: str  # the CSV column ("" when the row as a whole is wrong)
    reason: str


@dataclass
class Chunk:
    """Rows read from the file: how many, the rejected ones and the cleaned ones (line, attributes)."""

    read: int = 0
    errors: list[RowError] = field(default_factory=list)
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


class NotText(ValueError):
    """A file's bytes stop being text in its encoding at *byte* (1-based)."""

    def __init__(self, byte: int, reason: str):
        super().__init__(f"{reason} at byte {byte}")
        self.byte = byte
        self.reason = reason


def text_blocks(path: Path, encoding: str = "utf-8-sig", size: int = 1024 * 1024) -> Iterator[bytes]:
    """The bytes of the file at *path*, *size* at a time, each block checked to decode as *encoding* once the caller
    has had it (and the file not to end inside a character), without holding the text.

    :raises NotText: at the first byte that does not decode.
    :raises LookupError: when *encoding* names no codec.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    done = 0  # bytes before this block
    with path.open("rb") as fh:
        while block := fh.read(size):
            yield block
            held = len(decoder.getstate()[0])  # the end of the block before, an incomplete character
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                raise NotText(done - held + exc.start + 1, str(exc.reason)) from None
            done += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise NotText(done, "the file ends inside a character") from None


#: what :mod:`csv` says of a malformed file, and what it means to the person who made the file
_CSV_ERRORS = (
    ("unexpected end of data", "a quoted value opened on line {start} is never closed: close or remove that quote"),
    ("field larger than field limit", "a value is longer than {limit:,} characters (often a quote never closed "
     "above it): close that quote, or shorten the value"),
    ("expected after", "text follows a closing quote: write a quote inside a quoted value twice (\"\")"),
)  # fmt: skip


def csv_rows(fh: Iterable[str]) -> Iterator[list[str]]:
    """The non-blank rows of a CSV text, read strictly: a malformed file (a quote never closed, text after a closing
    quote, a value past :mod:`csv`'s size limit) raises :class:`InvalidInput` naming the line and what to fix,
    where a lenient reader would take the rest of the file for one value."""
    reader = csv.reader(fh, strict=True)
    start = 1
    try:
        for values in reader:
            if any(v.strip() for v in values):
                yield values
            start = reader.line_num + 1
    except csv.Error as exc:
        text = str(exc)
        hint = next((h for found, h in _CSV_ERRORS if found in text), text)
        hint = hint.format(start=start, limit=csv.field_size_limit())
        raise InvalidInput("file", f"This is not a valid CSV file (line {reader.line_num}: {hint}).") from None


def read_rows(stream: TextIO) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The file's header (stripped names), and its rows that hold a value, each with its line number.

    :raises InvalidInput: when the file is empty.
    """
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput("file", "the file is empty; the first line must name the columns") from None

    def rows() -> Iterator[tuple[int, list[str]]]:
        for values in reader:
            # not a blank line (or one of empty cells); the first cell mostly says so alone
            if (values and values[0].strip()) or "".join(values).strip():
                yield reader.line_num, values

    return [h.strip() for h in header], rows()


#: how much larger each chunk of an import is than the one before, up to the full size: the writing process
#: takes ~1.4 times as long a row as the checking one, so each chunk is checked before the writer is done with the
#: one before
GROWTH = 1.4


def cleaned_chunks(
    rows: Iterator[tuple[int, list[str]]],
    width: int,
    cleaner: RowCleaner,
    by_field: Mapping[str, str],
    size: int,
    first: int | None = None,
) -> Iterator[Chunk]:
    """*rows* (line, cells) checked, in chunks of *size* cleaned rows; the last chunk may hold fewer (or none).

    :param width: how many cells a row must have (the header's).
    :param by_field: target → CSV column, to name the column of a rejected value.
    :param first: the first chunk's size, if smaller: each chunk is then :data:`GROWTH` times the one before, up
        to *size* (a writing process waits for a small first chunk only).
    """
    grown = float(min(first or size, size))
    limit = int(grown)
    chunk = Chunk()
    for line, values in rows:
        chunk.read += 1
        if len(values) != width:
            chunk.errors.append(RowError(line, "", f"has {len(values)} values for {width} columns"))
            continue
        try:
            cleaned = cleaner.clean(values)
        except InvalidInput as exc:
            name = exc.field.split("[")[0]
            column = by_field.get(name.removeprefix("fields."), name)
            chunk.errors.append(RowError(line, column, str(exc)))
            continue
        if not cleaned.get("email") and not cleaned.get("external_id"):
            column = by_field.get("email", by_field.get("external_id", ""))
            chunk.errors.append(RowError(line, column, "needs an email or an external_id"))
            continue
        chunk.rows.append((line, cleaned))
        if len(chunk.rows) >= limit:
            yield chunk
            chunk = Chunk()
            grown = min(grown * GROWTH, size)
            limit = int(grown)
    yield chunk


class RowCleaner:
    """A CSV row as :func:`clean_contact` cleans it (same values, same first error), with each distinct cell of a
    repeating column checked once.

    :param targets: column index → target, in the file's column order (a standard attribute, ``tags`` or a custom
        field name).
    """

    def __init__(self, targets: Mapping[int, str], custom: Mapping[str, str], region: str | None) -> None:
        self.region = region
        # clean_contact sees the standard attributes first, then "fields": errors come in that order
        # an empty cell is no value (None, or no tags) except a score's, which is an error: only that one is checked
        self.plain = [
            (i, target, self._checker(target), target == "score")
            for i, target in targets.items()
            if target not in custom
        ]
        self.custom = [
            (i, target, self._remembering(target, f"fields.{target}", kind))
            for i, target in targets.items()
            if target in custom
            for kind in (custom[target],)
        ]

    def clean(self, values: list[str]) -> dict[str, Any]:
        """The cleaned attributes of a row, without the empty ones.

        :raises InvalidInput: naming the first offending attribute, as clean_contact words it.
        """
        out: dict[str, Any] = {}
        for i, key, check, empty_too in self.plain:
            cell = values[i].strip()
            if cell or empty_too:
                value = check(cell)
                if value is not None and value != []:
                    out[key] = value
        if self.custom:
            out["fields"] = {name: check(values[i].strip()) for i, name, check in self.custom}
        return out

    def _checker(self, key: str) -> Callable[[str], Any]:
        """What :func:`clean_value` makes of a stripped cell of attribute *key* (same value, same error)."""
        if key not in _PER_ROW:
            return self._remembering(key, key, "")
        region = self.region

        def check(cell: str) -> Any:
            return clean_value(key, cell, key, region=region, from_text=True)

        # what clean_value calls for a cell that is not empty, called without its dispatch
        if key == "email":
            return normalize_email
        if key == "phone":
            return functools.partial(normalize_phone, region=region)
        if key in ("first_name", "last_name"):

            def name(cell: str) -> Any:
                # printable ASCII within the length: what check_text lets through unchanged (most names)
                if len(cell) <= 255 and cell.isascii() and cell.isprintable():
                    return cell or None
                return check(cell)

            return name
        return check

    def _remembering(self, key: str, field: str, kind: str) -> Callable[[str], Any]:
        """A checker of *key*'s cells that checks each distinct cell once (answer or error)."""
        seen: dict[str, tuple[Any, InvalidInput | None]] = {}
        region = self.region

        def check(cell: str) -> Any:
            answer = seen.get(cell)
            if answer is None:
                try:
                    if kind:
                        value = coerce_value(kind, cell, field, from_text=True)
                    else:
                        value = clean_value(key, cell, field, region=region, from_text=True)
                except InvalidInput as exc:
                    answer = (None, exc)
                else:
                    answer = (value, None)
                if len(seen) >= _REMEMBERED:
                    seen.clear()
                seen[cell] = answer
            if answer[1] is not None:
                raise InvalidInput(answer[1].field, answer[1].message)
            return answer[0]

        return check


#: a checked row as it travels from the checking to the writing process (marshal reads and writes it several times
#: faster than pickle does a dict): (line, each of STANDARD_FIELDS or None when the row does not set it, the custom
#: fields or None, the tags, the values that start the contact's row when it is new (or None; see pack), and, in
#: the process that cleaned it, the cleaned row without its tags (None once sent: unpack makes it again)
Packed = tuple[Any, ...]
#: a row's standard attributes, None where unset (a fifth of the time of a get for each)
_standard = operator.itemgetter(*STANDARD_FIELDS)
_UNSET = dict.fromkeys(STANDARD_FIELDS)
#: where a packed row holds the external id, the email, the score, the custom fields and the tags
EXTERNAL_ID = 1 + STANDARD_FIELDS.index("external_id")
EMAIL = 1 + STANDARD_FIELDS.index("email")
SCORE = 1 + STANDARD_FIELDS.index("score")
FIELDS = 1 + len(STANDARD_FIELDS)
TAGS = FIELDS + 1
CELLS = TAGS + 1
ROW = CELLS + 1


def merge_rows(chunk: list[tuple[int, dict[str, Any]]]) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """Rows of the same person (same external id or email) folded into one, later values winning; and how many
    rows were folded into an earlier one."""
    out: list[tuple[int, dict[str, Any]]] = []
    merged_rows = 0
    # the slot in *out* of each external id and email seen so far (a row's external id is asked first)
    by_external: dict[str, int] = {}
    by_email: dict[str, int] = {}
    for line, row in chunk:
        external_id, email = row.get("external_id"), row.get("email")
        slot = by_external.get(external_id) if external_id else None
        if slot is None and email:
            slot = by_email.get(email)
        if slot is None:
            slot = len(out)
            out.append((line, row))
        else:
            merged_rows += 1
            first_line, earlier = out[slot]
            merged = {**earlier, **row}
            merged["fields"] = {**earlier.get("fields", {}), **row.get("fields", {})}
            merged["tags"] = list(dict.fromkeys(earlier.get("tags", []) + row.get("tags", [])))
            out[slot] = (first_line, {k: v for k, v in merged.items() if v not in ([], {})})
        if external_id:
            by_external[external_id] = slot
        if email:
            by_email[email] = slot
    return out, merged_rows


def pack(line: int, row: dict[str, Any], extra_tags: list[str], serialise: bool = False) -> Packed:
    """A cleaned *row* as a :data:`Packed` tuple, *extra_tags* added to its own.

    :param serialise: the row is for another process: also make its values as a new contact's row starts (see
        :func:`new_cells`; for a process with time to spare), and leave the row itself out. Else the row is kept
        (without its tags) for :func:`unpack`.
    """
    tags = row.pop("tags", [])  # the cleaner's dict: this row's own (or the merge's)
    if extra_tags:
        tags = list(dict.fromkeys(tags + extra_tags))
    values = _standard({**_UNSET, **row})
    fields = row.get("fields")
    if not serialise:
        return (line, *values, fields, tags, None, row)
    return (line, *values, fields, tags, new_cells(values, fields), None)


def new_cells(values: tuple[Any, ...], fields: dict[str, Any] | None) -> tuple[Any, ...]:
    """The start of a new contact's row as SQLite's driver takes it: the standard attributes *values* (an unset
    score 0), then the custom *fields* as JSON text (``{}`` unset), as the database layer would write it."""
    score = SCORE - 1
    return (*values[:score], values[score] or 0, *values[score + 1 :], json_dumps(fields or {}))


def unpack(packed: Packed) -> dict[str, Any]:
    """The cleaned row (without its tags) a :data:`Packed` tuple was made of."""
    if packed[ROW] is not None:
        return cast(dict[str, Any], packed[ROW])
    row = {key: value for key, value in zip(STANDARD_FIELDS, packed[1:FIELDS], strict=True) if value is not None}
    if packed[FIELDS] is not None:
        row["fields"] = packed[FIELDS]
    return row
