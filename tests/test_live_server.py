"""The browser tests' live server (tests/servers.py ``serving``): a request still being served when a test ends
finishes before the server is gone, its database connection back in the app's pool before the app is disposed.

A request left running held a connection of a pool the app's ``dispose()`` had already let go; collected later with
that pool, the connection was closed by nobody, and psycopg's ``ResourceWarning`` failed whichever test was running.
"""

from __future__ import annotations

import threading
import urllib.request

from sqlalchemy import text

from server.db import get_session

from .servers import free_port, serving


def test_a_request_in_flight_when_the_server_stops_ends_and_gives_its_connection_back(app):
    entered, release = threading.Event(), threading.Event()

    @app.get("/_test/slow")
    def slow():
        get_session().execute(text("SELECT 1"))  # a connection checked out for the request
        entered.set()
        release.wait(30)
        return "done"

    pool = app.extensions["nudge.db"].engine.pool
    server = serving(app, free_port())
    url = server.__enter__()
    answers: list[bytes] = []
    fetch = threading.Thread(target=lambda: answers.append(urllib.request.urlopen(url + "/_test/slow").read()))
    fetch.start()
    assert entered.wait(30)
    checked_out: list[int] = []

    def stop() -> None:
        server.__exit__(None, None, None)
        checked_out.append(pool.checkedout())  # what the app's dispose() would find now

    stopping = threading.Thread(target=stop)
    stopping.start()
    stopping.join(0.5)
    assert stopping.is_alive()  # still waiting for the request
    release.set()
    stopping.join(30)
    fetch.join(30)
    assert checked_out == [0]
    assert answers == [b"done"]  # its answer was sent before the server closed
