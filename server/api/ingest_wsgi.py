"""The lean path of ``POST /api/v1/events`` and ``/events/batch``: a WSGI middleware in front of Flask.

Flask's request machinery (the request object, URL matching, the hooks, the response object) cost ~140 µs of CPU
of the ~840 a post took one at a time, more than the key look-up, the body check and the JSON reader together.
This middleware answers the plain case itself, with the very same steps and answer:

- the method, path and body limit of the endpoint, no query string, a JSON ``Content-Type`` and a
  ``Content-Length`` (a chunked body goes to Flask);
- the body read by the same JSON reader and checked by the endpoint's compiled schema check; the events checked and
  stored by :func:`~server.engine.groups.store_together`, committed and handed to the engine before the 202;
- the key (``Authorization: Bearer``, of the endpoint's scope) looked up on every request as
  :func:`~server.auth.quick_key` does (a revocation or an expiry counts from the next request), in the transaction
  that writes the events, on the connection that writes them (one look-up on a warm page cache, where a pooled
  connection read its pages again after every other connection's commit); a batch's key is also checked before
  its body (up to 8 MiB) is read, unless it let a request store within the last second (:data:`ADMITTED_FOR`);
- the settings saved in the admin UI re-read as before every request.

A request with a well-formed ``Idempotency-Key`` is answered here too: made once (:func:`~server.engine.groups.
store_once`, the key's API key id learnt when the key is looked up in the write's transaction), its 202, its replay
or its 422 for a key reused as Flask's path gives them.

Everything else goes to Flask untouched (the body handed on as read): any other error (a wrong key, scope, body,
size, query, content type, a malformed Idempotency-Key), a key whose last use is to be noted. So each error is
answered by the one code that answers it, and the 202 is byte for byte Flask's (tests/api/test_ingest_wsgi.py).
The database away, full or read-only is answered here by the app's own handler (503 or 507, one warning line a
post, no traceback: tests/api/test_ingest_wsgi_outage.py).
When the app carries request hooks this path does not know (a plugin's), every request goes to Flask.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

from flask import Flask, Response
from sqlalchemy.engine import Engine
from werkzeug.exceptions import InternalServerError

from ..auth import key_on, quick_key
from ..contacts.errors import InvalidInput
from ..db import database_trouble, get_session
from ..engine.groups import store_once, store_together
from ..engine.ingest import NotAdmitted, names_fields, prepare_events
from ..engine.once import Once, Reused
from ..instance_settings import refresh
from ..jsonbody import JsonInputError
from ..models import Scope
from ..sdk import parse_json
from . import PREFIX
from .events import BATCH, SINGLE, Route
from .idempotency import body_digest, endpoint_of, refused, replayed, valid_key
from .spec import REGISTRY, Operation, error_answer

log = logging.getLogger(__name__)

#: the request hooks whose effect on these two endpoints this path reproduces (none, or the nosniff header)
KNOWN_HOOKS = frozenset(
    {
        "server.web.security.init_app.<locals>._larger_body",  # no larger body declared for the API
        "server.instance_settings.init_app.<locals>._refresh",  # done here too
        "server.web.csrf.init_app.<locals>._check_csrf",  # /api/ is exempt
        "server.web.access.init_app.<locals>._admin_paths_declare_a_role",  # not an admin path
        "server.web.security.init_app.<locals>._headers",  # X-Content-Type-Options, added here too
        "server.web.flash.init_app.<locals>._flash_for_htmx",  # admin pages only
    }
)
#: how long a key that let a request store is taken as valid for reading its next batch's body (a key revoked
#: meanwhile is still refused, in the write's transaction, after reading at most this long of its bodies); the
#: look-up before the body cost ~350 µs of CPU a batch once other connections' commits reset its page cache
ADMITTED_FOR = 1.0
#: the tokens remembered at most (all forgotten at once past this)
ADMITTED_KEYS = 256
_HEADERS = [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")]
StartResponse = Callable[..., Any]


class LeanIngest:
    """WSGI middleware: answers plain event posts itself, hands everything else to *next_app* (Flask's)."""

    def __init__(self, app: Flask, next_app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]):
        self.app = app
        self.next = next_app
        ops = {(op.method, op.path): op for op in REGISTRY}
        self.routes: dict[str, tuple[Operation, Route]] = {
            PREFIX + path: (ops["POST", path], route) for path, route in (("/events", SINGLE), ("/events/batch", BATCH))
        }
        self._active: bool | None = None  # decided at the first request, when every hook is registered
        #: token -> when (``time.monotonic()``) its key last let a request store in this process (see ADMITTED_FOR)
        self._admitted: dict[str, float] = {}

    def _admitted_lately(self, token: str) -> bool:
        """Whether *token*'s key let a request store within :data:`ADMITTED_FOR`: its batch's body is then read
        without looking the key up first (the look-up in the write's transaction still decides)."""
        when = self._admitted.get(token)
        return when is not None and time.monotonic() - when < ADMITTED_FOR

    @property
    def active(self) -> bool:
        """Whether this path answers: not when the app has request hooks it does not know (a plugin's)."""
        if self._active is None:
            app = self.app
            unknown = sorted(
                name
                for funcs in (app.before_request_funcs, app.after_request_funcs)
                for scoped in (funcs.get(None, []), funcs.get("api", []))
                for name in (f"{f.__module__}.{f.__qualname__}" for f in scoped)
                if name not in KNOWN_HOOKS
            )
            self._active = not unknown and not app.url_value_preprocessors and not app.teardown_request_funcs
            if unknown:
                log.info("event posts go through Flask: request hooks %s apply to them", ", ".join(unknown))
        return self._active

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        found = self.routes.get(environ.get("PATH_INFO", "")) if environ.get("REQUEST_METHOD") == "POST" else None
        if found is None or not self.active:
            return self.next(environ, start_response)
        answer = self._answer(environ, *found)
        if answer is None:
            return self.next(environ, start_response)
        return answer(environ, start_response)

    def _answer(self, environ: dict[str, Any], op: Operation, route: Route) -> Any:
        """The answer to a plain post (a WSGI app), or None for Flask to answer (with the body put back)."""
        token = _plain_request(environ, op.max_body)
        check = op.check_body
        if token is None or check is None:
            return None
        engine: Engine = self.app.extensions["nudge.db"].engine
        scopes = (Scope.ADMIN.value, getattr(op.scope, "value", None))
        if route is BATCH and not self._admitted_lately(token):  # a body of up to 8 MiB is read for a valid key
            try:
                key = quick_key(engine, token)
            except Exception as exc:  # the database away, say: answered as Flask's path would (see _troubled)
                return self._troubled(environ, exc)
            if key is None or key.scope not in scopes:
                return None

        def admit(cursor: Any, engine: Engine) -> int | None:
            key = key_on(cursor, engine, token)
            if key is None or key.scope not in scopes:
                return None
            if len(self._admitted) >= ADMITTED_KEYS:
                self._admitted.clear()
            self._admitted[token] = time.monotonic()
            return key.id

        length = int(environ["CONTENT_LENGTH"])
        raw = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(raw)  # Flask reads it again if it answers
        try:
            body = check(parse_json(raw)) if len(raw) == length else None
        except (JsonInputError, InvalidInput):
            return None
        if body is None:
            return None
        with self.app.app_context():
            try:
                refresh(self.app, at_most_every=self.app.config["SETTINGS_RECHECK"])
                items = route.items(body)
                session = get_session() if names_fields(items) else None  # else none set up for the request
                prepared = prepare_events(
                    session, items, region=self.app.config.get("PHONE_REGION"), prefix=route.prefix, engine=engine
                )
                if session is not None and session.in_transaction():
                    session.commit()
            except Exception as exc:  # nothing written yet
                return self._troubled(environ, exc)
            if prepared.checked is None:  # an invalid event: Flask's path names it
                return None
            key = environ.get("HTTP_IDEMPOTENCY_KEY")
            try:
                if key is None:
                    payload = route.answer(store_together(prepared._replace(admit=admit)))
                else:  # the API key's id is learnt when admit looks it up
                    once = Once(0, key, endpoint_of("POST", environ["PATH_INFO"]), body_digest(body), 202, route.answer)
                    answered = store_once(prepared._replace(admit=admit, once=once))
                    if answered.replayed:
                        return _nosniff(replayed(answered.answer))
                    payload = answered.answer.payload
            except NotAdmitted:  # the key, looked up where the events are written: Flask's path says why not
                return None
            except Exception as exc:  # this request's events were not stored (all or none)
                response = error_answer(refused(exc) if isinstance(exc, Reused) else exc, op.method, op.path)
                if response is None:
                    return self._failed(environ, exc)
                return _nosniff(response)
            accepted = cast("Response", self.app.json.response(payload))  # Flask's jsonify
            return _Accepted(accepted.get_data())

    def _troubled(self, environ: dict[str, Any], exc: Exception) -> Any:
        """The answer to an error met before anything was stored: the database's trouble answered here, as Flask's
        path answers it (503 or 507), since Flask logs a traceback first for a driver's own error (a raw
        connection's, as :func:`~server.auth.quick_key` opens); None for Flask's path to answer any other error."""
        return self._failed(environ, exc) if database_trouble(exc) is not None else None

    def _failed(self, environ: dict[str, Any], exc: Exception) -> Any:
        """An unexpected error, answered (and logged) by Flask's own handlers as if the view had raised it.

        The database away, full, read-only or busy is answered by the app's 500 handler (503 or 507 with
        ``Retry-After``, one warning line), as on Flask's path, without ``handle_exception``, which would log a
        traceback first: one for every post while the database is away. Any other error is a bug: its traceback
        logged, a 500.
        """
        with self.app.request_context(environ):
            if database_trouble(exc) is not None:
                answer = self.app.handle_http_exception(InternalServerError(original_exception=exc))
                if not isinstance(answer, InternalServerError):  # else no handler answers it: a 500, as below
                    return self.app.finalize_request(answer, from_error_handler=True)
            return self.app.handle_exception(exc)


def _nosniff(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


class _Accepted:
    """The 202 as a WSGI app: the same status, headers and body as Flask's ``jsonify(payload), 202``."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def __call__(self, _environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("202 ACCEPTED", [_HEADERS[0], ("Content-Length", str(len(self.data))), _HEADERS[1]])
        return [self.data]


def _plain_request(environ: dict[str, Any], max_body: int) -> str | None:
    """The bearer token of a request this path may answer (see the module's docstring); None otherwise."""
    key = environ.get("HTTP_IDEMPOTENCY_KEY")
    if environ.get("QUERY_STRING") or (key is not None and not valid_key(key)):
        return None
    mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    if not (mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
        return None
    length = environ.get("CONTENT_LENGTH", "")
    if not length.isdigit() or not 0 < int(length) <= max_body or "HTTP_TRANSFER_ENCODING" in environ:
        return None
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


__all__ = ["KNOWN_HOOKS", "LeanIngest"]
