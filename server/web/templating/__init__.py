"""The templates area of the admin UI: every channel's templates, an editor showing the parts each channel declares
(so a third-party channel gets one too), validation in the renderer's sandbox, a live preview for a chosen or
sample contact, a test send through the real channel, and which rules use each template.

Viewers read templates and their previews; editors and admins create, change, delete and test-send them.
"""

from __future__ import annotations

from ..access import admin_blueprint
from ..nav import add

bp = admin_blueprint("templates", __name__, url_prefix="/admin/templates")
add(bp, "Templates", "templates.index", order=25)

from . import pages, preview  # noqa: E402,F401  (register routes)

__all__ = ["bp"]
