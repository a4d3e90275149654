"""Saving a large rule set through `PUT /api/v1/rules`, against the rules language's own parse + check + compile.

What `nudge apply` and a git-driven deploy do with every rule: check the text, store a version of each changed rule
and activate it, audit each change. The baseline, in the same process on the same text, is what the language alone
costs (`compile_rules`: parse, check against the instance's vocabulary, compile); the database's part (rules,
versions, audit entries, one transaction) should cost no more than that again. Both are CPU time of this process
(the request runs in it), so other load on the machine does not count. Two saves are measured: 3,000 new rules, then
the same 3,000 each changed (an update: new versions, contacts mid-journey looked up).
Run: .venv/bin/python bench/bench_rules_save.py [--rules 3000]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_app
from bench.table import Row, failed, render
from server.apikeys import create_api_key
from server.db import get_session

#: at most this many times the language's own CPU time for the whole save
TARGET_RATIO = 2.0


def rules_text(count: int, wait: str = "1d") -> str:
    return "\n".join(
        f'rule "Lead {n}"\nwhen form.submitted and contact.score > {n} then\n  tag "lead-{n}"\n  wait {wait}\n'
        "  send email welcome\nend\n"
        for n in range(count)
    )


def _cpu(work) -> tuple[float, object]:
    gc.collect()
    start = time.process_time()
    result = work()
    return time.process_time() - start, result


def measure(count: int) -> list[Row]:
    with bench_app() as app:
        with app.app_context():
            key = create_api_key(get_session(), "admin")
        client = app.test_client()
        headers = {"Authorization": f"Bearer {key}"}
        rows = []
        for label, text in (("new", rules_text(count)), ("each changed", rules_text(count, wait="2d"))):
            with app.test_request_context():
                from server.api.rules import _compile

                compiled_s, (plans, errors, _warnings) = _cpu(lambda t=text: _compile({"text": t}))
            if errors or len(plans) != count:
                return [failed(f"PUT /api/v1/rules, {count:,} rules", f"{errors[:1]} ({len(plans)} plans)")]
            saved_s, answer = _cpu(lambda t=text: client.put("/api/v1/rules", json={"text": t}, headers=headers))
            if answer.status_code != 200:  # type: ignore[attr-defined]
                return [failed(f"PUT /api/v1/rules, {count:,} rules", answer.get_data(as_text=True)[:200])]  # type: ignore[attr-defined]
            print(f"{label}: save {saved_s:.2f} s of CPU; parse + check + compile alone {compiled_s:.2f} s")
            rows.append(
                Row(
                    f"PUT /api/v1/rules, {count:,} rules, {label} (CPU)",
                    saved_s,
                    "s",
                    compiled_s,
                    "parse + check + compile of the same text",
                    f"<= {TARGET_RATIO:g}x baseline",
                    saved_s <= TARGET_RATIO * compiled_s,
                )
            )
        return rows


def rows(full: bool) -> list[Row]:
    return measure(3000)


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rules", type=int, default=3000)
    args = options.parse_args()
    print(render(measure(args.rules)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
