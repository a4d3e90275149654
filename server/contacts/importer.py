"""CSV import: column mapping, per-row validation, dedupe and merge by external id / email, in chunks.

Each row is checked like any other contact input (:func:`clean_contact`, so addresses are
normalised and phone numbers become E.164). Rows naming the same person (same external id or
email) are merged, later values winning; existing contacts are updated, never duplicated. A bad
row is reported with its line number, column and reason, and the rest are imported.
"""

from __future__ import annotations

import gc
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from flask import current_app, has_app_context
from sqlalchemy import Text, cast, or_, select
from sqlalchemy.orm import Session

from ..models import Contact, ContactTag, Event, Suppression, utcnow
from ..models.contacts import new_public_ids
from .errors import InvalidInput
from .fields import STANDARD_FIELDS, definitions, written_values
from .import_pipeline import Checked, check_chunks, checked_chunks, processes_for
from .import_rows import (
    CELLS,
    EMAIL,
    EXTERNAL_ID,
    FIELDS,
    SCORE,
    TAGS,
    Packed,
    RowCleaner,
    RowError,
    new_cells,
    read_rows,
    unpack,
)
from .rowset import (
    Groups,
    driver_rows,
    grouped,
    insert_groups,
    insert_rows,
    insert_values,
    one_of,
    reserve_ids,
    update_rows,
)
from .service import audit, taken

#: rows per transaction: each commit writes every index page its rows touched (random public ids and emails
#: touch many), so fewer, larger chunks write fewer pages. With a chunk's new rows in email order, 10,000 against
#: 5,000 imported a file in random order 11-15% faster (in order within noise); each commit holds SQLite's write
#: lock ~0.2 s at most, which events posted meanwhile wait out
CHUNK = 10_000
#: rows of the first chunk: the writing process waits while a checking process checks it (~14 µs a row); the next
#: ones grow to CHUNK (see cleaned_chunks)
FIRST_CHUNK = 500
#: KiB of SQLite page cache an import's connection has (the default is 2,000): a file in no particular order adds
#: keys all over the contacts' indexes, and each page read again costs (27 → 19 µs a contact at 100,000 contacts)
PAGE_CACHE_KIB = 65536
#: the key and (name, props) of a new contact's event
_CREATED: tuple[tuple[str, ...], tuple[str, Any]] = (("contact.created",), ("contact.created", {}))
#: the columns of a new contact's row, as insert_rows and insert_values get them
_NEW_COLUMNS = (*STANDARD_FIELDS, "fields", "public_id")
#: the attributes that identify a contact
_KEYS = ("email", "external_id")
SKIP = ("-", "ignore")
#: how a row naming an existing contact merges into it: the file's values win (``update``), they only fill the
#: contact's empty attributes (``fill_empty``), or the contact is left as it is (``skip``); tags are always added
#: except by ``skip``
MERGES = ("update", "fill_empty", "skip")


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    merged_in_file: int = 0
    skipped: int = 0
    suppressed: int = 0
    errors: list[RowError] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.rows} rows: {self.created} created, {self.updated} updated, {self.skipped} skipped (existing), "
            f"{self.merged_in_file} merged "
            f"with an earlier row, {len(self.errors)} rejected; {self.suppressed} on the suppression list "
            "(stored, never mailed)"
        )


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``["E-Mail=email", "Company=company", "Notes=-"]`` → column → field (``-`` skips a column).

    :raises InvalidInput: for a pair without ``=``.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        column, sep, target = pair.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise InvalidInput("--map", f"--map {pair!r} must look like COLUMN=FIELD (or COLUMN=- to skip it)")
        out[column.strip()] = target.strip()
    return out


