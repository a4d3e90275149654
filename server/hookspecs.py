"""Hook specifications: the whole plugin API of Nudge.

Hooks are always called with keyword arguments; new arguments are only ever
added, so a plugin implementing an older signature keeps working.
"""
from __future__ import annotations

import pluggy

PROJECT = "nudge"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_channels(config):
    """Return channel classes (subclasses of :class:`server.sdk.Channel`) this plugin provides.

    Called once per app, while ``create_app()`` builds the plugin manager.

    :param config: the instance settings (read-only mapping, keys without the ``NUDGE_`` prefix).
    :return: a list of classes; each ``name`` must be unique across all plugins.
    """


@hookspec
def register_triggers(config):
    """Return trigger sources: objects with a ``name`` and a Flask blueprint or callable that raises events.

    Called once per app, while ``create_app()`` builds the plugin manager.

    :param config: the instance settings (read-only mapping).
    :return: a list of trigger source objects.
    """


@hookspec
def register_actions(config):
    """Return extra steps for the rules language (e.g. a CRM push).

    Called once per app; the step names join the language checker's vocabulary.

    :param config: the instance settings (read-only mapping).
    :return: a list of action objects, each with a ``name`` and a ``run(contact, args)`` method.
    """


@hookspec
def register_condition_functions(config):
    """Return functions usable in rule conditions.

    Called once per app; names join the language checker's vocabulary.

    :param config: the instance settings (read-only mapping).
    :return: a dict mapping function name to a pure callable.
    """


@hookspec
def register_blueprints(app):
    """Return Flask blueprints with the plugin's own pages and endpoints.

    Called once, at the end of ``create_app()``, before the first request.

    :param app: the Flask application being built.
    :return: a list of :class:`flask.Blueprint` objects.
    """


@hookspec
def register_template_filters(config):
    """Return Jinja2 filters available in message templates.

    Called once per app, when the template environment is built.

    :param config: the instance settings (read-only mapping).
    :return: a dict mapping filter name to a callable.
    """


@hookspec
def startup(app):
    """Run once when the app has been built (web, worker and scheduler processes alike).

    :param app: the fully built Flask application.
    :return: nothing.
    """
