"""Email over SMTP: Nudge's built-in email channel."""
from __future__ import annotations

from server.hookspecs import hookimpl

from .channel import EmailChannel

__version__ = "0.1.0"
__all__ = ["EmailChannel"]


@hookimpl
def register_channels(config):
    return [EmailChannel]
