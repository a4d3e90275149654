"""``nudge tasks``: the open tasks that rules (``task … for "sales"``) and the API made, and closing them."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    @main.command()
    @click.option("--team", help="Only this team's tasks.")
    @click.option("--done", "done_id", type=int, metavar="ID", help="Close task ID (mark it done).")
    def tasks(team: str | None, done_id: int | None) -> None:
        """List open tasks (oldest due first), or close one with --done ID."""
        from sqlalchemy import select

        from ..contacts.tasks import close_task
        from ..db import get_session
        from ..models import Task, TaskStatus
        from . import build_app

        app = build_app()
        with app.app_context():
            session = get_session()
            if done_id is not None:
                task = session.get(Task, done_id)
                if task is None:
                    raise click.ClickException(f"no task {done_id}; `nudge tasks` lists the open ones")
                if not close_task(session, task, "cli"):
                    click.echo(f"task {done_id} is already {task.status}")
                    return
                session.commit()
                click.echo(f"task {done_id} done")
                return
            query = select(Task).where(Task.status == TaskStatus.OPEN.value)
            if team is not None:
                query = query.where(Task.team == team)
            rows = session.scalars(query.order_by(Task.due_at.is_(None), Task.due_at, Task.id)).all()
            if not rows:
                click.echo("no open tasks" + (f" for {team!r}" if team else ""))
                return
            click.echo(f"{'ID':>5}  {'TEAM':<16} {'DUE':<17} {'CONTACT':>7}  TEXT")
            for task in rows:
                due = task.due_at.strftime("%Y-%m-%d %H:%M") if task.due_at else "-"
                contact = str(task.contact_id) if task.contact_id is not None else "-"
                text = " ".join(task.text.split())
                click.echo(f"{task.id:>5}  {(task.team or '-'):<16} {due:<17} {contact:>7}  {text}")
