"""A rule's funnel from the stats counters, against a COUNT(*) scan of its journeys, on SQLite.

Issue #13 point 3 target: the stats of a rule with 1,000,000 enrolments answered in under 200 ms. The journeys are
made as the engine makes them (set-based entry straight into the first wait, one trace line each), the rollup folds
them in (its rate is reported too), then `rule_funnel` is timed next to `SELECT COUNT(*) … GROUP BY pc` over the
rule's enrolments (what a read-time scan would cost).
Run: .venv/bin/python bench/bench_stats.py [--contacts 1000000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, literal_column, select

from bench.common import bench_app
from bench.crm_data import fill_contacts
from bench.table import Row, failed, render, under
from server.db import get_session
from server.engine.context import EngineContext
from server.engine.funnel import rule_funnel
from server.engine.rollup import rollup
from server.models import Contact, Enrolment, Rule
from tests.helpers import load_rules

RULE = """rule "Drip"
  always
when bench.started then
  wait 1d
  split
    50%: send email a
    50%: send email b
  end
  wait 2d
  send email later
end
"""


def _best(fn, times: int = 5) -> float:
    """The fastest of *times* runs of *fn*, in milliseconds."""
    best = float("inf")
    for _ in range(times):
        start = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - start) * 1000)
    return best


def measure(contacts: int) -> list[Row]:
    """The funnel's read time for a rule with *contacts* journeys, next to a COUNT(*) scan of them."""
    with bench_app() as app:
        load_rules(app, RULE)
        fill_contacts(app, contacts)
        with app.app_context():
            session = get_session()
            rule = session.scalar(select(Rule))
            from server.engine import bulk

            ctx = EngineContext(session, app.config, int(time.time()))
            plan = ctx.plan(rule.active_version_id)
            entered = bulk.enrol_set_based(ctx, rule.id, rule.active_version_id, plan, select(Contact.id), "bench")
            session.commit()
            if entered != contacts:
                return [failed("stats of one rule", f"only {entered} of {contacts} contacts entered")]
            start = time.perf_counter()
            rollup(session, limit=None)
            folded = time.perf_counter() - start
            funnel = rule_funnel(session, "Drip")
            if funnel["entered"] != contacts or funnel["waiting"] != contacts:
                return [failed("stats of one rule", f"the funnel says {funnel['entered']} entered, not {contacts}")]
            read = _best(lambda: rule_funnel(session, "Drip"))
            scan = _best(
                lambda: session.execute(
                    select(Enrolment.pc, func.count(literal_column("*")))
                    .where(Enrolment.rule_id == rule.id, Enrolment.state == 0)
                    .group_by(Enrolment.pc)
                ).all()
            )
    print(f"rollup: {contacts:,} trace lines folded in {folded:.1f} s ({contacts / folded:,.0f} lines/s)")
    return [
        under(
            f"stats of one rule, {contacts:,} enrolments (nudge stats / GET /rules/{{name}}/stats)",
            read,
            "ms",
            scan,
            "COUNT(*) … GROUP BY pc of its journeys",
            200,
        )
    ]


def rows(full: bool) -> list[Row]:
    return measure(1_000_000 if full else 100_000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=1_000_000)
    print(render(measure(parser.parse_args().contacts)))


if __name__ == "__main__":
    main()
