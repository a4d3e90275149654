"""A channel declares whether its provider confirms deliveries (``delivery_receipts``); the core reads that
declaration, never the channel's name, and start-up refuses a declaration that cannot be true."""

from __future__ import annotations

import pytest

from server.hookspecs import hookimpl
from server.plugins import DEFAULT_PLUGINS, PluginError
from server.sdk import Channel, SendResult, declaration_problems
from server.web.results.view import unreported_deliveries


class Pager(Channel):
    """A third party's channel whose gateway reports ``pager.delivered``."""

    name = "pager"
    events = ("pager.delivered",)

    def send(self, message):
        return SendResult(provider_id=f"page-{message.key}")


class Fax(Pager):
    """Its provider takes the message and says nothing more."""

    name = "fax"
    events = ()


class Relay(Pager):
    """It can report deliveries, where an operator sets reports up, but does not as a rule (like SMTP)."""

    name = "relay"
    events = ("relay.delivered",)
    delivery_receipts = False


class PagerPlugin:
    name = "pager-plugin"

    def __init__(self, channel):
        self.channel = channel

    @hookimpl
    def register_channels(self, config):
        return [self.channel]


def test_the_declaration_or_the_delivered_event_says_whether_deliveries_are_reported():
    assert (Pager.reports_deliveries(), Fax.reports_deliveries(), Relay.reports_deliveries()) == (True, False, False)
    assert unreported_deliveries({"pager": Pager, "fax": Fax, "relay": Relay}) == {"fax", "relay"}
    assert declaration_problems(Relay) == [] and declaration_problems(Fax) == []


@pytest.mark.parametrize(
    ("receipts", "events", "problem"),
    [
        ("yes", ("pager.delivered",), r"channel 'pager' declares delivery_receipts = 'yes'; use True, False or None"),
        (True, (), r"channel 'pager' declares delivery_receipts = True, but pager.delivered is not in its events"),
    ],
)
def test_a_declaration_that_cannot_be_true_stops_start_up_naming_the_channel(start_up, receipts, events, problem):
    broken = type("Broken", (Pager,), {"delivery_receipts": receipts, "events": events})
    with pytest.raises(PluginError, match=problem):
        start_up(PLUGINS=(*DEFAULT_PLUGINS, PagerPlugin(broken)))
