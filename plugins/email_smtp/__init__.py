"""Email over SMTP: Nudge's built-in email channel and its bounce, complaint and mailto-unsubscribe endpoints."""

from __future__ import annotations

from server.hookspecs import hookimpl

from .channel import EmailChannel

__version__ = "0.2.0"
__all__ = ["EmailChannel"]


@hookimpl
def register_channels(config):
    return [EmailChannel]


@hookimpl
def register_blueprints(app):
    from .views import make_blueprint

    bp = make_blueprint()
    # providers POST here without a browser session: the shared secret authenticates them instead
    app.config["CSRF_EXEMPT_BLUEPRINTS"] = (*app.config.get("CSRF_EXEMPT_BLUEPRINTS", ()), bp.name)
    return [bp]
