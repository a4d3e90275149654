"""What the app tells Nudge: the events its backend raises, and functions rules may call on their data."""

import re

from server.hookspecs import hookimpl
from server.sdk import ConditionFunction, Trigger


class AppEvents(Trigger):
    """The mobile app's backend posts these to ``POST /api/v1/events``; declaring them lets rules name them."""

    name = "app"
    events = ("app.installed", "app.opened", "app.updated")
    description = "the app's own events, with props `version` and `platform`"


def version_at_least(version, minimum):
    """Whether version text ``2.10.1`` is at least ``2.9``, number by number (``2.10`` > ``2.9``)."""

    def numbers(text):
        found = re.match(r"\d+(\.\d+)*", text.strip())
        if found is None:
            raise ValueError(f"{text!r} is not a version such as 2.3.1")
        return [int(part) for part in found.group().split(".")]

    return numbers(version) >= numbers(minimum)


def email_domain(address):
    """What follows the first ``@``, lowercased: what both SQL forms below give."""
    return address[address.find("@") + 1 :].lower()


@hookimpl
def register_triggers(config):
    return [AppEvents]


@hookimpl
def register_condition_functions(config):
    return [
        ConditionFunction(
            "version_at_least",
            ("string", "string"),
            "bool",
            version_at_least,
            description="whether an app version is at least the one given",
        ),
        ConditionFunction(
            "email_domain",
            ("string",),
            "string",
            email_domain,
            sql={
                "sqlite": "lower(substr({0}, instr({0}, '@') + 1))",
                "postgresql": "lower(substr({0}, strpos({0}, '@') + 1))",
            },
            description="the domain of an email address, lowercased",
        ),
    ]
