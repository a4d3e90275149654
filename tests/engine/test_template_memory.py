"""Template validation is bounded in memory, not only in time: hostile templates are refused
before they allocate, and legitimate ones still render."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.engine.render import Renderer

ROOT = Path(__file__).resolve().parents[2]
#: a child validating one template: its peak RSS growth (KiB) and the problems found. The address
#: space is capped at 3 GiB so that a regression fails the test instead of the machine.
PROBE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from server.engine.render import Renderer
from server.plugins import build_plugin_manager
renderer = Renderer(channels=build_plugin_manager({"LOAD_ENTRY_POINTS": False}).channels)
renderer.validate("email", {"subject": "Hi", "txt": "{{ contact.first_name|upper }} {{ range(3)|join(',') }}"})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
problems = renderer.validate("email", {"subject": "Hi", "txt": sys.argv[1]})
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"grew_kib": grew, "problems": [str(p) for p in problems]}))
"""
BIG = "{% set b = 'x' * 999999 %}"
HOSTILE = {
    "join of a range": ("{{ range(99999)|join('x' * 5000) }}", "the joined text would grow past"),
    "padding method": ("{{ ('x' * 999999).ljust(300000000) }}", "ljust() would grow past"),
    "mapped filter materialised": ("{{ range(99999)|map('center', 9999)|list|length }}", "built more than"),
    "indent of many lines": ("{{ ('x\\n' * 400000)|indent(9999) }}", "the indented text would grow past"),
    "captured block": (
        BIG + "{% macro m() %}{% for i in range(99999) %}{{ b }}{% endfor %}{% endmacro %}{{ m()|length }}",
        "txt:1",
    ),
    "list literal of a big string": (BIG + "{{ [" + "b," * 300 + "] }}", "grow past"),
    "concatenation chain": (BIG + "{{ " + " ~ ".join(["b"] * 30) + " }}", "the joined text would grow past"),
    "shared references joined": ("{{ 'x'.join(['y' * 999999] * 999) }}", "a repeated value would grow past"),
    "expandtabs": ("{{ ('\\t' * 999999).expandtabs(9999) }}", "expandtabs"),
    "translate": ("{{ ('x' * 999999).translate({120: 'y' * 999}) }}", "translate"),
}


@pytest.mark.slow
@pytest.mark.parametrize("source,message", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_template_is_refused_before_it_takes_memory(source, message):
    done = subprocess.run(
        [sys.executable, "-c", PROBE, source],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["grew_kib"] < 100 * 1024, f"validating grew the process by {result['grew_kib'] // 1024} MiB"
    assert result["problems"], "the template was accepted"
    assert message in result["problems"][0]


def test_the_issue_template_is_refused_when_saved_through_the_api(app, client):
    from ..helpers import api_key

    key = api_key(app, "admin")
    response = client.post(
        "/api/v1/templates",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "channel": "email",
            "name": "evil",
            "parts": {"subject": "x", "txt": "{{ range(99999)|join('x'*5000) }}"},
        },
    )
    assert response.status_code == 422
    assert response.json["field"] == "parts.txt"
    assert response.json["detail"] == "parts.txt line 1: the joined text would grow past 1000000 characters"


def test_legitimate_templates_still_render():
    from server.plugins import build_plugin_manager

    renderer = Renderer(channels=build_plugin_manager({"LOAD_ENTRY_POINTS": False}).channels)
    context = {
        "contact": {"first_name": "Ana", "tags": ["vip", "gym"]},
        "event": {"items": [{"name": "Shoes", "price": 40}, {"name": "Socks", "price": 5}]},
        "links": {},
        "unsubscribe_url": "https://n.example/u/t",
    }
    source = (
        "{% macro line(item) %}- {{ item.name|upper }}: {{ '%5.2f'|format(item.price) }}{% endmacro %}"
        "{% set greeting %}Hello {{ contact.first_name ~ '!' }}{% endset %}{{ greeting }}\n"
        "{% for item in event['items'] %}{{ line(item) }}\n{% endfor %}"
        "{{ contact.tags|join(', ') }} | {{ 'a-b-c'.replace('-', ' ') }} | {{ 'x'.center(5)|replace(' ', '.') }}\n"
        "{{ ('word ' * 30)|wordwrap(40)|indent(2) }}\n{{ range(5)|map('string')|join('') }} {{ '=' * 10 }}"
    )
    out = renderer.render_part("txt", source, context)
    assert out.splitlines()[:4] == ["Hello Ana!", "- SHOES: 40.00", "- SOCKS:  5.00", "vip, gym | a b c | ..x.."]
    assert out.endswith("01234 ==========")
    assert renderer.validate("email", {"subject": "Hi {{ contact.first_name }}", "txt": source}) == []
