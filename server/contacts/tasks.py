"""Working on tasks (from rules' ``task`` steps, the API or by hand): close one, assign it, move its due date.

One place for ``nudge tasks --done`` and the admin UI's tasks inbox; each change is audited with the
task id and the changed names only. The caller commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ..models import Task, TaskStatus, User, utcnow
from .errors import InvalidInput
from .service import audit


def close_task(session: Session, task: Task, actor: str) -> bool:
    """Mark *task* done; False (and nothing changed) when it is not open.

    :param actor: who, for the audit log (``cli``, ``user:3``).
    """
    if task.status != TaskStatus.OPEN.value:
        return False
    task.status, task.completed_at = TaskStatus.DONE.value, utcnow()
    audit(session, actor, "task.updated", "task", task.id, changed=["status"])
    return True


def assign_task(session: Session, task: Task, user_id: int | None, actor: str) -> bool:
    """Assign *task* to the user *user_id* (None: to nobody); False when it already was.

    :raises InvalidInput: (field ``assigned_to``) for a user that does not exist or is disabled.
    """
    if user_id is not None:
        user = session.get(User, user_id)
        if user is None or user.disabled_at is not None:
            raise InvalidInput("assigned_to", f"there is no enabled user with id {user_id}; choose one from the list")
    if task.assigned_to == user_id:
        return False
    task.assigned_to = user_id
    audit(session, actor, "task.updated", "task", task.id, changed=["assigned_to"])
    return True


def set_due(session: Session, task: Task, due_at: datetime | None, actor: str) -> bool:
    """Give *task* a new due time (None: none); False when it already had it."""
    if task.due_at == due_at:
        return False
    task.due_at = due_at
    audit(session, actor, "task.updated", "task", task.id, changed=["due_at"])
    return True


__all__ = ["assign_task", "close_task", "set_due"]
