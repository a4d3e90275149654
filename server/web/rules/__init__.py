"""The rules area of the admin UI: the list, the editor (drafts, versions, activation with its plan, pause and
resume), the editor bundle's endpoints (vocabulary, validate, format) and "Try it" with saved test cases.

Viewers read everything (the editor is read-only for them); editors and admins change rules.
"""

from __future__ import annotations

from ..access import admin_blueprint
from ..nav import add

bp = admin_blueprint("rules", __name__, url_prefix="/admin/rules")
add(bp, "Rules", "rules.index", order=20)

from . import contract, pages, trying  # noqa: E402,F401  (register routes)

__all__ = ["bp"]
