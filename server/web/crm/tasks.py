"""Tasks inbox: tasks from rules' ``task`` steps (and the API) by team, assigned to users, with due dates; mark one
done (as ``nudge tasks --done`` does: :func:`server.contacts.tasks.close_task`); and the notifications rules'
``notify`` and ``task`` steps sent each team (outbox rows keyed ``team:…``, :mod:`server.engine.staff`).

A change asked for by htmx answers with the task's updated row; a plain form post goes back to the list.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import and_, or_, select

from ...contact_search import starts_with
from ...contacts import InvalidInput
from ...contacts.tasks import assign_task, close_task, set_due
from ...db import get_session
from ...engine.keys import TEAM, key_prefix
from ...engine.staff import INTERNAL
from ...models import Contact, Message, Role, Rule, Task, TaskStatus, User, utcnow
from ..access import actor, admin_blueprint, current_role, current_user, requires
from ..flash import is_htmx, notify
from ..nav import add
from . import paging

bp = admin_blueprint("tasks", __name__, url_prefix="/admin/tasks")
add(bp, "Tasks", "tasks.index", order=50)

SHOW = {"open": "Open", "done": "Done", "all": "All"}
ASSIGNED = {"": "Anyone or nobody", "me": "Me", "nobody": "Nobody"}
MAX_ID = 2**31 - 1


def _filters(args: Any) -> dict[str, str]:
    return {
        "team": args.get("team", "").strip(),
        "show": args.get("show", "open").strip() or "open",
        "assigned": args.get("assigned", "").strip(),
    }


def _teams(db: Any) -> list[str]:
    configured = set(current_app.config.get("TEAMS") or {})
    return sorted(configured | {t for t in db.scalars(select(Task.team).distinct()) if t})


def _users(db: Any) -> dict[int, str]:
    return dict(db.execute(select(User.id, User.email).where(User.disabled_at.is_(None)).order_by(User.email)).all())


def _ordered(stmt: Any, after: tuple[Any, ...] | None) -> Any:
    """Soonest due first, tasks without a due date last, then by id: a keyset over (due_at, id)."""
    if after is not None:
        due, ident = after
        if due is None:
            stmt = stmt.where(Task.due_at.is_(None), Task.id > ident)
        else:
            stmt = stmt.where(or_(Task.due_at > due, and_(Task.due_at == due, Task.id > ident), Task.due_at.is_(None)))
    return stmt.order_by(Task.due_at.is_(None), Task.due_at, Task.id)


@bp.get("/")
@requires(Role.VIEWER)
def index():
    db = get_session()
    filters = _filters(request.args)
    if filters["show"] not in SHOW or filters["assigned"] not in ASSIGNED:
        abort(400, description=f"Show one of {', '.join(SHOW)}; assigned one of me, nobody (or leave it empty).")
    stmt = select(Task)
    if filters["show"] != "all":
        stmt = stmt.where(
            Task.status == (TaskStatus.OPEN.value if filters["show"] == "open" else TaskStatus.DONE.value)
        )
    if filters["team"]:
        stmt = stmt.where(Task.team == filters["team"])
    if filters["assigned"] == "me":
        stmt = stmt.where(Task.assigned_to == current_user().id)
    elif filters["assigned"] == "nobody":
        stmt = stmt.where(Task.assigned_to.is_(None))
    notifications = _notifications(db, filters["team"])
    scope = "|".join(filters.values())
    rows = list(db.scalars(_ordered(stmt, paging.cursor(scope, request.args.get("after"))).limit(paging.PAGE_SIZE + 1)))
    after = None
    if len(rows) > paging.PAGE_SIZE:
        rows = rows[: paging.PAGE_SIZE]
        after = paging.next_link(scope, (rows[-1].due_at, rows[-1].id))
    return render_template(
        "admin/tasks.html",
        tasks=rows,
        filters=filters,
        active={k: v for k, v in filters.items() if v},
        teams=[(team, team) for team in _teams(db)],
        show=list(SHOW.items()),
        assigned=list(ASSIGNED.items()),
        after=after,
        first=bool(request.args.get("after")),
        notifications=notifications,
        **_row_context(db, rows, [m.contact_id for m, _info in notifications]),
    )


def _row_context(db: Any, tasks: list[Task], also: list[int | None] | None = None) -> dict[str, Any]:
    """What a task's row shows; *also*: more contacts the page names (its notifications'), read in the same query."""
    ids = {t.contact_id for t in tasks if t.contact_id} | {i for i in also or () if i}
    contacts = _contact_names(db, ids)
    role = current_role()
    return {
        "contacts": contacts,
        "sources": _sources(db, {t.source for t in tasks}),
        "users": _users(db),
        "now": utcnow(),
        "can_edit": role is not None and role.allows(Role.EDITOR),
    }


def _contact_names(db: Any, ids: set[int]) -> dict[int, str]:
    """Contacts by id as people know them: the email, else the name, else the phone (one query)."""
    if not ids:
        return {}
    rows = db.execute(
        select(Contact.id, Contact.email, Contact.first_name, Contact.last_name, Contact.phone).where(
            Contact.id.in_(ids)
        )
    )
    return {
        cid: email or " ".join(n for n in (first, last) if n) or phone or f"#{cid}"
        for cid, email, first, last, phone in rows
    }


def _sources(db: Any, sources: set[str]) -> dict[str, tuple[str, str, str]]:
    """Where tasks came from, for people: ``rule:<name>`` (or ``rule:<id>`` for a rule whose plan had no name)
    becomes ("rule", the rule's name, its page); a source no rule matches any longer stays as written."""
    keys = {s.removeprefix("rule:") for s in sources if s.startswith("rule:")}
    if not keys:
        return {}
    ids = {int(k) for k in keys if k.isascii() and k.isdecimal() and 0 < int(k) <= MAX_ID}
    rules = db.execute(select(Rule.id, Rule.name).where(or_(Rule.name.in_(keys), Rule.id.in_(ids)))).all()
    by_name = {name: rule_id for rule_id, name in rules}
    names: dict[int, str] = dict(rules)
    found = {}
    for key in keys:
        rule_id = by_name.get(key)
        if rule_id is None and key.isascii() and key.isdecimal() and int(key) in names:
            rule_id = int(key)
        if rule_id is not None:
            found[f"rule:{key}"] = ("rule", names[rule_id], url_for("rules.show", rule_id=rule_id))
    return found


def _notifications(db: Any, team: str) -> list[tuple[Message, dict[str, Any]]]:
    """The latest internal notifications (``notify`` and ``task`` steps), of *team* or every team."""
    stmt = select(Message).where(starts_with(db, Message.key, key_prefix(TEAM)))
    if team:
        stmt = stmt.where(Message.data[INTERNAL]["team"].as_string() == team)
    rows = db.scalars(stmt.order_by(Message.id.desc()).limit(paging.PAGE_SIZE))
    return [(m, (m.data or {}).get(INTERNAL) or {}) for m in rows]


# -- changing one task ---------------------------------------------------------------------------------------
def _task(task_id: int) -> Task:
    task = get_session().get(Task, task_id) if 0 < task_id <= MAX_ID else None
    if task is None:
        abort(404, description=f"There is no task {task_id}; it may have been deleted.")
    return task


def _answer(task: Task, status: int = 200) -> Any:
    """The task's row for htmx (its flash in the header), else back to the list the person came from."""
    if is_htmx():
        db = get_session()
        return render_template("admin/_task_row.html", t=task, **_row_context(db, [task])), status
    back = request.referrer or ""
    same = back.startswith(request.host_url + "admin/tasks/")
    return redirect(back if same else url_for("tasks.index"))


def _refused(task: Task, message: str) -> Any:
    get_session().rollback()
    notify(message, "error")
    if is_htmx():
        return "", 422
    return _answer(task)


@bp.post("/<int:task_id>/done")
@requires(Role.EDITOR)
def done(task_id: int):
    db = get_session()
    task = _task(task_id)
    closed = close_task(db, task, actor())
    db.commit()
    notify(
        f"Task {task.id} is done." if closed else f"Task {task.id} was {task.status} already.",
        "success" if closed else "info",
    )
    return _answer(task)


@bp.post("/<int:task_id>/assign")
@requires(Role.EDITOR)
def assign(task_id: int):
    db = get_session()
    task = _task(task_id)
    value = request.form.get("assigned_to", "").strip()
    if value and not (value.isdecimal() and 0 < int(value) <= MAX_ID):
        return _refused(task, f"Not assigned: {value[:40]!r} is not a user of the list.")
    try:
        changed = assign_task(db, task, int(value) if value else None, actor())
    except InvalidInput as exc:
        return _refused(task, f"Not assigned: {exc}.")
    db.commit()
    who = _users(db).get(task.assigned_to) if task.assigned_to else None
    notify(
        (f"Task {task.id} is assigned to {who}." if who else f"Task {task.id} is assigned to nobody.")
        if changed
        else f"Task {task.id} was assigned so already.",
        "success" if changed else "info",
    )
    return _answer(task)


@bp.post("/<int:task_id>/due")
@requires(Role.EDITOR)
def due(task_id: int):
    db = get_session()
    task = _task(task_id)
    value = request.form.get("due_at", "").strip()
    try:
        when = datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None
    except ValueError:
        return _refused(
            task, f"The due date was not changed: {value[:40]!r} is not a date and time (YYYY-MM-DDTHH:MM, UTC)."
        )
    if when is not None and not 2000 <= when.year <= 2999:
        return _refused(task, "The due date was not changed: choose a date between the years 2000 and 2999.")
    changed = set_due(db, task, when, actor())
    db.commit()
    notify(
        (f"Task {task.id} is due {when:%Y-%m-%d %H:%M} UTC." if when else f"Task {task.id} has no due date now.")
        if changed
        else f"Task {task.id} was due then already.",
        "success" if changed else "info",
    )
    return _answer(task)


__all__ = ["bp"]
