"""The Settings and Channels areas of the admin UI (admins only).

Settings: the sender, the public address, the default time zone, the frequency cap, teams and tracking, stored in
the database under the config file and the environment (``server.instance_settings``), with ``nudge doctor``'s
checks. Channels: the installed plugins and their versions, each channel's settings as a form generated from its
``config_schema`` (secrets write-only) and a "Test connection" button (``Channel.test_connection``).
"""

from __future__ import annotations

from ..access import admin_blueprint
from ..nav import add

bp = admin_blueprint("settings", __name__, url_prefix="/admin/settings")
add(bp, "Settings", "settings.index", order=85)
channels_bp = admin_blueprint("channels", __name__, url_prefix="/admin/channels")
add(channels_bp, "Channels", "channels.index", order=87)

from . import channels, pages  # noqa: E402,F401  (register routes)

__all__ = ["bp", "channels_bp"]
