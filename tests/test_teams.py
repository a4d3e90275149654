"""Reading the teams setting: a member's channel name is matched whole (a trailing newline is no part of a name)."""

from __future__ import annotations

import re

import pytest

from server.teams import Member, parse_teams


def test_members_are_email_addresses_or_channel_targets():
    teams = parse_teams({"ops": ["webhook:ops-hook", "ana@x.example"]})
    assert teams == {"ops": (Member("ops-hook", "webhook"), Member("ana@x.example"))}


@pytest.mark.parametrize(
    ("member", "refusal"),
    [
        ("webhook\n:ops-hook", "must be CHANNEL:TARGET such as webhook:ops-hook"),
        ("ana@x.example\nbob@x.example", "is neither an email address nor CHANNEL:TARGET"),
    ],
)
def test_a_member_with_a_newline_inside_is_refused(member, refusal):
    with pytest.raises(ValueError, match=re.escape(refusal)):
        parse_teams({"ops": [member]})
