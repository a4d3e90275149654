"""Auto-winner splits: each test's state and evidence, and ending a test by hand (docs/optimisation.md)."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify

from ..contacts import audit
from ..db import get_session
from ..engine.autosplit import SplitEndError, auto_splits, end_test, test_state
from ..engine.timeutil import to_ts
from ..models import utcnow
from . import bp
from .common import actor, text
from .spec import NotFound, Refused, endpoint, schema

TEST = schema(
    "SplitTest",
    {
        "type": "object",
        "description": "an auto-winner split's test: the winner (when, by whom) and the evidence per arm",
        "properties": {
            "step": {"type": "string"},
            "line": {"type": "integer", "nullable": True},
            "outcome": {"type": "string", "description": "the event that counts as a success"},
            "window_seconds": {"type": "integer"},
            "winner": {"type": "string", "nullable": True},
            "declared_at": {"type": "integer", "nullable": True, "description": "UNIX seconds"},
            "declared_by": {"type": "string", "nullable": True},
            "evidence": {"type": "object", "nullable": True},
        },
    },
)
END = schema(
    "SplitEnd",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["arm"],
        "properties": {"arm": text(2, min_length=1, description="the arm every later contact gets: A, B …")},
    },
)


@endpoint(
    bp,
    "GET",
    "/rules/{name}/splits",
    summary="A rule's auto-winner splits: phase, winner and evidence (posteriors, counts, P(best), expected loss)",
    tag="stats",
    responses={200: ("the tests", {"type": "array", "items": TEST})},
)
def list_split_tests(name: str):
    session = get_session()
    try:
        rule, splits = auto_splits(session, name)
    except SplitEndError as exc:
        raise NotFound(str(exc)) from None
    now = to_ts(utcnow())
    tests = [test_state(session, rule.id, op, current_app.config, now) for op in splits]
    session.commit()
    return jsonify(tests)


@endpoint(
    bp,
    "POST",
    "/rules/{name}/splits/{step}/end",
    summary="End an auto-winner split by hand: the arm given becomes the winner every later contact gets (audited)",
    tag="stats",
    body=END,
    responses={200: ("the test, ended", TEST)},
    description="`step` is the split's step id (as in the stats) or its line number.",
)
def end_split_test(name: str, step: str, body: dict[str, Any]):
    session = get_session()
    try:
        state = end_test(session, current_app.config, name, step, body["arm"], actor(), to_ts(utcnow()))
    except SplitEndError as exc:
        if "has no arm" in str(exc):
            raise Refused(422, "No such arm", str(exc), field="arm") from None
        raise NotFound(str(exc)) from None
    audit(session, actor(), "split.ended", "rule", name, step=state["step"], arm=state["winner"])
    session.commit()
    return jsonify(state)
