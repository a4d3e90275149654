"""The Segments area of the admin UI: the list with live member counts, the editor (a condition in the rules
language with live diagnostics, count and sample as you type) and delete, refused while a rule uses the segment.

Viewers read everything; editors and admins create, change and delete segments.
"""

from __future__ import annotations

from ..access import admin_blueprint
from ..nav import add

bp = admin_blueprint("segments", __name__, url_prefix="/admin/segments")
add(bp, "Segments", "segments.index", order=35)

from . import live, pages  # noqa: E402,F401  (register routes)

__all__ = ["bp"]
