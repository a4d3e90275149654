"""The Forms area of the admin UI: hosted sign-up forms (fields, double opt-in, the consent wording), their embed
code, and their submissions.

Viewers read everything; editors and admins create and change forms.
"""

from __future__ import annotations

from ..access import admin_blueprint
from ..nav import add

bp = admin_blueprint("form_admin", __name__, url_prefix="/admin/forms")
add(bp, "Forms", "form_admin.index", order=45)

from . import pages  # noqa: E402,F401  (register routes)

__all__ = ["bp"]
