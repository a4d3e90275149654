"""Sign-in answers take as long for an unknown address as for a known one (issue #9, point 16).

CPU time of failed sign-ins for an address with no account against the same for the admin's
address with a wrong password, in the same run. Target: the ratio is between 0.8 and 1.25 (before
the dummy-hash check an unknown address answered in 3–14 ms against 180–780 ms for a known one).
The throttle's clock moves two hours between attempts, so that it never answers instead.
Run: .venv/bin/python bench/bench_signin.py [--attempts 20]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_app
from bench.table import Row, render
from server.auth import ensure_first_admin
from server.db import get_session


def cpu_per_attempt(app, email: str, attempts: int) -> float:
    client = app.test_client()
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    moments = iter(range(0, 10**9, 7200))
    app.extensions["nudge.signin"].clock = lambda: float(next(moments))
    start = time.process_time()
    for _ in range(attempts):
        response = client.post("/admin/login", data={"email": email, "password": "wrong", "csrf_token": token})
        assert response.status_code == 401, response.status_code
    return (time.process_time() - start) / attempts


def measure(attempts: int) -> list[Row]:
    """CPU per failed sign-in for an unknown address next to the same for a known one."""
    with bench_app() as app:
        with app.app_context():
            ensure_first_admin(get_session())
        cpu_per_attempt(app, "warm-up@example.com", 2)  # builds the dummy hash once
        known = cpu_per_attempt(app, "admin@localhost", attempts)
        unknown = cpu_per_attempt(app, "nobody@example.com", attempts)
    ratio = unknown / known
    return [
        Row(
            f"sign-in: CPU per failed attempt, unknown address ({attempts} attempts)",
            unknown * 1000,
            "ms",
            known * 1000,
            "a known address, wrong password",
            "0.8x-1.25x baseline",
            0.8 <= ratio <= 1.25,
        )
    ]


def rows(full: bool) -> list[Row]:
    return measure(20 if full else 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=20)
    print(render(measure(parser.parse_args().attempts)))


if __name__ == "__main__":
    main()
