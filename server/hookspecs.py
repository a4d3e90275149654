"""Hook specifications: the whole plugin API of Nudge.

Hooks are always called with keyword arguments; new arguments are only ever
added, so a plugin implementing an older signature keeps working (pluggy passes
each implementation only the arguments it names).
"""

from __future__ import annotations

import pluggy

PROJECT = "nudge"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_channels(config):
    """Return channel classes (subclasses of :class:`server.sdk.Channel`) this plugin provides.

    Called once per app, while ``create_app()`` builds the plugin manager (also by ``nudge plugins``).
    Each channel's ``config_schema`` is validated right after, its ``events`` join the rules
    language's vocabulary and the channel becomes available to ``send <channel> <template>``.
    ``nudge doctor`` (and the start-up log of ``nudge up``/``web``/``worker``) calls each channel's
    ``diagnose(in_use=…)`` on an instance built with the instance settings: the channel's own checks,
    as :class:`server.sdk.Check` objects, ``error`` when they block sending.

    :param config: the instance settings (read-only mapping, keys without the ``NUDGE_`` prefix).
    :return: a list of classes; each ``name`` must be unique across all plugins.
    """


@hookspec
def register_triggers(config):
    """Return trigger sources: :class:`server.sdk.Trigger` subclasses or instances declaring the events they raise.

    Called once per app, while ``create_app()`` builds the plugin manager. The declared
    events join the rules language's vocabulary (``when shop.order_paid then …``); the
    endpoints that receive them come through :func:`register_blueprints`.

    :param config: the instance settings (read-only mapping).
    :return: a list of trigger classes or instances, each with a ``name`` and ``events``.
    """


@hookspec
def register_actions(config):
    """Return extra steps for the rules language (e.g. a CRM push).

    Called once per app, while ``create_app()`` builds the plugin manager; the step names
    join the language checker's vocabulary and the engine runs them by name.

    :param config: the instance settings (read-only mapping).
    :return: a list of :class:`server.sdk.Action` subclasses or instances, each with a ``name``
        and a ``run(contact, args)`` method.
    """


@hookspec
def register_condition_functions(config):
    """Return functions usable in rule conditions (``when form.submitted and domain(contact.email) == "example.com"``).

    Called once per app, while ``create_app()`` builds the plugin manager (also by ``nudge check``).
    Each declaration is checked then (a bad one skips the plugin, logged). The declared types join
    the language checker's vocabulary, which types every call; the engine calls the implementation
    when it evaluates a condition (a failure makes the call unknown and is written to the journey log);
    segments, counted by the database, may only call functions with an SQL form for its dialect.

    :param config: the instance settings (read-only mapping).
    :return: a list of :class:`server.sdk.ConditionFunction` declarations (name, parameter types,
        result type, implementation, optional SQL forms); each name must be unique across all plugins.
    """


@hookspec
def register_blueprints(app):
    """Return Flask blueprints with the plugin's own pages and endpoints.

    Called once, near the end of ``create_app()``, before the first request. Endpoints that
    take machine-made POSTs (provider callbacks) add their blueprint name to
    ``app.config["CSRF_EXEMPT_BLUEPRINTS"]`` and authenticate the caller themselves.

    :param app: the Flask application being built.
    :return: a list of :class:`flask.Blueprint` objects.
    """


@hookspec
def register_template_filters(config):
    """Return Jinja2 filters available in message templates (``{{ contact.first_name|initial }}``).

    Called once per app, when the sandboxed template environment is first built. Filters
    receive and return plain data; they run inside the render time and size limits.

    :param config: the instance settings (read-only mapping).
    :return: a dict mapping filter name to a callable.
    """


@hookspec
def startup(app):
    """Run once when the app has been built (web, worker and scheduler processes alike).

    Called as the last step of ``create_app()``, after blueprints are registered.

    :param app: the fully built Flask application.
    :return: nothing (the return value is ignored).
    """
