"""The JSON API, version 1."""
from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from . import events  # noqa: E402,F401  (registers routes)

__all__ = ["bp"]
