"""Errors of the contact services; the API turns them into problem+json, the CLI into report lines."""

from __future__ import annotations


class InvalidInput(ValueError):
    """A value cannot be stored as given; ``field`` names it (``contact.email``, ``events[3].props``)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class Conflict(InvalidInput):
    """The input is well-formed but clashes with stored data (an email owned by another contact)."""
