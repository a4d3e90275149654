"""WSGI entry point: ``waitress-serve wsgi:app`` or any WSGI server."""

from server.app import create_app

app = create_app(create=False)  # serve an existing instance, never a new empty one
