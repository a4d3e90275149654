"""A worker process for the pacing tests: deliver what is due at the engine time given, then exit.

``python -m tests.plugins.pace_worker NOW`` with the app's settings as JSON in ``PACE_CONFIG``; prints how many
messages it sent. Several of these at once are real processes sharing the database, Redis and the provider.
"""

from __future__ import annotations

import json
import os
import sys

from server.app import create_app
from server.db import get_session
from server.engine.outbox import deliver


def main() -> None:
    now = int(sys.argv[1])
    app = create_app(json.loads(os.environ["PACE_CONFIG"]))
    try:
        with app.app_context():
            sys.stdout.write(f"{deliver(get_session(), app, [], now=now, more=100)}\n")
    finally:
        app.extensions["nudge.queue"].close()
        app.extensions["nudge.db"].dispose()


if __name__ == "__main__":
    main()
