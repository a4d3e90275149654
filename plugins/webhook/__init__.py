"""Webhooks: signed outbound calls (the ``webhook`` channel) and signed inbound payloads (a trigger)."""

from __future__ import annotations

from server.hookspecs import hookimpl

from .channel import WebhookChannel

__version__ = "0.1.0"
__all__ = ["WebhookChannel"]


@hookimpl
def register_channels(config):
    return [WebhookChannel]


@hookimpl
def register_triggers(config):
    from .inbound import InboundWebhooks

    return [InboundWebhooks]


@hookimpl
def register_blueprints(app):
    from .inbound import bp

    # senders prove themselves with the Standard Webhooks signature; they cannot send our CSRF token
    app.config["CSRF_EXEMPT_BLUEPRINTS"] = (*app.config.get("CSRF_EXEMPT_BLUEPRINTS", ()), bp.name)
    return [bp]
