"""The bundle's Lezer grammar accepts what lark accepts: every program in the repository, its corners, random ones."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings

import dsl

from ...dsl import strategies

ROOT = Path(__file__).resolve().parents[3]


def nudge_sources() -> dict[str, str]:
    """Every program in the repository: language cases, the reference's examples and the examples folder."""
    found = {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "tests/dsl/cases").glob("*.nudge"))}
    found |= {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples").rglob("*.nudge"))}
    reference = (ROOT / "docs/language.md").read_text(encoding="utf-8")
    for number, block in enumerate(re.findall(r"^```nudge\n(.*?)^```", reference, flags=re.M | re.S)):
        found[f"language.md#{number}"] = block
    return found


# Corners of the lark grammar: keywords spelled where names go, optional separators and `end`s.
CORNERS = [
    "when a.b then send today tomorrow",
    "when a.b then send email end",
    "when a.b then send email 3d",
    "when a.b then send email welcome-2",
    'when a.b then crm_push if send 3d 09:00 2026-01-01 5 1.5 "x" a.b',
    'when a.b then today "plugin step named like a keyword"',
    "when tag.added and score.changed.x == 1 then stop",
    "when a.b and x.y==1then stop",
    "when a.b then end",
    "when a.b then split end",
    "when a.b then split 50%: 50%: end",
    'rule "x" once per contact\nwhen a.b then stop',
    'rule "x"\n\n  always\n\n# c\nwhen a.b then\r\n stop ; ; stop\r\n',
    "when a.b then\n  if a.b then else end\n  wait for a.b up to 1d then end\nend\n\n\n",
    'when a.b and [1,] == [] and ["a", [1]] != [] then set contact.x = - 5',
    'when a.b then crm_push\nwhen c.d then stop\nrule "y"\nwhen e.f then score + 5.5',
    '\ufeffwhen a.b then note "# not a comment \\" still text" # a comment',
]


def lezer_errors(page, sources: dict[str, str]) -> dict[str, list[int]]:
    """The offsets of error nodes in each source's Lezer tree (parsed in the page by the bundle's parser)."""
    return page.evaluate(
        """sources => Object.fromEntries(Object.entries(sources).map(([name, text]) => {
        const errors = [];
        NudgeEditor.parser.parse(text).iterate({enter(node) { if (node.type.isError) errors.push(node.from); }});
        return [name, errors];
    }))""",
        sources,
    )


def test_every_program_lark_accepts_parses_without_error_nodes(editor):
    sources = nudge_sources() | {f"corner {i}": text for i, text in enumerate(CORNERS)}
    valid = {name: text for name, text in sources.items() if dsl.parse(text).ok}
    invalid = {name: text for name, text in sources.items() if not dsl.parse(text).ok}
    assert len(valid) >= 40 and set(CORNERS) <= set(valid.values())
    assert {name: errors for name, errors in lezer_errors(editor, valid).items() if errors} == {}
    # and the parser is no sponge: each file lark rejects has an error node
    assert invalid and all(lezer_errors(editor, invalid).values())


def test_random_programs_from_the_formatter_parse_without_error_nodes(editor):
    programs: list[str] = []

    @settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(strategies.program)
    def collect(program):
        text = dsl.format_program(program)
        programs.append(text)
        programs.append(re.sub(r"^[ \t]+", "", text, flags=re.M))  # indentation is free

    collect()
    sources = {str(i): text for i, text in enumerate(programs) if dsl.parse(text).ok}
    assert len(sources) >= 200
    failures = {name: sources[name] for name, errors in lezer_errors(editor, sources).items() if errors}
    assert failures == {}
