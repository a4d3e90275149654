"""Comparing ``nudge simulate`` effects with expected ones, as tests/scenarios/README.md describes."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: the keys the simulate contract gives each effect, beyond ``at``, ``contact``, ``rule`` and ``action``
CONTRACT_KEYS: dict[str, tuple[str, ...]] = {
    "send": ("channel", "template"),
    "suppressed": ("channel", "template", "reason"),
    "tag": ("tag",),
    "untag": ("tag",),
    "set": ("field", "value"),
    "score": ("delta", "score"),
    "note": ("text",),
    "task": ("text", "team"),
    "notify": ("team", "text"),
    "enter": (),
    "exit": ("reason",),
}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def compare(expected: list[dict], actual: list[dict]) -> list[str]:
    """check.py's rules: every expected line is matched by an output line; no unexpected sends per contact."""
    problems = []
    for want in expected:
        if not any(all(got.get(k) == v for k, v in want.items()) for got in actual):
            problems.append(f"missing: {json.dumps(want)}")
    key = lambda e: (e.get("contact"), e.get("at"), e.get("channel"), e.get("template"))  # noqa: E731
    want_sends = Counter(key(e) for e in expected if e.get("action") == "send")
    got_sends = Counter(key(e) for e in actual if e.get("action") == "send")
    for extra in (got_sends - want_sends).elements():
        problems.append(f"unexpected send: contact={extra[0]} at={extra[1]} {extra[2]}/{extra[3]}")
    return problems


def _project(effect: dict[str, Any]) -> str:
    keys = ("at", "contact", "rule", "action") + CONTRACT_KEYS[effect["action"]]
    return json.dumps({k: effect.get(k) for k in keys}, sort_keys=True)


def exact_problems(expected: list[dict], actual: list[dict], actions: Iterable[str]) -> list[str]:
    """For each of *actions*, the output's effects must be exactly the expected ones (as a multiset).

    Effects are compared on the contract's keys for their action; an expected line of one of
    these actions must spell all of them out.
    """
    actions = set(actions)
    problems = []
    for want in expected:
        if want.get("action") in actions:
            missing = [k for k in ("at", "contact", "rule") + CONTRACT_KEYS[want["action"]] if k not in want]
            if missing:
                problems.append(
                    f"expected line lacks {', '.join(missing)} (needed for an exact match): {json.dumps(want)}"
                )
    want = Counter(_project(e) for e in expected if e.get("action") in actions)
    got = Counter(_project(e) for e in actual if e.get("action") in actions)
    problems += [f"exact {json.loads(line)['action']} missing: {line}" for line in sorted((want - got).elements())]
    problems += [f"exact {json.loads(line)['action']} unexpected: {line}" for line in sorted((got - want).elements())]
    return problems
