"""Event matching as rules grow: events per second with 10,000 rules against the same with 10 rules.

Issue #4 target: throughput with 10,000 rules >= 0.5x the throughput with 10 rules (the baseline,
measured in the same run). Each rule is `when order.placed and event.sku == "sku-N" then tag "bought-N"`;
each event matches exactly one rule, so the work per event is the same and only matching cost differs.
Run: .venv/bin/python bench/bench_matching.py [--rules 10000] [--events 2000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select

from bench.common import bench_app
from bench.table import Row, ratio_at_least, render
from server.db import get_session
from server.engine.jobs import process_events
from server.models import Contact, ContactTag, Event
from tests.helpers import load_rules


def rules_text(n: int) -> str:
    return "".join(
        f'rule "Bought {i}"\n  always\nwhen order.placed and event.sku == "sku-{i}" then\n  tag "bought-{i}"\nend\n'
        for i in range(n)
    )


def events_per_second(n_rules: int, n_events: int) -> float:
    with bench_app(ENGINE_EVENT_BATCH=1) as app:  # each call its own 100 events: batches of the same size
        load_rules(app, rules_text(n_rules))
        with app.app_context():
            session = get_session()
            session.execute(insert(Contact), [{"email": f"c{i}@example.com", "fields": {}} for i in range(500)])
            ids = list(session.scalars(select(Contact.id)))
            rng = random.Random(7)
            session.execute(
                insert(Event),
                [
                    {
                        "contact_id": rng.choice(ids),
                        "name": "order.placed",
                        "props": {"sku": f"sku-{rng.randrange(10)}"},
                    }
                    for _ in range(n_events)
                ],
            )
            session.commit()
            event_ids = list(session.scalars(select(Event.id).order_by(Event.id)))
            process_events(event_ids[:50])  # warm the rule index and caches
            start = time.perf_counter()
            for i in range(50, len(event_ids), 100):
                process_events(event_ids[i : i + 100])
            elapsed = time.perf_counter() - start
            tagged = session.scalar(select(func.count()).select_from(ContactTag))
        assert tagged > 0, "no event matched: the benchmark is invalid"
        return (len(event_ids) - 50) / elapsed


def measure(n_rules: int, n_events: int) -> list[Row]:
    """Events per second with *n_rules* rules next to the same with 10 rules."""
    small = events_per_second(10, n_events)
    large = events_per_second(n_rules, n_events)
    return [
        ratio_at_least(
            f"matching: events per second with {n_rules:,} rules ({n_events:,} events)",
            large,
            "events/s",
            small,
            "the same with 10 rules",
            0.5,
        )
    ]


def rows(full: bool) -> list[Row]:
    return measure(10_000 if full else 2_000, 2_000 if full else 1_000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=2_000)
    args = parser.parse_args()
    print(render(measure(args.rules, args.events)))


if __name__ == "__main__":
    main()
