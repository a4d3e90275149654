"""Parse + check + compile 1,000 varied rules on one core.

Issue #3 target: 1,000 rules in under 1 s. Rules are compiled when saved, never
per event, so this is the cost of `nudge apply` on a large rule set.
The baseline, measured in the same run on the same text: lark parsing it into a
plain tree (no AST, no recovery).

Run: .venv/bin/python bench/bench_dsl.py [--rules 1000] [--repeat 5], or make bench (module rows()).
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lark import Lark

import dsl
from bench.table import Row, render, under
from dsl.parser import grammar_text

TARGET_SECONDS = 1.0

SHAPES = [
    """rule "Welcome {n}"
  once per contact
  until purchase.completed
  quiet hours 21:00-08:00
when member.joined and tag != "vip" then
  send email welcome
  wait 3d
  if did class.attended within 3d then
    send email keep_going
  else
    send email getting_started
  end
  wait 7d
  send email trainer_intro
end
""",
    """when form.submitted and event.form == "trial-{n}" then send email welcome; wait 3d; send sms reminder
""",
    """rule "Trial follow-up {n}"
when visit.completed and event.kind == "trial" then
  wait 24h
  send sms how_was_it
end
""",
    """rule "Birthday {n}"
when anniversary of contact.birthday at 09:00 then
  send email birthday
  tag "birthday-{n}"
end
""",
    """rule "Win-back {n}"
  once per contact every 90d
when no class.attended for 14d and contact.stage != "lead" then
  send email we_miss_you
  wait for class.attended up to 7d then
    tag "won-back"
  else
    tag "at-risk"
    task "Call {{{{ contact.first_name }}}}" for "front-desk" due 2d
  end
end
""",
    """rule "Renewal {n}"
when 7d before contact.renewal_date at 10:00 and contact.plan in ["pro", "team"] then
  send email renewal_soon
  wait until contact.renewal_date - 1d
  send email renewal_tomorrow
end
""",
    """rule "Scoring {n}"
when page.visited and event.url contains "/pricing" then
  score +10
  if contact.score >= 50 and not has tag "sales" then
    set contact.stage = "sql"
    notify "sales" "Hot lead: {{{{ contact.email }}}}"
  end
end
""",
    """rule "Test {n}"
  always
when every monday at 08:30 and contact.last_seen < now - 14d then
  split
    50%: send email variant_a
    50%:
      send email variant_b
      wait 2d
      send email variant_b_reminder
  end
end
""",
]


def rules_text(count: int, seed: int = 3) -> str:
    rng = random.Random(seed)
    return "\n".join(rng.choice(SHAPES).format(n=n) for n in range(count))


def vocabulary() -> dsl.Vocabulary:
    words = dsl.Vocabulary.default()
    # the built-in channels' names, as the instance's plugins would declare them (any template accepted)
    words = replace(words, channels={"email": None, "sms": None, **words.channels})
    return words.with_fields({"renewal_date": "date", "plan": "string"}).with_events(
        {"member.joined", "form.submitted", "visit.completed", "class.attended", "page.visited", "purchase.completed"}
    )


def best_of(repeat: int, work) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.process_time()  # CPU time of this process: other load does not count
        work()
        times.append(time.process_time() - start)
    return min(times)


def measure(count: int, repeat: int) -> list[Row]:
    """Time parse + check + compile of *count* rules (best of *repeat*) next to lark's plain parse of the same text."""
    text = rules_text(count)
    words = vocabulary()
    built = dsl.build(text, "bench.nudge", words)  # warm-up: builds the parser once
    if built.plan is None:
        raise SystemExit("\n".join(d.format(text) for d in built.diagnostics[:5]))
    assert len(built.plan["rules"]) == count

    def pipeline():
        result = dsl.build(text, "bench.nudge", words)
        assert result.plan is not None

    program = built.program
    parse_s = best_of(repeat, lambda: dsl.parse(text, "bench.nudge"))
    check_s = best_of(repeat, lambda: dsl.check(program, words))
    compile_s = best_of(repeat, lambda: dsl.compile_program(program))
    total_s = best_of(repeat, pipeline)

    plain = Lark(grammar_text(), parser="lalr", start="program", keep_all_tokens=True)
    lark_s = best_of(repeat, lambda: plain.parse(text))
    print(
        f"input: {count:,} rules, {len(text.splitlines()):,} lines, {len(text) / 1024:,.0f} KiB; "
        f"parse {parse_s * 1000:.1f} ms, check {check_s * 1000:.1f} ms, compile {compile_s * 1000:.1f} ms"
    )
    per_thousand_ms = total_s * 1000 * 1000 / count
    return [
        under(
            f"DSL: parse + check + compile, per 1,000 rules (of {count:,})",
            per_thousand_ms,
            "ms",
            lark_s * 1000 * 1000 / count,
            "lark's plain tree of the same text",
            TARGET_SECONDS * 1000,
        )
    ]


def rows(full: bool) -> list[Row]:
    return measure(1000, 5 if full else 3)


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rules", type=int, default=1000)
    options.add_argument("--repeat", type=int, default=5)
    args = options.parse_args()
    print(render(measure(args.rules, args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
