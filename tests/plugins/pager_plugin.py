"""A third party's channel for the tests of ``nudge doctor``: it checks its own set-up through ``diagnose``."""

from server.hookspecs import hookimpl
from server.sdk import Channel, Check, SendResult


class PagerChannel(Channel):
    name = "pager"
    address_field = "phone"
    config_schema = {"PAGER_TOKEN": {"type": "string", "secret": True, "help": "the pager gateway's API token"}}

    def send(self, message):
        return SendResult(provider_id=f"page-{message.key}")

    def diagnose(self, *, in_use):
        if self.config.get("PAGER_TOKEN"):
            return [Check("pager: token", "ok", "set")]
        return [Check("pager: token", "error" if in_use else "warn", "not set; set NUDGE_PAGER_TOKEN")]


@hookimpl
def register_channels(config):
    return [PagerChannel]
