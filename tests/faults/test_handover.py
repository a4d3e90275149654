"""``unknown`` only when it truly is: a worker killed with -9 while the SMTP server has the message leaves an
ambiguous row, held as ``unknown`` (``NUDGE_AMBIGUOUS_SENDS=hold``) or sent again (``resend``). Counted on what the
SMTP server received, with real worker and scheduler processes. (A worker killed before the hand-over:
``test_handover_postgres.py``.)"""

from __future__ import annotations

import pytest

from ..helpers import api_key, post_event
from .journey import install_series, message_of, recipients, wait_until

pytestmark = pytest.mark.slow

ONE_STEP = 'rule "Welcome"\nwhen signup.completed then\n  send email a\nend\n'
SETTINGS = {"SCHEDULER_INTERVAL": 0.2, "REQUEUE_AFTER": 1, "LOG_LEVEL": "WARNING"}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("policy", ["hold", "resend"])
def test_a_worker_killed_while_the_server_has_the_message_leaves_it_ambiguous(
    app, client, holding_smtp, processes, policy
):
    install_series(app, ONE_STEP)
    key = api_key(app)
    procs = processes(**SETTINGS, AMBIGUOUS_SENDS=policy)
    procs.start("scheduler")
    holding_smtp.handler.holding = True
    worker = procs.start("worker")
    post_event(client, key, email="x@example.com", event="signup.completed")
    assert holding_smtp.handler.held.wait(60), f"no send reached DATA\n{procs.tail()}"
    procs.kill(worker)  # the server has every byte; the worker never heard whether it was accepted
    holding_smtp.handler.holding = False
    procs.start("worker")

    settled = "unknown" if policy == "hold" else "sent"
    wait_until(
        lambda: (message_of(app, "x@example.com") or ("",))[0] == settled,
        60,
        lambda: f"{message_of(app, 'x@example.com')}\n{procs.tail()}",
    )
    # later work goes through, and the scheduler has ticked many times meanwhile
    post_event(client, key, email="y@example.com", event="signup.completed")
    wait_until(  # the worker records the send once the server has answered: after the server has it
        lambda: recipients(holding_smtp)["y@example.com"] == 1 and message_of(app, "y@example.com")[0] == "sent",
        60,
        lambda: f"{message_of(app, 'y@example.com')}\n{procs.tail()}",
    )

    status, history = message_of(app, "x@example.com")
    got = recipients(holding_smtp)
    if policy == "hold":  # never sent twice: an operator decides (nudge messages resend)
        assert (status, got["x@example.com"]) == ("unknown", 1)
        assert history[-1][0] == "unknown" and "the provider may have it" in history[-1][1]
    else:  # never lost, at the price of the rare duplicate the setting accepts
        assert (status, got["x@example.com"]) == ("sent", 2)
        assert ("pending", "the provider may have it; sent again (NUDGE_AMBIGUOUS_SENDS=resend)") in history
    assert got["y@example.com"] == 1 and message_of(app, "y@example.com")[0] == "sent"
