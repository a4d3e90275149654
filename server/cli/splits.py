"""``nudge splits``: a rule's auto-winner splits, and ending one by hand (docs/optimisation.md)."""

from __future__ import annotations

import json

import click


def register(main: click.Group) -> None:
    @main.group()
    def splits() -> None:
        """Auto-winner splits (`split auto on EVENT within DURATION`): their state, and ending one by hand."""

    @splits.command("show")
    @click.argument("rule")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON (the API's answer) instead of text.")
    def show(rule: str, as_json: bool) -> None:
        """RULE's auto-winner splits: phase or winner, and each arm's evidence."""
        from ..db import get_session
        from ..engine.autosplit import SplitEndError, auto_splits, test_state
        from ..engine.timeutil import to_ts
        from ..models import utcnow
        from . import build_app
        from .stats import auto_lines

        app = build_app()
        with app.app_context():
            session = get_session()
            try:
                found, ops = auto_splits(session, rule)
            except SplitEndError as exc:
                raise click.ClickException(str(exc)) from None
            tests = [test_state(session, found.id, op, app.config, to_ts(utcnow())) for op in ops]
            session.commit()
        if as_json:
            click.echo(json.dumps(tests, indent=2, sort_keys=True))
            return
        for test in tests:
            click.echo(
                f"split {test['step']} (line {test['line']}) on {test['outcome']} within {test['window_seconds']}s"
            )
            for line in auto_lines(test):
                click.echo(line)

    @splits.command("end")
    @click.argument("rule")
    @click.argument("step")
    @click.argument("arm")
    def end(rule: str, step: str, arm: str) -> None:
        """End RULE's auto-winner split STEP (step id or line) by hand: ARM goes to every later contact."""
        from ..contacts import audit
        from ..db import get_session
        from ..engine.autosplit import SplitEndError, end_test
        from ..engine.timeutil import to_ts
        from ..models import utcnow
        from . import build_app

        app = build_app()
        with app.app_context():
            session = get_session()
            try:
                state = end_test(session, app.config, rule, step, arm, "cli", to_ts(utcnow()))
            except SplitEndError as exc:
                raise click.ClickException(str(exc)) from None
            audit(session, "cli", "split.ended", "rule", rule, step=state["step"], arm=state["winner"])
            session.commit()
        before = f" (was {state['previous_winner']})" if state["previous_winner"] else ""
        click.echo(f"split {state['step']} of {rule!r} ended: arm {state['winner']} for every later contact{before}")
