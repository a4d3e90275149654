"""The examples of docs/language.md, run on the virtual clock: each does what the text around it says.

The programs are read from the document itself (tests/dsl/test_docs.py checks that every one of them checks), so an
example edited there is run here as written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from server.simulation import simulate

DOC = (Path(__file__).resolve().parents[2] / "docs" / "language.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```nudge\n(.*?)^```", DOC, flags=re.M | re.S)


def example(start: str) -> str:
    """The one ```nudge block of the reference that starts with *start*."""
    [found] = [block for block in BLOCKS if block.startswith(start)]
    return found


def worked(title: str) -> str:
    """The worked program under ``### title``."""
    match = re.search(rf"^### {re.escape(title)}\n\n```nudge\n(.*?)^```", DOC, flags=re.M | re.S)
    assert match, f"docs/language.md has no worked program {title!r}"
    return match.group(1)


def run(rules: str, timeline: list[dict[str, Any]], until: str) -> list[tuple[str, ...]]:
    """The run's effects as ``(at, contact, rule, action, what)``; enter lines left out."""
    effects = simulate([("language.md", rules)], [json.dumps(line) for line in timeline], until=until)
    shown = []
    for e in effects:
        if e["action"] == "enter":
            continue
        what = e.get("template") or e.get("tag") or e.get("text") or e.get("reason") or e.get("value") or e.get("delta")
        shown.append((e["at"], e["contact"], e["rule"], e["action"], str(what)))
    return shown


def person(at: str, contact: str, **values: Any) -> dict[str, Any]:
    return {"at": at, "contact": contact, "set": {"email": f"{contact}@example.com", **values}}


def event(at: str, contact: str, name: str, **props: Any) -> dict[str, Any]:
    return {"at": at, "contact": contact, "event": name, "props": props}


def acts(effects: list[tuple[str, ...]], *actions: str) -> list[tuple[str, ...]]:
    return [e for e in effects if e[3] in actions]


# -- the opening example and the worked programs ----------------------------------------------------------------
def test_welcome_series_sends_the_branch_the_contact_earned_and_keeps_vips_out():
    rules = worked("Welcome series")
    assert BLOCKS[0].replace("  quiet hours 21:00-08:00\n", "") == rules, "the opening example is the worked program"
    effects = run(
        BLOCKS[0],
        [
            person("2026-05-04T10:00:00Z", "ana"),
            person("2026-05-04T10:00:00Z", "bo"),
            person("2026-05-04T10:00:00Z", "vip", tags=["vip"]),
            person("2026-05-04T10:00:00Z", "cy"),
            event("2026-05-04T10:00:00Z", "ana", "member.joined"),
            event("2026-05-04T10:00:00Z", "bo", "member.joined"),
            event("2026-05-04T10:00:00Z", "vip", "member.joined"),
            event("2026-05-04T10:00:00Z", "cy", "member.joined"),
            event("2026-05-06T18:00:00Z", "ana", "class.attended"),
            event("2026-05-08T12:00:00Z", "cy", "purchase.completed"),
            event("2026-06-20T10:00:00Z", "bo", "member.joined"),  # once per contact
        ],
        until="2026-07-01T00:00:00Z",
    )
    assert acts(effects, "send", "exit") == [
        ("2026-05-04T10:00:00Z", "ana", "Welcome series", "send", "welcome"),
        ("2026-05-04T10:00:00Z", "bo", "Welcome series", "send", "welcome"),
        ("2026-05-04T10:00:00Z", "cy", "Welcome series", "send", "welcome"),
        ("2026-05-07T10:00:00Z", "ana", "Welcome series", "send", "keep_going"),
        ("2026-05-07T10:00:00Z", "bo", "Welcome series", "send", "getting_started"),
        ("2026-05-07T10:00:00Z", "cy", "Welcome series", "send", "getting_started"),
        ("2026-05-08T12:00:00Z", "cy", "Welcome series", "exit", "goal"),
        ("2026-05-14T10:00:00Z", "ana", "Welcome series", "send", "trainer_intro"),
        ("2026-05-14T10:00:00Z", "ana", "Welcome series", "exit", "completed"),
        ("2026-05-14T10:00:00Z", "bo", "Welcome series", "send", "trainer_intro"),
        ("2026-05-14T10:00:00Z", "bo", "Welcome series", "exit", "completed"),
    ]


def test_trial_follow_up_texts_a_day_later_outside_quiet_hours_then_waits_for_the_purchase():
    sms = {"phone": "+14155550100", "timezone": "America/Los_Angeles", "consent": {"sms": "granted"}}
    effects = run(
        worked("Trial follow-up 24 hours after a visit"),
        [
            person("2026-05-01T00:00:00Z", "ana", **sms),
            person("2026-05-01T00:00:00Z", "bo", **sms),
            person("2026-05-01T00:00:00Z", "cy", **sms),
            event("2026-05-02T05:00:00Z", "ana", "visit.completed", kind="trial"),  # 22:00 in Los Angeles
            event("2026-05-02T18:00:00Z", "bo", "visit.completed", kind="trial"),
            event("2026-05-02T18:00:00Z", "cy", "visit.completed", kind="class"),
            event("2026-05-04T18:00:00Z", "bo", "membership.purchased"),
            event("2026-05-10T18:00:00Z", "bo", "visit.completed", kind="trial"),  # once per contact
        ],
        until="2026-06-01T00:00:00Z",
    )
    assert acts(effects, "send", "tag") == [
        ("2026-05-03T15:00:00Z", "ana", "Trial follow-up", "send", "how_was_it"),  # 24h on is 22:00: at 08:00
        ("2026-05-03T18:00:00Z", "bo", "Trial follow-up", "send", "how_was_it"),
        ("2026-05-04T18:00:00Z", "bo", "Trial follow-up", "tag", "converted"),
        ("2026-05-06T15:00:00Z", "ana", "Trial follow-up", "send", "trial_offer"),
    ]


def test_birthday_greets_contacts_with_an_email_at_nine_local():
    effects = run(
        worked("Birthday"),
        [
            person("2026-05-01T00:00:00Z", "ana", birthday="1990-05-10", timezone="Europe/Berlin"),
            {
                "at": "2026-05-01T00:00:00Z",
                "contact": "bo",
                "set": {"phone": "+4915112345678", "birthday": "1990-05-10"},
            },
        ],
        until="2026-06-01T00:00:00Z",
    )
    assert acts(effects, "send", "tag") == [
        ("2026-05-10T07:00:00Z", "ana", "Birthday", "send", "happy_birthday"),
        ("2026-05-10T07:00:00Z", "ana", "Birthday", "tag", "birthday-greeted"),
    ]


def test_win_back_after_fourteen_quiet_days_ends_when_the_member_comes_back():
    effects = run(
        worked("Win-back after 14 quiet days"),
        [
            person("2026-05-01T00:00:00Z", "ana", stage="member"),
            person("2026-05-01T00:00:00Z", "bo", stage="member"),
            person("2026-05-01T00:00:00Z", "lead", stage="lead"),
            event("2026-05-01T10:00:00Z", "ana", "class.attended"),
            event("2026-05-17T10:00:00Z", "ana", "class.attended"),  # the goal; re-arms the timer for 31 May
        ],
        until="2026-07-15T00:00:00Z",
    )
    assert acts(effects, "send", "tag", "exit") == [
        ("2026-05-15T00:00:00Z", "bo", "Win-back", "send", "we_miss_you"),  # 14 days after creation
        ("2026-05-15T10:00:00Z", "ana", "Win-back", "send", "we_miss_you"),
        ("2026-05-17T10:00:00Z", "ana", "Win-back", "exit", "goal"),
        # ana's next quiet spell (31 May) is within 60 days of her entry: the entry policy keeps her out
        ("2026-05-20T00:00:00Z", "bo", "Win-back", "send", "free_class_offer"),
        ("2026-05-27T00:00:00Z", "bo", "Win-back", "tag", "lapsed"),
        ("2026-05-27T00:00:00Z", "bo", "Win-back", "exit", "completed"),
    ]


def test_renewal_reminders_a_week_and_a_day_before_at_ten_local():
    sms = {"phone": "+12015550100", "timezone": "America/New_York", "consent": {"sms": "granted"}}
    effects = run(
        worked("Renewal reminders, 7 days and 1 day before"),
        [
            person("2026-05-01T00:00:00Z", "ana", renewal_date="2026-05-20", **sms),
            person("2026-05-01T00:00:00Z", "bo", renewal_date="2026-05-20", tags=["auto-renew"]),
            person("2026-05-01T00:00:00Z", "cy", renewal_date="2026-05-20"),
            event("2026-05-15T12:00:00Z", "cy", "renewal.completed"),
            person("2026-05-15T12:00:00Z", "cy", renewal_date="2027-05-20"),  # the app moves the date on
        ],
        until="2026-06-01T00:00:00Z",
    )
    assert acts(effects, "send") == [
        ("2026-05-13T10:00:00Z", "bo", "Renewal in a week", "send", "renewal_week"),
        ("2026-05-13T10:00:00Z", "cy", "Renewal in a week", "send", "renewal_week"),
        ("2026-05-13T14:00:00Z", "ana", "Renewal in a week", "send", "renewal_week"),
        ("2026-05-19T14:00:00Z", "ana", "Renewal tomorrow", "send", "renewal_tomorrow"),
        ("2026-05-19T14:00:00Z", "ana", "Renewal tomorrow", "send", "renewal_tomorrow"),
    ]


def test_at_risk_members_are_tagged_after_three_quiet_weeks_and_untagged_when_back():
    effects = run(
        worked("At-risk tagging"),
        [
            person("2026-05-01T00:00:00Z", "ana", first_name="Ana", stage="member"),
            person("2026-05-01T00:00:00Z", "bo", first_name="Bo", stage="lead"),
            event("2026-05-01T10:00:00Z", "ana", "class.attended", date="1 May"),
            event("2026-05-01T10:00:00Z", "bo", "class.attended", date="1 May"),
            event("2026-05-30T10:00:00Z", "ana", "class.attended", date="30 May"),
        ],
        until="2026-06-01T00:00:00Z",
    )
    assert acts(effects, "tag", "untag", "task", "note") == [
        # 1 May 10:00 + 21 days is after 06:00 on 22 May: the 23 May run tags her, once
        ("2026-05-23T06:00:00Z", "ana", "Mark at risk", "tag", "at-risk"),
        ("2026-05-23T06:00:00Z", "ana", "Mark at risk", "task", "Check in with Ana"),
        ("2026-05-30T10:00:00Z", "ana", "Back from risk", "untag", "at-risk"),
        ("2026-05-30T10:00:00Z", "ana", "Back from risk", "note", "Came back on 30 May"),
    ]


def test_lead_scoring_hands_a_lead_to_sales_once_when_the_score_crosses_fifty():
    effects = run(
        worked("Lead scoring with hand-off to sales"),
        [
            person("2026-05-01T00:00:00Z", "ana", first_name="Ana"),
            event("2026-05-01T10:00:00Z", "ana", "page.visited", url="https://example.com/pricing"),
            event("2026-05-01T10:05:00Z", "ana", "form.submitted", form="demo"),
            event("2026-05-01T10:06:00Z", "ana", "page.visited", url="https://example.com/pricing"),
            event("2026-05-01T10:07:00Z", "ana", "form.submitted", form="demo"),
        ],
        until="2026-07-15T00:00:00Z",
    )
    assert acts(effects, "score", "set", "task", "notify") == [
        ("2026-05-01T10:00:00Z", "ana", "Pricing interest", "score", "10"),
        ("2026-05-01T10:05:00Z", "ana", "Demo interest", "score", "30"),
        ("2026-05-01T10:06:00Z", "ana", "Pricing interest", "score", "10"),
        ("2026-05-01T10:06:00Z", "ana", "Sales hand-off", "set", "sql"),
        ("2026-05-01T10:06:00Z", "ana", "Sales hand-off", "task", "Call Ana about pricing"),
        ("2026-05-01T10:06:00Z", "ana", "Sales hand-off", "notify", "Hot lead: ana@example.com (score 50)"),
        ("2026-05-01T10:07:00Z", "ana", "Demo interest", "score", "30"),
        # 30 quiet days after the last visit, once: the next quiet spell needs a visit first
        ("2026-05-31T10:06:00Z", "ana", "Cold", "score", "-10"),
    ]


# -- the examples beside each construct ----------------------------------------------------------------------
def test_a_goal_where_reads_the_goal_event():
    effects = run(
        example('rule "Cart reminder"'),
        [
            person("2026-05-01T00:00:00Z", "ana"),
            person("2026-05-01T00:00:00Z", "bo"),
            event("2026-05-01T10:00:00Z", "ana", "cart.abandoned"),
            event("2026-05-01T10:00:00Z", "bo", "cart.abandoned"),
            event("2026-05-01T11:00:00Z", "ana", "purchase.completed", total=30),
            event("2026-05-01T11:00:00Z", "bo", "purchase.completed", total=0),
        ],
        until="2026-05-03T00:00:00Z",
    )
    assert acts(effects, "send", "exit") == [
        ("2026-05-01T11:00:00Z", "ana", "Cart reminder", "exit", "goal"),
        ("2026-05-01T14:00:00Z", "bo", "Cart reminder", "send", "cart_reminder"),
        ("2026-05-01T14:00:00Z", "bo", "Cart reminder", "exit", "completed"),
    ]


def test_a_tag_added_event_carries_the_tag():
    effects = run(
        example('when tag.added and event.tag == "vip" then'),
        [
            person("2026-05-01T00:00:00Z", "ana", tags=["vip"]),
            person("2026-05-01T00:00:00Z", "bo", tags=["regular"]),
        ],
        until="2026-05-02T00:00:00Z",
    )
    assert acts(effects, "notify") == [
        ("2026-05-01T00:00:00Z", "ana", "language.md:1", "notify", "New VIP: ana@example.com"),
    ]


def test_a_weekly_schedule_fires_at_its_local_time_for_the_contacts_matching():
    effects = run(
        example('when every monday at 08:30 and contact.stage == "lead" then'),
        [
            person("2026-05-01T00:00:00Z", "ana", stage="lead", timezone="Europe/Berlin"),
            person("2026-05-01T00:00:00Z", "bo", stage="lead"),
            person("2026-05-01T00:00:00Z", "cy", stage="member"),
        ],
        until="2026-05-12T00:00:00Z",
    )
    assert acts(effects, "send") == [
        ("2026-05-04T06:30:00Z", "ana", "language.md:1", "send", "weekly_digest"),  # 08:30 CEST, Monday 4 May
        ("2026-05-04T08:30:00Z", "bo", "language.md:1", "send", "weekly_digest"),  # no zone: the default, UTC
        ("2026-05-11T06:30:00Z", "ana", "language.md:1", "send", "weekly_digest"),
        ("2026-05-11T08:30:00Z", "bo", "language.md:1", "send", "weekly_digest"),
    ]


def test_did_counts_the_pricing_visits_within_the_window():
    effects = run(
        example("when page.visited and did page.visited where"),
        [
            person("2026-05-01T00:00:00Z", "ana"),
            event("2026-05-01T10:00:00Z", "ana", "page.visited", url="/pricing"),
            event("2026-05-02T10:00:00Z", "ana", "page.visited", url="/blog"),
            event("2026-05-03T10:00:00Z", "ana", "page.visited", url="/pricing"),
            event("2026-05-09T10:00:00Z", "ana", "page.visited", url="/pricing"),  # the first is 8 days old
            event("2026-05-09T11:00:00Z", "ana", "page.visited", url="/pricing/team"),
        ],
        until="2026-05-10T00:00:00Z",
    )
    assert acts(effects, "tag") == [("2026-05-09T11:00:00Z", "ana", "language.md:1", "tag", "pricing-curious")]


def test_wait_until_a_time_of_day_then_dates_computed_from_fields():
    effects = run(
        example("when contract.signed then"),
        [
            person("2026-05-01T00:00:00Z", "ana", timezone="America/New_York", renewal_date="2026-07-01"),
            event("2026-05-01T20:00:00Z", "ana", "contract.signed"),  # 16:00 in New York
        ],
        until="2026-08-01T00:00:00Z",
    )
    assert acts(effects, "send") == [
        ("2026-05-02T13:00:00Z", "ana", "language.md:1", "send", "kickoff"),  # the next 09:00 there
        ("2026-06-01T14:00:00Z", "ana", "language.md:1", "send", "renewal_coming"),  # 30 days before, 10:00
        ("2026-07-01T13:00:00Z", "ana", "language.md:1", "send", "renewal_today"),  # the day, 09:00
    ]


def test_wait_for_runs_then_when_the_event_comes_in_time_else_when_it_does_not():
    effects = run(
        example("when trial.started then"),
        [
            person("2026-05-01T00:00:00Z", "ana", first_name="Ana"),
            person("2026-05-01T00:00:00Z", "bo", first_name="Bo"),
            event("2026-05-01T10:00:00Z", "ana", "trial.started"),
            event("2026-05-01T10:00:00Z", "bo", "trial.started"),
            event("2026-05-02T10:00:00Z", "ana", "app.connected"),
            event("2026-05-04T10:00:01Z", "bo", "app.connected"),  # a second late
        ],
        until="2026-05-10T00:00:00Z",
    )
    assert acts(effects, "send", "task") == [
        ("2026-05-01T10:00:00Z", "ana", "language.md:1", "send", "setup_guide"),
        ("2026-05-01T10:00:00Z", "bo", "language.md:1", "send", "setup_guide"),
        ("2026-05-02T10:00:00Z", "ana", "language.md:1", "send", "next_steps"),
        ("2026-05-04T10:00:00Z", "bo", "language.md:1", "send", "need_help"),
        ("2026-05-04T10:00:00Z", "bo", "language.md:1", "task", "Offer Bo a setup call"),
    ]


def test_if_elif_else_takes_the_first_branch_that_holds():
    effects = run(
        example("when order.shipped then"),
        [
            person("2026-05-01T00:00:00Z", "ana"),
            event("2026-05-01T10:00:00Z", "ana", "order.shipped", total=250),
            event("2026-05-02T10:00:00Z", "ana", "order.shipped", total=50),
            event("2026-05-03T10:00:00Z", "ana", "order.shipped", total=10),
            event("2026-05-04T10:00:00Z", "ana", "order.shipped"),  # no total: every test is unknown
        ],
        until="2026-05-05T00:00:00Z",
    )
    assert acts(effects, "send", "tag") == [
        ("2026-05-01T10:00:00Z", "ana", "language.md:1", "send", "thank_you_big"),
        ("2026-05-02T10:00:00Z", "ana", "language.md:1", "send", "thank_you"),
        ("2026-05-03T10:00:00Z", "ana", "language.md:1", "tag", "small-order"),
        ("2026-05-04T10:00:00Z", "ana", "language.md:1", "tag", "small-order"),
    ]


def test_a_split_puts_each_contact_in_one_arm_and_keeps_a_hold_out():
    contacts = [f"c{n:03d}" for n in range(200)]
    timeline = [person("2026-05-01T00:00:00Z", c) for c in contacts]
    timeline += [event("2026-05-01T10:00:00Z", c, "newsletter.subscribed") for c in contacts]
    effects = run(example('rule "Subject line test"'), timeline, until="2026-05-02T00:00:00Z")
    sent = {e[1]: e[4] for e in acts(effects, "send")}
    assert len(acts(effects, "send")) == len(sent), "one arm each"
    counts = {name: list(sent.values()).count(name) for name in ("welcome_a", "welcome_b")}
    held_out = len(contacts) - len(sent)
    assert 65 <= counts["welcome_a"] <= 115 and 65 <= counts["welcome_b"] <= 115, counts
    assert 5 <= held_out <= 40, held_out


def test_staff_steps_leave_a_note_a_task_due_a_day_later_and_a_notification():
    effects = simulate(
        [("language.md", example('when form.submitted and event.form == "demo" then'))],
        [
            json.dumps(person("2026-05-01T00:00:00Z", "ana", first_name="Ana")),
            json.dumps(event("2026-05-01T10:00:00Z", "ana", "form.submitted", form="demo", page="/pricing")),
        ],
    )
    staff = [{k: e.get(k) for k in ("action", "text", "team", "due")} for e in effects if e["action"] != "enter"]
    assert staff[:3] == [
        {"action": "note", "text": "Asked for a demo on /pricing", "team": None, "due": None},
        {"action": "task", "text": "Book a demo with Ana", "team": "sales", "due": "2026-05-02T10:00:00Z"},
        {"action": "notify", "text": "Demo request: ana@example.com", "team": "sales", "due": None},
    ]


def test_stop_ends_the_journey_and_start_enrols_in_the_other_rule():
    effects = run(
        example('rule "Qualify"'),
        [
            person("2026-05-01T00:00:00Z", "ana", first_name="Ana"),
            {"at": "2026-05-01T00:00:00Z", "contact": "bo", "set": {"email": "bo@gym.test", "first_name": "Bo"}},
            event("2026-05-01T10:00:00Z", "ana", "form.submitted", form="contact-us"),
            event("2026-05-01T10:00:00Z", "bo", "form.submitted", form="contact-us"),
        ],
        until="2026-05-02T00:00:00Z",
    )
    assert acts(effects, "task", "exit") == [
        ("2026-05-01T10:00:00Z", "ana", "Qualify", "exit", "stopped"),  # an @example.com address
        ("2026-05-01T10:00:00Z", "bo", "Sales follow-up", "task", "Call Bo"),
        ("2026-05-01T10:00:00Z", "bo", "Sales follow-up", "exit", "completed"),
        ("2026-05-01T10:00:00Z", "bo", "Qualify", "exit", "completed"),
    ]


def test_a_rules_quiet_hours_hold_every_channel_until_the_window_ends():
    effects = run(
        example('rule "Receipts"'),
        [
            person(
                "2026-05-01T00:00:00Z",
                "ana",
                phone="+4915112345678",
                timezone="Europe/Berlin",
                consent={"sms": "granted"},
            ),
            event("2026-05-01T21:30:00Z", "ana", "purchase.completed"),  # 23:30 in Berlin
            event("2026-05-02T10:00:00Z", "ana", "purchase.completed"),
        ],
        until="2026-05-03T00:00:00Z",
    )
    assert acts(effects, "send") == [
        ("2026-05-02T06:00:00Z", "ana", "Receipts", "send", "receipt"),  # 08:00 CEST
        ("2026-05-02T06:00:00Z", "ana", "Receipts", "send", "receipt_short"),
        ("2026-05-02T06:00:00Z", "ana", "Receipts", "send", "billing_sync"),
        ("2026-05-02T10:00:00Z", "ana", "Receipts", "send", "receipt"),
        ("2026-05-02T10:00:00Z", "ana", "Receipts", "send", "receipt_short"),
        ("2026-05-02T10:00:00Z", "ana", "Receipts", "send", "billing_sync"),
    ]


def test_the_header_example_enters_at_most_once_in_thirty_days_and_leaves_at_the_goal():
    effects = run(
        example('rule "Trial nurture"'),
        [
            person("2026-05-01T00:00:00Z", "ana"),
            event("2026-05-01T10:00:00Z", "ana", "form.submitted", form="trial"),
            event("2026-05-01T11:00:00Z", "ana", "form.submitted", form="newsletter"),
            event("2026-05-20T10:00:00Z", "ana", "form.submitted", form="trial"),  # within 30 days
            event("2026-06-01T10:00:00Z", "ana", "form.submitted", form="trial"),
        ],
        until="2026-06-02T00:00:00Z",
    )
    assert acts(effects, "send") == [
        ("2026-05-01T10:00:00Z", "ana", "Trial nurture", "send", "trial_welcome"),
        ("2026-06-01T10:00:00Z", "ana", "Trial nurture", "send", "trial_welcome"),
    ]


def test_a_relative_date_is_planned_again_when_the_contacts_time_zone_changes():
    rules = 'rule "Day before"\nwhen 1d before contact.renewal_date then\n  send email renewal_tomorrow\nend\n'
    effects = run(
        rules,
        [
            person("2026-05-01T00:00:00Z", "ana", timezone="Europe/Berlin", renewal_date="2026-05-10"),
            person("2026-05-03T00:00:00Z", "ana", timezone="America/New_York"),
        ],
        until="2026-05-12T00:00:00Z",
    )
    assert acts(effects, "send") == [("2026-05-09T13:00:00Z", "ana", "Day before", "send", "renewal_tomorrow")]


def test_start_enrols_as_the_started_rules_entry_policy_allows():
    rules = (
        'rule "Starter"\nwhen lead.qualified then\n  start "Once"\nend\n\n'
        'rule "Once"\n  once per contact\nwhen sales.requested then\n  note "call"\nend\n'
    )
    effects = run(
        rules,
        [
            person("2026-05-01T00:00:00Z", "ana"),
            event("2026-05-01T10:00:00Z", "ana", "lead.qualified"),
            event("2026-05-02T10:00:00Z", "ana", "lead.qualified"),
        ],
        until="2026-05-03T00:00:00Z",
    )
    assert acts(effects, "note") == [("2026-05-01T10:00:00Z", "ana", "Once", "note", "call")]
