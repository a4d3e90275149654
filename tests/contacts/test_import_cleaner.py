"""The import's row cleaner, which checks each repeating cell once, gives clean_contact's values and first error."""

from hypothesis import given, settings
from hypothesis import strategies as st

from server.contacts.errors import InvalidInput
from server.contacts.import_rows import RowCleaner
from server.contacts.service import clean_contact, nest_fields

CUSTOM = {"plan": "string", "seats": "number", "vip": "bool", "since": "date", "langs": "list"}
HEADER = ["email", "first_name", "phone", "plan", "tags", "seats", "stage", "score", "vip", "timezone", "since"]
HEADER += ["locale", "langs", "external_id", "last_name"]
#: good cells for every column (empty ones too), each drawn many times so the cleaner answers from what it remembers
GOOD = {
    "email": ["a@example.com", " B@Example.COM ", ""],
    "first_name": ["Ann", ""],
    "phone": ["+49 30 1234567", "030 1234567", "", "+1 650 253 0000"],
    "plan": ["pro", ""],
    "tags": ["a;b", "", " ; ", "a;a;b"],
    "seats": ["3", "2.5"],
    "stage": ["lead", ""],
    "score": ["1", "-5"],
    "vip": ["yes", "no", ""],
    "timezone": ["Europe/Berlin", ""],
    "since": ["2026-05-01", ""],
    "locale": ["de-AT", ""],
    "langs": ["de;en", ""],
    "external_id": ["c-1", ""],
    "last_name": ["Lee", ""],
}
#: bad cells, a few of which replace good ones in a row
BAD = {
    "email": ["not-an-address", "a@localhost"],
    "first_name": ["two\u2028lines", "x" * 300],
    "phone": ["+49 30 1", "12"],
    "plan": ["a\x00b"],
    "tags": ["x" * 200],
    "seats": ["many", "1e400", ""],
    "stage": ["x" * 70],
    "score": ["", "x", "99999999999"],
    "vip": ["perhaps"],
    "timezone": ["Mars/Base"],
    "since": ["yesterday"],
    "locale": ["german"],
    "langs": [";".join(["x"] * 101)],
    "external_id": ["x" * 300],
    "last_name": ["a\x00"],
}


def reference(row: list[str]) -> tuple[str, object]:
    """What the import did before the cleaner: clean_contact over the nested row, empty values left out."""
    data = nest_fields({target: cell.strip() for target, cell in zip(HEADER, row, strict=True)}, CUSTOM)
    try:
        cleaned = clean_contact(None, data, region="DE", known_fields=CUSTOM, from_text=True)  # type: ignore[arg-type]
    except InvalidInput as exc:
        return "error", (exc.field, exc.message)
    return "ok", {k: v for k, v in cleaned.items() if v not in (None, [], {})}


def ours(cleaner: RowCleaner, row: list[str]) -> tuple[str, object]:
    try:
        return "ok", cleaner.clean(row)
    except InvalidInput as exc:
        return "error", (exc.field, exc.message)


GOOD_ROW = st.tuples(*(st.sampled_from(GOOD[name]) for name in HEADER)).map(list)
SPOILED = st.lists(st.sampled_from(HEADER), max_size=2).flatmap(
    lambda names: st.tuples(*(st.sampled_from(BAD[name]).map(lambda cell, n=name: (n, cell)) for name in names))
)


def _spoil(pair: tuple[list[str], tuple[tuple[str, str], ...]]) -> list[str]:
    good, bad = pair
    return [dict(bad).get(name, cell) for name, cell in zip(HEADER, good, strict=True)]


ROW = st.tuples(GOOD_ROW, SPOILED).map(_spoil)
ROWS = st.lists(ROW, min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(ROWS)
def test_row_cleaner_agrees_with_clean_contact(rows):
    cleaner = RowCleaner(dict(enumerate(HEADER)), CUSTOM, "DE")
    for row in rows + rows:  # the second time every repeating cell comes from memory
        assert ours(cleaner, row) == reference(row)


def test_a_remembered_bad_cell_is_reported_again_on_every_row():
    cleaner = RowCleaner({0: "email", 1: "seats"}, {"seats": "number"}, None)
    for _ in range(3):
        assert ours(cleaner, ["a@example.com", "many"]) == (
            "error",
            ("fields.seats", "fields.seats 'many' is not a number"),
        )
    assert cleaner.clean(["a@example.com", "4"]) == {"email": "a@example.com", "fields": {"seats": 4}}
