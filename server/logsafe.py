"""Logs name contacts and messages by id, never by address or phone number.

Nudge's own log lines pass ids; texts that come from outside (a provider's reply, an exception's message)
are masked with :func:`server.sdk.redact` where they are logged. :class:`Redact`, put on every handler
the ``nudge`` commands install, masks whatever slips through anyway — a traceback of a plugin's bug,
a library's message — before it is written.
"""

from __future__ import annotations

import logging

from .sdk import redact

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Redact(logging.Filter):
    """Masks email addresses and phone numbers in a record's message, traceback and stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it when the record is formatted
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr, as every ``nudge`` process does, through :class:`Redact`."""
    logging.basicConfig(level=level, format=FORMAT)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, Redact) for f in handler.filters):
            handler.addFilter(Redact())


__all__ = ["FORMAT", "Redact", "configure_logging"]