def _normal(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def resolve_columns(header: list[str], mapping: Mapping[str, str], custom: Mapping[str, str]) -> dict[str, str]:
    """CSV column → target (a standard attribute, ``tags`` or a custom field name); skipped columns left out.

    Unmapped columns are matched by name (``First Name`` → ``first_name``).

    :raises InvalidInput: naming a column that matches no field, with the ``--map`` to fix it.
    """
    known = set(STANDARD_FIELDS) | {"tags"} | set(custom)
    unknown_maps = sorted(set(mapping) - set(header))
    if unknown_maps:
        raise InvalidInput(
            "--map",
            f"--map names column {unknown_maps[0]!r}, which the file does not have; its columns: {', '.join(header)}",
        )
    out: dict[str, str] = {}
    for column in header:
        target = mapping.get(column, _normal(column))
        if target in SKIP:
            continue
        target = target.removeprefix("fields.")
        if target not in known:
            raise InvalidInput(
                column,
                f"column {column!r} matches no contact field; map it with --map "
                f"'{column}=FIELD' (fields: {', '.join(sorted(known))}) or skip it with --map '{column}=-'",
            )
        if target in out.values():
            raise InvalidInput(column, f"two columns map to {target!r}")
        out[column] = target
    if not {"email", "external_id"} & set(out.values()):
        raise InvalidInput("--map", "no column maps to email or external_id, so rows cannot be matched to contacts")
    return out


def import_csv(
    session: Session,
    stream: TextIO,
    *,
    secret: str,
    mapping: Mapping[str, str] | None = None,
    region: str | None = None,
    tags: Iterable[str] = (),
    actor: str = "cli",
    progress: Callable[[int], None] | None = None,
    channels: Mapping[str, tuple[str, ...]] | None = None,
    merge: str = "update",
    report: ImportReport | None = None,
    processes: int | None = None,
) -> ImportReport:
    """Import contacts from CSV text; commits per chunk of rows (500 first, growing to 10,000).

    :param mapping: column → field overrides (see :func:`parse_mapping`).
    :param channels: contact attribute → the channels addressed by it (``address_channels``): an imported email
        on the suppression list of one of its channels is counted as suppressed.
    :param tags: tags added to every imported contact.
    :param progress: called with the number of rows done since the last call.
    :param merge: how rows naming existing contacts merge into them (one of :data:`MERGES`).
    :param report: the report to fill (a caller reading it from *progress* passes its own).
    :param processes: 1 checks the rows in this process, 2 in a second one while this one writes (the same
        chunks, rows and errors); 0 two where two cores are free; None the app's ``IMPORT_PROCESSES`` (or 0).
    :raises InvalidInput: when the header cannot be mapped or *merge* is unknown (nothing is imported then).
    """
    if merge not in MERGES:
        raise InvalidInput("merge", f"unknown merge mode {merge!r}; use one of {', '.join(MERGES)}")
    channels = channels or {}
    custom = definitions(session)
    header, rows = read_rows(stream)
    columns = resolve_columns(header, mapping or {}, custom)
    by_field = {target: column for column, target in columns.items()}
    cleaner = RowCleaner({header.index(column): target for column, target in columns.items()}, custom, region)
    report = report if report is not None else ImportReport()
    digests = secret if channels.get("email") else None

    def checking(ahead: bool) -> Iterator[Checked]:
        return check_chunks(rows, len(header), cleaner, by_field, CHUNK, list(tags), digests, ahead, FIRST_CHUNK)

    if processes is None:
        processes = current_app.config["IMPORT_PROCESSES"] if has_app_context() else 0
    with _no_gc_pauses(), _page_cache(session) as cache, checked_chunks(checking, processes_for(processes)) as chunks:
        for read, errors, merged, packed, hashes, public_ids in chunks:
            report.rows += read
            report.errors += [RowError(*error) for error in errors]
            report.merged_in_file += merged
            if packed:
                cache()
                _write_chunk(session, packed, hashes, public_ids, report, by_field, channels, merge)
                session.commit()
                if progress:
                    progress(len(packed) + merged)
    audit(
        session,
        actor,
        "contacts.imported",
        "contact",
        None,
        rows=report.rows,
        created=report.created,
        updated=report.updated,
        skipped=report.skipped,
        rejected=len(report.errors),
    )
    session.commit()
    return report


@contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """The cyclic garbage collector off while an import runs, then back as it was.

    An import keeps a chunk of rows (tens of thousands of dicts and strings) alive at a time, so the collector
    would run full passes over every object of the process again and again: about a third of an import's time.
    The rows hold no reference cycles; what little cyclic garbage the database layer leaves is collected after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def _page_cache(session: Session) -> Iterator[Callable[[], None]]:
    """A function giving the session's connection, on SQLite, :data:`PAGE_CACHE_KIB` of page cache (call it in
    each transaction: a chunk may get another connection from the pool); their caches as they were after."""
    found: dict[Any, int] = {}

    def larger() -> None:
        connection = session.connection()
        if connection.dialect.name == "sqlite" and PAGE_CACHE_KIB:
            driver = connection.connection.dbapi_connection
            if driver not in found:
                found[driver] = connection.exec_driver_sql("PRAGMA cache_size").scalar_one()
                connection.exec_driver_sql(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")

    try:
        yield larger
    finally:
        for driver, size in found.items():
            driver.execute(f"PRAGMA cache_size={int(size)}")


#: a stored contact's columns that an import may change, as read and written set-wise
_STORED = ("id", *STANDARD_FIELDS, "fields")


class _Stored:
    """The contacts a chunk names, read once; updated in memory as rows apply, then written in one statement.

    Every email and external id a chunk's rows carry is looked up here: the contacts holding them were read
    with the chunk, and each change is recorded in :attr:`owners`, so an address moved by one row is seen
    as moved by the next (as a flush per row would show it).
    """

    def __init__(self, session: Session, emails: set[str], external_ids: set[str]) -> None:
        table = Contact.__table__
        keys = [
            one_of(session, table.c[key], values)
            for key, values in (("email", emails), ("external_id", external_ids))
            if values
        ]
        connection = session.connection()
        # the driver's tuples zipped with the names: a Row object (let alone its mapping) costs more than the rest
        # of the read; custom fields as their JSON text, each distinct text parsed once (the dicts are shared:
        # apply() copies before it changes)
        columns = [cast(table.c[name], Text) if name == "fields" else table.c[name] for name in _STORED]
        found = driver_rows(connection, select(*columns).where(or_(*keys))) if keys else []
        parsed: dict[str | None, Any] = {None: None}
        self.contacts = {}
        for row in found:
            contact = dict(zip(_STORED, row, strict=True))
            text = contact["fields"]
            if text not in parsed:
                parsed[text] = json.loads(text)
            contact["fields"] = parsed[text]
            self.contacts[row[0]] = contact
        self.tags: dict[int, set[str]] = {cid: set() for cid in self.contacts}
        for cid, tag in driver_rows(
            connection,
            select(ContactTag.contact_id, ContactTag.tag).where(one_of(session, ContactTag.contact_id, self.contacts)),
        ):
            self.tags[cid].add(tag)
        self.owners = {
            (key, contact[key]): cid for cid, contact in self.contacts.items() for key in _KEYS if contact[key]
        }
        self.changed: set[int] = set()
        self.new_tags: list[list[Any]] = []

    def apply(self, contact: dict[str, Any], row: Mapping[str, Any], tags: list[str]) -> frozenset[str]:
        """What :func:`apply_changes` does to a stored contact, in memory; the names of the values that differed.

        :raises Conflict: when the row gives it an email or external id another contact holds.
        """
        cid = contact["id"]
        for key in ("email", "external_id"):
            value = row.get(key)
            if value and contact[key] != value:
                owner = self.owners.get((key, value))
                if owner is not None and owner != cid:
                    raise taken(key, owner)
        names, values = written_values(contact.__getitem__, contact["fields"], row)
        if names:
            self.changed.add(cid)  # as the ORM: updated (and updated_at set) only when a value differs
        for key in _KEYS:
            if key in values and values[key] != contact[key]:
                self.owners.pop((key, contact[key]), None)
                self.owners[(key, values[key])] = cid
        contact.update(values)
        for tag in tags:
            if tag not in self.tags[cid]:
                self.tags[cid].add(tag)
                self.new_tags.append([cid, tag])
        return frozenset(names)

    def write(self, session: Session, now: Any) -> None:
        """The changed contacts and their added tags, in two statements."""
        rows = [[self.contacts[cid][name] for name in _STORED] for cid in sorted(self.changed)]
        update_rows(session, Contact.__table__, _STORED, rows, {"updated_at": now})
        _insert_tags(session, self.new_tags, now)


def _insert_tags(session: Session, pairs: Iterable[Sequence[Any]], now: Any) -> None:
    """Insert (contact id, tag) *pairs*: a tag many contacts get in one statement carrying only their ids (the
    database reads a third of the JSON it would for pairs), the other pairs together."""
    _insert_tag_groups(session, grouped((cid, tag, (tag,)) for cid, tag in pairs), now)


def _insert_tag_groups(session: Session, groups: Groups, now: Any) -> None:
    """Insert the contact ids of each tag of *groups* (tag → ((tag,), contact ids))."""
    insert_groups(session, ContactTag.__table__, "contact_id", ("tag",), groups, {"created_at": now})


def _write_chunk(
    session: Session,
    rows: list[Packed],
    hashes: list[str] | None,
    public_ids: list[str] | None,
    report: ImportReport,
    by_field: Mapping[str, str],
    channels: Mapping[str, tuple[str, ...]],
    merge: str = "update",
) -> None:
    """Write a checked chunk's merged *rows*; *hashes* are their emails' digests, when suppressions are counted;
    *public_ids* random ones for the new contacts, when the checking process made them."""
    emails = {r[EMAIL] for r in rows if r[EMAIL]}
    external_ids = {r[EXTERNAL_ID] for r in rows if r[EXTERNAL_ID]}
    stored = _Stored(session, emails, external_ids)
    # rows are matched by the addresses the contacts had when the chunk began
    by_email = {c["email"]: c for c in stored.contacts.values() if c["email"]}
    by_external = {c["external_id"]: c for c in stored.contacts.values() if c["external_id"]}
    if hashes:
        report.suppressed += _suppressed(session, channels["email"], hashes)
    names: dict[frozenset[str], tuple[tuple[str, ...], tuple[str, Any]]] = {}
    new: list[Packed] = []
    #: (contact id, key, (name, props)) of each event to insert: events of one key have the same name and props
    announced: list[tuple[int, tuple[str, ...], tuple[str, Any]]] = []
    now = utcnow()
    if not stored.contacts:  # no row names a stored contact (new people): all are new, none to match
        new = rows
    else:
        for packed in rows:
            line = packed[0]
            a = by_external.get(packed[EXTERNAL_ID] or "")  # "" is no contact's: unset keys are left out
            b = by_email.get(packed[EMAIL] or "")
            if a is not None and b is not None and a["id"] != b["id"]:
                report.errors.append(
                    RowError(
                        line,
                        by_field.get("email", ""),
                        f"email belongs to contact {b['id']} but "
                        f"external_id to contact {a['id']}; merge them first (nudge contacts merge)",
                    )
                )
                continue
            if a is None and b is not None and packed[EXTERNAL_ID] and b["external_id"]:
                report.errors.append(
                    RowError(
                        line,
                        by_field.get("external_id", ""),
                        f"email belongs to contact {b['id']}, "
                        "which has another external_id; fix the file or merge the contacts",
                    )
                )
                continue
            contact = a or b
            if contact is None:
                new.append(packed)
                continue
            if merge == "skip":
                report.skipped += 1
                continue
            row = unpack(packed)
            if merge == "fill_empty":
                row = _only_empty(contact, row)
            try:
                differed = stored.apply(contact, row, packed[TAGS])
            except InvalidInput as exc:
                report.errors.append(RowError(line, by_field.get(exc.field, exc.field), str(exc)))
                continue
            if differed:  # re-importing the values a contact has is no update: no contact.updated for the rules
                announced.append((contact["id"], *_updated(differed, names)))
            report.updated += 1
    stored.write(session, now)
    events = grouped(announced)
    if new:
        # in the order of their emails: the table, the email index, the tags and the events each take the chunk's
        # rows page after page, not at random, whatever order the file is in (a file in random order imported
        # 8-27% faster; one in order as fast as before). The report's lines are the rows' own.
        new = sorted(new, key=_by_email)
        new_ids = _insert_contacts(session, new, public_ids, now)
        tags: Groups = {}  # grouped() of (id, tag, (tag,)) for each tag of each new contact, without the tuples
        for cid, packed in zip(new_ids, new, strict=True):
            for tag in packed[TAGS]:
                group = tags.get(tag)
                if group is None:
                    tags[tag] = ((tag,), [cid])
                else:
                    group[1].append(cid)
        _insert_tag_groups(session, tags, now)
        events[_CREATED[0]] = (_CREATED[1], list(new_ids))
        report.created += len(new)
    # the engine picks these up (date triggers, `when contact.created` rules) within NUDGE_REQUEUE_AFTER
    insert_groups(
        session,
        Event.__table__,
        "contact_id",
        ("name", "props"),
        events,
        {"source": "import", "occurred_at": now, "received_at": now, "processed_at": None},
    )


def _by_email(row: Packed) -> str:
    return row[EMAIL] or ""


def _suppressed(session: Session, channels: Sequence[str], hashes: list[str]) -> int:
    """How many of *hashes* (distinct) are on the suppression list of one of *channels*: a list shorter than
    *hashes* is read whole (a look-up of each of a chunk's digests costs ~0.7 µs), a longer one looked up."""
    on_list = Suppression.channel.in_(channels)
    connection = session.connection()
    listed = connection.execute(select(Suppression.address_hash).where(on_list).limit(len(hashes) + 1)).scalars()
    whole = listed.all()
    if len(whole) <= len(hashes):
        return len(set(whole).intersection(hashes))
    found = select(Suppression.address_hash).where(on_list, one_of(session, Suppression.address_hash, hashes))
    return len(set(connection.execute(found).scalars().all()))


def _insert_contacts(session: Session, new: list[Packed], public_ids: list[str] | None, now: Any) -> Iterable[int]:
    """Insert the contacts of *new* (packed rows, with the values of their row when a checking process made them);
    return their ids, in the order of *new*.

    On SQLite the rows carry the ids they get (:func:`reserve_ids`), their values bound to multi-row statements
    (:func:`insert_values`); elsewhere the database names them and says which address each went to. A chunk's
    public ids (which begin with the time they were made) are given in ascending order, so the unique index is
    written at its end, one page after the other.
    """
    table = Contact.__table__
    constants = {"created_at": now, "updated_at": now}
    public = sorted(new_public_ids(len(new)) if public_ids is None else public_ids[: len(new)])
    ids = reserve_ids(session, table, len(new))
    if ids is not None:
        cells: list[Any] = []
        for row, public_id, cid in zip(new, public, ids, strict=True):
            cells += row[CELLS] or new_cells(row[1:FIELDS], row[FIELDS])
            cells.append(public_id)
            cells.append(cid)
        insert_values(session, table, (*_NEW_COLUMNS, "id"), cells, constants)
        return ids
    # an unset score is 0, unset custom fields {}
    rows = [
        [*row[EXTERNAL_ID:SCORE], row[SCORE] or 0, *row[SCORE + 1 : FIELDS], row[FIELDS] or {}, public_id]
        for row, public_id in zip(new, public, strict=True)
    ]
    by_key: dict[tuple[str, str], int] = {}
    for cid, email, external_id in insert_rows(
        session, table, _NEW_COLUMNS, rows, constants, returning=("id", "email", "external_id")
    ):
        if email:
            by_key[("email", email)] = cid
        if external_id:
            by_key[("external_id", external_id)] = cid
    return [by_key[("email", row[EMAIL])] if row[EMAIL] else by_key[("external_id", row[EXTERNAL_ID])] for row in new]


def _updated(
    differed: frozenset[str], known: dict[frozenset[str], tuple[tuple[str, ...], tuple[str, Any]]]
) -> tuple[tuple[str, ...], tuple[str, Any]]:
    """The key and (name, props) of the ``contact.updated`` event naming the sorted names that *differed*:
    worked out once per set of names in *known* (rows repeat them)."""
    found = known.get(differed)
    if found is None:
        names = sorted(differed)
        found = known[differed] = (("contact.updated", *names), ("contact.updated", {"fields": names}))
    return found


def _only_empty(contact: Mapping[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """The values of *row* that fill an attribute (or custom field) *contact* has no value for."""
    out = {key: value for key, value in row.items() if key != "fields" and contact.get(key) in (None, "", 0)}
    held = contact.get("fields") or {}
    fields = {name: value for name, value in row.get("fields", {}).items() if held.get(name) in (None, "")}
    if fields:
        out["fields"] = fields
    return out


def import_text(session: Session, text: str, **kwargs: Any) -> ImportReport:
    """:func:`import_csv` over a string (tests, the admin UI)."""
    return import_csv(session, io.StringIO(text), **kwargs)
