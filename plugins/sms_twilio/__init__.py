"""SMS over Twilio: Nudge's built-in SMS channel, its delivery reports and the STOP/START/HELP keywords."""

from __future__ import annotations

from server.hookspecs import hookimpl

from .channel import SmsChannel

__version__ = "0.1.0"
__all__ = ["SmsChannel"]


@hookimpl
def register_channels(config):
    return [SmsChannel]


@hookimpl
def register_blueprints(app):
    from .views import bp

    # Twilio signs its requests (checked in the views); it cannot send our CSRF token
    app.config["CSRF_EXEMPT_BLUEPRINTS"] = (*app.config.get("CSRF_EXEMPT_BLUEPRINTS", ()), bp.name)
    return [bp]
