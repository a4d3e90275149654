"""The Results area of the admin UI: every rule's funnel per step and split arm over a chosen window and version,
drawn as SVG charts with their numbers as tables; the instance's activity on the dashboard (server.web.admin).

Everyone signed in reads results (viewers too); nothing here changes state.
"""

from __future__ import annotations

from ..access import admin_blueprint
from ..nav import add

bp = admin_blueprint("results", __name__, url_prefix="/admin/results")
add(bp, "Results", "results.index", order=22)

from . import pages  # noqa: E402,F401  (register routes)

__all__ = ["bp"]
