"""/api/v1/tasks: to-dos for people and teams, made by rules (``task … for "sales"``) or by hand."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from ..contacts import iso
from ..contacts.normalize import parse_datetime
from ..models import Contact, Task, TaskStatus, utcnow
from . import bp
from .common import remove, save, text
from .pagination import filtered_page, sort_param
from .spec import CURSOR, ID, LIMIT, TIMESTAMP, endpoint, get_or_404, nullable, page_of, query_param, schema

STATUSES = [s.value for s in TaskStatus]
TASK_FIELDS = {
    "text": text(2000, min_length=1, pattern=r"\S", pattern_hint="not be blank (only spaces)"),
    "team": text(128, nullable=True),
    "due_at": {**TIMESTAMP, "nullable": True, "minLength": 1, "description": "null clears it"},
    "contact_id": {**ID, "nullable": True},
    "status": {"type": "string", "enum": STATUSES},
}
TASK_INPUT = schema(
    "TaskInput", {"type": "object", "additionalProperties": False, "required": ["text"], "properties": TASK_FIELDS}
)
TASK_PATCH = schema("TaskPatch", {"type": "object", "additionalProperties": False, "properties": TASK_FIELDS})
TASK = schema(
    "Task",
    {
        "type": "object",
        "properties": {
            "id": ID,
            "text": {"type": "string"},
            "team": {"type": "string", "nullable": True},
            "due_at": nullable(TIMESTAMP),
            "contact_id": {**ID, "nullable": True},
            "status": {"type": "string", "enum": STATUSES},
            "source": {"type": "string"},
            "created_at": TIMESTAMP,
            "completed_at": nullable(TIMESTAMP),
        },
    },
)


def task_dict(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "text": task.text,
        "team": task.team,
        "due_at": iso(task.due_at),
        "contact_id": task.contact_id,
        "status": task.status,
        "source": task.source,
        "created_at": iso(task.created_at),
        "completed_at": iso(task.completed_at),
    }


def _apply(task: Task, body: dict[str, Any]) -> None:
    if "contact_id" in body and body["contact_id"] is not None:
        get_or_404(Contact, body["contact_id"], "contact")
    for name in ("text", "team", "contact_id"):
        if name in body:
            setattr(task, name, body[name])
    if "due_at" in body:
        task.due_at = parse_datetime(body["due_at"], "due_at") if body["due_at"] else None
    if "status" in body and body["status"] != task.status:
        task.status = body["status"]
        task.completed_at = utcnow() if body["status"] != TaskStatus.OPEN.value else None


@endpoint(
    bp,
    "GET",
    "/tasks",
    summary="List tasks",
    tag="tasks",
    responses={200: ("a page", page_of("Task"))},
    query=[
        query_param("status", {"type": "string", "enum": STATUSES}),
        query_param("team", text(128)),
        query_param("contact_id", ID),
        sort_param(["id", "created_at"], "id"),
        LIMIT,
        CURSOR,
    ],
)
def list_tasks(query: dict[str, Any]):
    return jsonify(filtered_page(Task, query, ("status", "team", "contact_id"), task_dict))


@endpoint(
    bp, "POST", "/tasks", summary="Create a task", tag="tasks", body=TASK_INPUT, responses={201: ("created", TASK)}
)
def post_task(body: dict[str, Any]):
    task = Task(status=TaskStatus.OPEN.value, source="api")
    _apply(task, body)
    save(task, "task.created", "task", lambda: task.id)
    return jsonify(task_dict(task)), 201


@endpoint(bp, "GET", "/tasks/{task_id}", summary="Get a task", tag="tasks", responses={200: ("the task", TASK)})
def get_task(task_id: int):
    return jsonify(task_dict(get_or_404(Task, task_id, "task")))


@endpoint(
    bp,
    "PATCH",
    "/tasks/{task_id}",
    summary="Update a task (e.g. mark it done)",
    tag="tasks",
    body=TASK_PATCH,
    responses={200: ("the task", TASK)},
)
def patch_task(task_id: int, body: dict[str, Any]):
    task = get_or_404(Task, task_id, "task")
    _apply(task, body)
    save(task, "task.updated", "task", task.id, changed=sorted(body))
    return jsonify(task_dict(task))


@endpoint(bp, "DELETE", "/tasks/{task_id}", summary="Delete a task", tag="tasks", responses={204: ("deleted", None)})
def delete_task(task_id: int):
    return remove(get_or_404(Task, task_id, "task"), "task.deleted", "task", task_id)
