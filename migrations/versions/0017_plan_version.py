"""stored plans move to format version 2: each carries its version; wait_until always has `at`

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-28
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# a migration never imports the code it migrates for: these are format versions 1 and 2 as they are today
PLAN_VERSION = 2
_versions = sa.table(
    "rule_versions",
    sa.column("id", sa.Integer()),
    sa.column("plan", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
)


def _to_2(plan: dict[str, Any]) -> dict[str, Any]:
    """Version 1 (no ``version`` key) to 2: a ``wait_until`` without ``at`` gets ``at: null`` (same meaning)."""
    steps = [
        ({**step, "at": None} if step.get("op") == "wait_until" and "at" not in step else step)
        for step in plan.get("steps") or []
    ]
    return {**plan, "version": PLAN_VERSION, **({"steps": steps} if "steps" in plan else {})}


def _to_1(plan: dict[str, Any]) -> dict[str, Any]:
    steps = [
        (
            {k: v for k, v in step.items() if k != "at"}
            if step.get("op") == "wait_until" and step.get("at") is None
            else step
        )
        for step in plan.get("steps") or []
    ]
    return {**{k: v for k, v in plan.items() if k != "version"}, **({"steps": steps} if "steps" in plan else {})}


def _rewrite(change: Any, only: Any) -> None:
    conn = op.get_bind()
    for version_id, plan in conn.execute(sa.select(_versions.c.id, _versions.c.plan)).all():
        if isinstance(plan, dict) and only(plan.get("version")):
            conn.execute(_versions.update().where(_versions.c.id == version_id).values(plan=change(plan)))


def upgrade() -> None:
    _rewrite(_to_2, lambda version: version is None)


def downgrade() -> None:
    _rewrite(_to_1, lambda version: version == PLAN_VERSION)
