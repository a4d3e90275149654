"""The Imports area of the admin UI: upload a CSV file, map its columns to contact fields with a preview, choose how
duplicates merge, and watch a worker import it; then download the rejected rows.

Viewers read the list and each import's progress and report; editors and admins upload, start, retry and discard.
"""

from __future__ import annotations

from ..access import admin_blueprint
from ..nav import add

bp = admin_blueprint("imports", __name__, url_prefix="/admin/imports")
add(bp, "Imports", "imports.index", order=32)

from . import pages  # noqa: E402,F401  (register routes)

__all__ = ["bp"]
