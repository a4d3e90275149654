"""Language cases as data: ``cases/NAME.nudge`` and the exact diagnostics in ``NAME.expected``.

Each expected file holds every diagnostic rendered as ``nudge check`` prints it,
separated by blank lines (empty when the file has no problems). To refresh them
after a deliberate change of wording, run with ``REGENERATE_DSL_CASES=1`` and
review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import dsl
from dsl.vocabulary import BUILTIN_EVENTS

from .helpers import with_channels

CASES = Path(__file__).parent / "cases"
SOURCES = sorted(CASES.glob("*.nudge"))

VOCABULARY = with_channels(
    dsl.Vocabulary(
        channels={
            "email": frozenset({"welcome", "keep_going", "getting_started", "trainer_intro"}),
            "sms": None,
            "webhook": None,
        },
        events=BUILTIN_EVENTS
        | {"member.joined", "form.submitted", "class.attended", "purchase.completed", "page.visited"},
        contact_fields={
            **dsl.BUILTIN_CONTACT_FIELDS,
            "renewal_date": "date",
            "plan": "string",
            "vip": "bool",
            "visits": "number",
        },
        steps=frozenset({"crm_push"}),
        segments=frozenset({"vip", "trial members"}),
        rules=frozenset({"Scheduled"}),
        functions={
            "domain": dsl.Signature("domain", ("string",), "string"),
            "days_until": dsl.Signature("days_until", ("date",), "number"),
            "lower": dsl.Signature("lower", ("string",), "string"),
        },
    )
)


def render(path: Path) -> str:
    source = path.read_text(encoding="utf-8")
    result = dsl.parse(source, path.name)
    diagnostics = list(result.diagnostics)
    if result.program is not None:
        diagnostics += dsl.check(result.program, VOCABULARY)
    return "".join(d.format(source) + "\n\n" for d in diagnostics)


def test_there_are_cases_of_both_kinds():
    names = [p.stem for p in SOURCES]
    assert sum(n.startswith("ok_") for n in names) >= 3
    assert sum(not n.startswith("ok_") for n in names) >= 8


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_case(source: Path):
    expected_path = source.with_suffix(".expected")
    actual = render(source)
    if os.environ.get("REGENERATE_DSL_CASES"):
        expected_path.write_text(actual, encoding="utf-8")
    assert expected_path.exists(), f"missing {expected_path.name}"
    assert actual == expected_path.read_text(encoding="utf-8")
    if source.stem.startswith("ok_"):
        assert "warning" in actual or not actual.strip() or "error" not in actual
        assert not any(d.is_error for d in _diagnostics(source))
    else:
        assert actual.strip(), "a problem case must report something"


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_case_compiles_to_a_plan_of_the_declared_types(source: Path):
    result = dsl.parse(source.read_text(encoding="utf-8"), source.name)
    if result.program is None:
        assert not source.stem.startswith("ok_")
        return
    try:
        plan = dsl.compile_program(result.program)
    except dsl.compiler.CompileError:  # a form the checker rejects: only in problem cases
        assert any(d.is_error for d in _diagnostics(source)), "only a rejected program may fail to compile"
        return
    assert dsl.plan_problems(plan) == []
    assert all(rule["version"] == dsl.PLAN_VERSION for rule in plan["rules"])


def _diagnostics(path: Path):
    source = path.read_text(encoding="utf-8")
    result = dsl.parse(source, path.name)
    return list(result.diagnostics) + (dsl.check(result.program, VOCABULARY) if result.program else [])
