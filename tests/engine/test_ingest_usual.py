"""The usual API event checked without a field name or a recursive call per value (:func:`_usual_items`): the same
checked items as the one-by-one check (:func:`_prepare`), and anything unusual or invalid left to that check, which
names what is wrong."""

from __future__ import annotations

import pytest

from server.contacts.errors import InvalidInput
from server.engine.ingest import _prepare, _usual_items, prepare_events

USUAL = [
    {"contact": {"email": "Ann@Example.com"}, "event": "form.submitted", "props": {"form": "newsletter"}},
    {"contact": {"external_id": " crm-1 "}, "event": "page.visited"},
    {"contact": {"email": "bo@example.com", "external_id": "crm-2"}, "event": "a.b", "props": {}},
    {"contact": {"email": "cy@example.com", "phone": None}, "event": "a.b", "props": {"n": None}},
    {
        "contact": {"email": "di@example.com"},
        "event": "order.paid",
        "props": {"total": 12.5, "items": 3, "gift": False, "big": 2**63 - 1, "low": -(2**63), "ü": "bücher ☃"},
        "occurred_at": "2026-11-29T23:30:00+02:00",
    },
]


def _prefix(i: int) -> str:
    return f"events[{i}]."


def test_usual_events_are_checked_as_one_by_one():
    assert _usual_items(USUAL) == [_prepare(None, item, _prefix(i), None) for i, item in enumerate(USUAL)]


UNUSUAL = [
    ("nested props", {"props": {"a": {"b": 1}}}),
    ("a list in props", {"props": {"a": [1]}}),
    ("a named contact", {"contact": {"email": "a@example.com", "first_name": "A"}}),
    ("no identity", {"contact": {"email": None}}),
]
INVALID = [
    ("a NUL in a prop", {"props": {"a": "x\x00y"}}, "events[1].props.a"),
    ("a NUL in a key", {"props": {"a\x00": "x"}}, "events[1].props"),
    ("a lone surrogate", {"props": {"a": "x\ud800"}}, "events[1].props.a"),
    ("a lone surrogate in a key", {"props": {"\udfff": 1}}, "events[1].props"),
    ("past 64 bits", {"props": {"a": 2**63}}, "events[1].props.a"),
    ("below 64 bits", {"props": {"a": -(2**63) - 1}}, "events[1].props.a"),
    ("not finite", {"props": {"a": float("inf")}}, "events[1].props.a"),
    ("not a number", {"props": {"a": float("nan")}}, "events[1].props.a"),
    ("no time zone", {"occurred_at": "2026-11-29T23:30:00"}, "events[1].occurred_at"),
    ("a bad email", {"contact": {"email": "nope"}}, "events[1].contact.email"),
    ("an email not text", {"contact": {"email": 3}}, "events[1].contact.email"),
]


@pytest.mark.parametrize(("what", "change"), UNUSUAL, ids=[case[0] for case in UNUSUAL])
def test_unusual_events_are_left_to_the_full_check(what, change):
    """(A contact without an identity is checked alike and refused when stored, by the one-by-one path.)"""
    items = [USUAL[0], {**USUAL[0], **change}]
    assert _usual_items(items) is None
    assert prepare_events(None, items, prefix=_prefix).checked == [
        _prepare(None, item, _prefix(i), None) for i, item in enumerate(items)
    ]


@pytest.mark.parametrize(("what", "change", "field"), INVALID, ids=[case[0] for case in INVALID])
def test_invalid_events_are_named_by_the_full_check(what, change, field):
    items = [USUAL[0], {**USUAL[0], **change}]
    assert _usual_items(items) is None
    assert prepare_events(None, items, prefix=_prefix).checked is None
    with pytest.raises(InvalidInput) as raised:
        _prepare(None, items[1], _prefix(1), None)
    assert raised.value.field == field
