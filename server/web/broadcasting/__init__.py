"""The Broadcasts area of the admin UI: compose one message to a segment from a template, see its audience after
consent and suppression, send it now or schedule it, watch its progress and see its results.

Viewers read everything; editors and admins send and schedule broadcasts.
"""

from __future__ import annotations

from ..access import admin_blueprint
from ..nav import add

bp = admin_blueprint("broadcasting", __name__, url_prefix="/admin/broadcasts")
add(bp, "Broadcasts", "broadcasting.index", order=47)

from . import pages  # noqa: E402,F401  (register routes)

__all__ = ["bp"]
