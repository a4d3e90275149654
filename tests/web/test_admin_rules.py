"""The rules area through the test client: the list and its filters, the editor's endpoints (vocabulary, validate,
format, fix), drafts, versions and their diff, activation with the plan `nudge apply --plan` prints, pause and
resume, rules from git; every endpoint's roles, CSRF and bad input; hostile rule names escaped."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from server.db import get_session
from server.engine.timeutil import to_ts
from server.hookspecs import hookimpl
from server.models import (
    AuditEntry,
    Contact,
    ContactTag,
    Enrolment,
    EnrolmentState,
    Event,
    FieldDefinition,
    Rule,
    RuleVersion,
    Segment,
    Template,
    utcnow,
)
from server.sdk import Action, ConditionFunction, Trigger

from ..helpers import api_key, load_rules, post_event, run_worker, signed_in

HX = {"HX-Request": "true", "HX-Current-URL": "http://localhost/admin/rules/"}
WELCOME = 'rule "Welcome"\nwhen form.submitted then\n  send email welcome\nend\n'
TYPO = 'rule "Welcome"\nwhen form.submitted then\n  sned email welcome\nend\n'
HOSTILE = "<script>alert(1)</script>"


def _json(client, url, body, **headers):
    return client.post(
        url, data=json.dumps(body), content_type="application/json", headers={"X-CSRF-Token": client.csrf, **headers}
    )


def _form(client, url, hx=False, **form):
    headers = {**HX, "X-CSRF-Token": client.csrf} if hx else {}
    return client.post(url, data={**form, "csrf_token": client.csrf}, headers=headers)


def _flash(response) -> list[str]:
    return [m["text"] for m in json.loads(response.headers["HX-Trigger"])["nudge:flash"]["messages"]]


def _page_flash(client, url) -> list[str]:
    return [
        html.unescape(m)
        for m in re.findall(r'<p class="flash-message flash-\w+">([^<]*)</p>', client.get(url).get_data(as_text=True))
    ]


def _rule(app, name="Welcome") -> Rule:
    with app.app_context():
        rule = get_session().scalar(select(Rule).where(Rule.name == name))
        get_session().expunge_all()
        return rule


def _versions(app, rule_id) -> list[RuleVersion]:
    with app.app_context():
        rows = list(
            get_session().scalars(
                select(RuleVersion).where(RuleVersion.rule_id == rule_id).order_by(RuleVersion.number)
            )
        )
        get_session().expunge_all()
        return rows


class Crm:
    """A plugin with a step, a trigger and a condition function, for the vocabulary."""

    class Push(Action):
        name = "crm_push"
        description = "push the contact to the CRM"

        def run(self, contact, args):
            pass

    class Shop(Trigger):
        name = "shop"
        events = ("shop.order_paid",)

    @hookimpl
    def register_actions(self, config):
        return [self.Push()]

    @hookimpl
    def register_triggers(self, config):
        return [self.Shop]

    @hookimpl
    def register_condition_functions(self, config):
        return [ConditionFunction("domain", ("string",), "string", lambda address: address.split("@")[-1])]


@pytest.fixture
def crm_app(config):
    from server.app import create_app
    from server.plugins import DEFAULT_PLUGINS

    app = create_app({**config, "PLUGINS": (*DEFAULT_PLUGINS, Crm())})
    yield app
    app.extensions["nudge.queue"].close()
    app.extensions["nudge.db"].dispose()


# -- the list ---------------------------------------------------------------------------------------------------
def test_the_list_shows_status_versions_contacts_recent_journeys_and_the_last_change(app):
    load_rules(app, WELCOME + 'rule "Billing"\nwhen invoice.paid then\n  send email receipt\nend\n')
    editor = signed_in(app, "editor", email="ed@example.com")
    assert (
        _form(editor, "/admin/rules/new", source='rule "Later"\nwhen form.submitted then\n  stop\nend\n').status_code
        == 302
    )
    now = to_ts(utcnow())
    with app.app_context():
        session = get_session()
        welcome = session.scalar(select(Rule).where(Rule.name == "Welcome"))
        for state, entered, finished in (
            (EnrolmentState.ACTIVE, now - 60, None),
            (EnrolmentState.DONE, now - 3600, now),
            (EnrolmentState.DONE, now - 30 * 86400, now - 20 * 86400),
        ):
            session.add(
                Enrolment(
                    contact_id=1,
                    rule_id=welcome.id,
                    version_id=welcome.active_version_id,
                    state=state,
                    entered=entered,
                    finished=finished,
                )
            )
        session.commit()
    assert _form(editor, f"/admin/rules/{_rule(app, 'Billing').id}/pause").status_code == 302
    page = editor.get("/admin/rules/").get_data(as_text=True)

    def row(name):
        return re.search(rf'<tr id="rule-\d+">\s*<th scope="row"><a [^>]+>{name}</a>.*?</tr>', page, re.S).group(0)

    def cells(name):
        return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row(name), re.S)]

    assert cells("Welcome")[:5] == ["active", "v1", "1", "2", "1"]  # in it now, entered and completed in 7 days
    assert cells("Billing")[:2] == ["paused", "v1"]
    assert cells("Later")[:2] == ["draft", "— (draft v1)"] and cells("Later")[-1] == "ed@example.com"
    assert "UTC" in cells("Later")[-2]


def test_the_list_filters_by_status_and_text_and_htmx_gets_only_the_table(app):
    load_rules(app, WELCOME + 'rule "Billing"\nwhen invoice.paid then\n  send email receipt\nend\n')
    viewer = signed_in(app, "viewer")
    names = lambda text: re.findall(r'<th scope="row"><a [^>]+>([^<]+)</a>', text)  # noqa: E731
    assert names(viewer.get("/admin/rules/?q=bill").get_data(as_text=True)) == ["Billing"]
    assert names(viewer.get("/admin/rules/?q=receipt").get_data(as_text=True)) == ["Billing"], "the text is searched"
    assert names(viewer.get("/admin/rules/?q=%25").get_data(as_text=True)) == [], "% is a character, not a wildcard"
    assert names(viewer.get("/admin/rules/?status=paused").get_data(as_text=True)) == []
    partial = viewer.get("/admin/rules/?status=active&q=wel", headers={**HX, "HX-Target": "rules-table"})
    text = partial.get_data(as_text=True)
    assert partial.status_code == 200 and text.lstrip().startswith('<div id="rules-table"') and "<html" not in text
    assert names(text) == ["Welcome"]
    refused = viewer.get("/admin/rules/?status=gone")
    assert refused.status_code == 400 and "status must be one of active, paused, draft" in refused.get_data(
        as_text=True
    )


def test_hostile_rule_names_and_texts_are_escaped_on_every_page(app):
    text = f'# {HOSTILE}\nrule "{HOSTILE}"\nwhen form.submitted then\n  note "{HOSTILE}"\nend\n'
    editor = signed_in(app, "editor")
    assert _form(editor, "/admin/rules/new", source=text).status_code == 302
    rule = _rule(app, HOSTILE)
    assert _form(editor, f"/admin/rules/{rule.id}", source=text.replace("note", "tag")).status_code == 302
    flashes = re.findall(
        r'<p class="flash-message flash-success">([^<]*)</p>', editor.get("/admin/rules/").get_data(as_text=True)
    )
    assert [f.partition(" as a draft")[0] for f in flashes] == [
        f"Saved v{n} of &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39;" for n in (1, 2)
    ]
    for url in (
        "/admin/rules/",
        f"/admin/rules/{rule.id}",
        f"/admin/rules/{rule.id}/activate?version=2",
        f"/admin/rules/{rule.id}/diff?old=1&new=2",
    ):
        page = editor.get(url).get_data(as_text=True)
        assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page, url


# -- the editor's endpoints -------------------------------------------------------------------------------------
def test_vocabulary_lists_what_the_instance_knows(crm_app):
    app = crm_app
    load_rules(app)
    with app.app_context():
        session = get_session()
        session.add_all(
            [
                FieldDefinition(name="plan", type="string"),
                Segment(name="trial members", condition='tag == "trial"'),
                Template(channel="email", name="receipt", parts={"subject": "x", "txt": "y"}),
            ]
        )
        contact = Contact(email="a@example.com", fields={})
        session.add(contact)
        session.flush()
        session.add_all(
            [
                ContactTag(contact_id=contact.id, tag="vip"),
                Event(contact_id=contact.id, name="invoice.paid", props={}, source="api"),
            ]
        )
        session.commit()
    words = signed_in(app, "viewer").get("/admin/rules/vocabulary").get_json()
    assert {"form.submitted", "contact.created", "shop.order_paid", "invoice.paid", "email.bounced"} <= set(
        words["events"]
    )
    assert {"first_name", "email", "plan"} <= set(words["fields"])
    assert words["tags"] == ["vip"] and words["segments"] == ["trial members"]
    assert {"welcome", "receipt"} <= set(words["templates"]["email"]) and "sms" in words["templates"]
    assert {"email", "sms", "webhook"} <= set(words["channels"])
    assert words["steps"] == [{"name": "crm_push", "detail": "push the contact to the CRM"}]
    assert words["functions"] == [{"name": "domain", "detail": "domain(string) → string"}]


def test_validate_answers_the_checkers_diagnostics_with_their_fixes(app):
    editor = signed_in(app, "editor")
    answer = _json(editor, "/admin/rules/validate", {"source": TYPO + '\nrule "Other"\nwhen form.submited then\nend\n'})
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    found = {d["message"]: d for d in answer.get_json()["diagnostics"]}
    sned = found['unknown step "sned" — did you mean "send"?']
    assert (sned["severity"], sned["line"], sned["col"], sned["end_line"], sned["end_col"]) == ("error", 3, 3, 3, 7)
    assert sned["hint"].startswith("steps are ")
    assert sned["fixes"] == [
        {"label": 'Replace with "send"', "line": 3, "col": 3, "end_line": 3, "end_col": 7, "insert": "send"}
    ]
    event = next(d for m, d in found.items() if "form.submited" in m)
    assert event["severity"] == "warning" and event["line"] == 7 and event["fixes"][0]["insert"] == "form.submitted"
    assert all(
        set(d) == {"severity", "line", "col", "end_line", "end_col", "message", "hint", "fixes"} for d in found.values()
    )


def test_validate_says_what_the_cli_says(app, tmp_path, runner):
    """The same checker as `nudge check`: the same messages at the same places."""
    path = tmp_path / "rule.nudge"
    path.write_text(TYPO.replace("welcome", "welcom"), encoding="utf-8")
    printed = runner.invoke(["check", str(path)]).output
    answer = _json(signed_in(app, "editor"), "/admin/rules/validate", {"source": path.read_text()}).get_json()
    for d in answer["diagnostics"]:
        assert f"{path}:{d['line']}:{d['col']}: {d['message']}" in printed


def test_validate_holds_the_editor_to_one_named_rule_with_a_free_name(app):
    load_rules(app)
    editor = signed_in(app, "editor")
    message = lambda url, text: [d["message"] for d in _json(editor, url, {"source": text}).get_json()["diagnostics"]]  # noqa: E731
    assert message("/admin/rules/validate", WELCOME) == ["a rule named 'Welcome' exists already"]
    assert message("/admin/rules/validate", WELCOME.replace('rule "Welcome"\n', "")) == ["this rule has no name"]
    assert message("/admin/rules/validate", "") == ["there is no rule here yet"]
    two = WELCOME.replace("Welcome", "One") + WELCOME.replace("Welcome", "Two")
    assert message("/admin/rules/validate", two) == ["the editor holds one rule; this is a second one"]
    rule_id = _rule(app).id
    assert message(f"/admin/rules/{rule_id}/validate", WELCOME) == []
    assert message(f"/admin/rules/{rule_id}/validate", WELCOME.replace("Welcome", "Renamed")) == [
        "this rule is named 'Welcome'; a saved rule keeps its name"
    ]


def test_format_is_nudge_fmt_and_refuses_what_does_not_parse(app, tmp_path, runner):
    editor = signed_in(app, "editor")
    messy = 'rule "Welcome"\nwhen form.submitted   then\n        send email welcome\nend'
    answer = _json(editor, "/admin/rules/format", {"source": messy})
    path = tmp_path / "messy.nudge"
    path.write_text(messy, encoding="utf-8")
    assert answer.status_code == 200 and answer.get_json() == {"source": runner.invoke(["fmt", str(path)]).output}
    broken = _json(editor, "/admin/rules/format", {"source": "wehn form.submitted then\nend\n"}).get_json()
    assert "source" not in broken
    assert broken["diagnostics"][0]["message"] == "unexpected `wehn` — did you mean `when`?"
    assert broken["diagnostics"][0]["fixes"][0]["insert"] == "when"


def test_the_plain_textarea_checks_fixes_and_formats_through_htmx(app):
    editor = signed_in(app, "editor")
    checked = _form(editor, "/admin/rules/validate", hx=True, source=TYPO).get_data(as_text=True)
    assert "Line 3, column 3" in checked and 'unknown step "sned"' in html.unescape(checked)
    vals = json.loads(html.unescape(re.search(r"hx-vals='([^']+)'", checked).group(1)))
    fixed = _form(editor, "/admin/rules/fix", hx=True, source=TYPO, **{k: str(v) for k, v in vals.items()})
    assert fixed.status_code == 200
    assert html.unescape(
        re.search(r"<textarea[^>]*>(.*?)</textarea>", fixed.get_data(as_text=True), re.S).group(1)
    ) == TYPO.replace("sned", "send")
    assert "No problems" in fixed.get_data(as_text=True)
    stale = _form(
        editor, "/admin/rules/fix", hx=True, source="x", line="3", col="3", end_line="3", end_col="7", insert="send"
    )
    assert stale.status_code == 422 and "no longer fits the text" in _flash(stale)[0]
    formatted = _form(editor, "/admin/rules/format", hx=True, source=WELCOME.replace("  send", "      send"))
    assert "\n  send email welcome" in html.unescape(formatted.get_data(as_text=True))
    assert _form(editor, "/admin/rules/format", hx=True, source="wehn x").status_code == 422


@pytest.mark.parametrize(
    "body,status,text",
    [
        ("not json", 400, "The body must be JSON"),
        ('{"text": "x"}', 422, 'The body must be JSON {"source"'),
        ('{"source": 5}', 422, "source must be the rule's text"),
        ('{"source": "a\\u0000b"}', 422, "NUL character"),
        ('["source"]', 422, 'The body must be JSON {"source"'),
    ],
)
def test_bad_bodies_are_refused_with_a_clear_message(app, body, status, text):
    editor = signed_in(app, "editor")
    for url in ("/admin/rules/validate", "/admin/rules/format"):
        answer = editor.post(url, data=body, content_type="application/json", headers={"X-CSRF-Token": editor.csrf})
        assert answer.status_code == status and answer.mimetype == "application/problem+json", url
        assert text in answer.get_json()["detail"], (url, answer.get_json())


def test_a_text_too_long_is_refused(app):
    editor = signed_in(app, "editor")
    answer = _json(editor, "/admin/rules/validate", {"source": "#" * 200_001})
    assert answer.status_code == 413 and "at most 200,000" in answer.get_json()["detail"]
    missing = _json(editor, "/admin/rules/999999/validate", {"source": WELCOME})
    assert missing.status_code == 404 and "There is no rule with id 999999" in missing.get_json()["detail"]


def test_roles_and_csrf_on_every_endpoint(app):
    load_rules(app)
    rule_id = _rule(app).id
    viewer, editor, nobody = signed_in(app, "viewer"), signed_in(app, "editor"), app.test_client()
    reads = ["/admin/rules/", f"/admin/rules/{rule_id}", "/admin/rules/vocabulary", f"/admin/rules/{rule_id}/diff"]
    for url in reads:
        assert viewer.get(url).status_code == 200, url
        assert nobody.get(url).status_code == 302, url
    for url in ("/admin/rules/new", f"/admin/rules/{rule_id}/activate"):
        assert viewer.get(url).status_code == 403 and editor.get(url).status_code == 200, url
    writes = [
        "/admin/rules/new",
        f"/admin/rules/{rule_id}",
        "/admin/rules/format",
        "/admin/rules/fix",
        "/admin/rules/validate",
        f"/admin/rules/{rule_id}/validate",
        f"/admin/rules/{rule_id}/fix",
        f"/admin/rules/{rule_id}/activate",
        f"/admin/rules/{rule_id}/pause",
        f"/admin/rules/{rule_id}/resume",
        "/admin/rules/try",
        f"/admin/rules/{rule_id}/try",
        "/admin/rules/sample",
        f"/admin/rules/{rule_id}/tests",
        f"/admin/rules/{rule_id}/tests/1/delete",
    ]
    for url in writes:
        refused = _form(viewer, url, hx=True, source=WELCOME, version="1")
        assert refused.status_code == 403 and "cannot change this; it needs editor" in _flash(refused)[0], url
        no_token = editor.post(url, data={"source": WELCOME}, headers=HX)
        assert no_token.status_code == 400, url
        signed_out = nobody.post(url, data={"source": WELCOME}, headers=HX)
        assert signed_out.status_code in (400, 401), url  # no session: the token fails first, or sign-in is asked
    assert _json(viewer, f"/admin/rules/{rule_id}/validate", {"source": WELCOME}).status_code == 403
    assert _json(editor, f"/admin/rules/{rule_id}/validate", {"source": WELCOME}).status_code == 200
    assert editor.post("/admin/rules/validate", json={"source": WELCOME}).status_code == 400, "CSRF on JSON too"
    with app.app_context():
        assert get_session().scalar(select(RuleVersion.id).where(RuleVersion.number == 2)) is None, "nothing saved"
    assert editor.get("/admin/rules/999999").status_code == 404


# -- drafts, versions, activation ---------------------------------------------------------------------------------
def test_saving_keeps_a_draft_with_its_author_and_refuses_a_text_with_errors(app):
    editor = signed_in(app, "editor", email="ed@example.com")
    refused = _form(editor, "/admin/rules/new", source=TYPO)
    page = refused.get_data(as_text=True)
    assert (
        refused.status_code == 422
        and "Not saved: 1 error(s); the first, line 3, column 3: unknown step" in html.unescape(page)
    )
    assert TYPO in html.unescape(page), "the text typed is kept on the page"
    assert _rule(app) is None
    saved = _form(editor, "/admin/rules/new", source=WELCOME)
    rule = _rule(app)
    assert saved.status_code == 302 and saved.headers["Location"] == f"/admin/rules/{rule.id}?version=1"
    assert (rule.status, rule.active_version_id, rule.origin) == ("draft", None, "editor")
    assert [(v.number, v.actor, v.activated_at, v.source) for v in _versions(app, rule.id)] == [
        (1, "ed@example.com", None, WELCOME)
    ]
    assert "Saved v1 of 'Welcome' as a draft; it runs once you activate it." in _page_flash(editor, "/admin/rules/")
    again = _form(editor, f"/admin/rules/{rule.id}", source=WELCOME.replace("\n", "\r\n"))
    assert again.status_code == 302 and len(_versions(app, rule.id)) == 1
    assert "Nothing to save: v1 has this text already." in _page_flash(editor, "/admin/rules/")
    with app.app_context():
        assert [e.action for e in get_session().scalars(select(AuditEntry))] == ["rule.draft"]


def _one_waiting(app, client):
    """A running rule with one contact waiting at its second step; an editor signed in."""
    load_rules(
        app, 'rule "Welcome"\nwhen form.submitted then\n  send email welcome\n  wait 3d\n  send email welcome\nend\n'
    )
    assert post_event(client, api_key(app), email="ana@example.com").status_code == 202
    run_worker(app)
    return signed_in(app, "editor"), _rule(app)


def test_activating_shows_the_plan_of_nudge_apply_then_migrates_when_asked(app, client):
    editor, rule = _one_waiting(app, client)
    v2 = 'rule "Welcome"\nwhen form.submitted then\n  send email welcome\n  wait 2d\n  tag "nudged"\nend\n'
    assert _form(editor, f"/admin/rules/{rule.id}", source=v2).status_code == 302
    page = html.unescape(editor.get(f"/admin/rules/{rule.id}/activate?version=2").get_data(as_text=True))
    plan = re.search(r'<pre class="plan" id="plan">(.*?)</pre>', page, re.S).group(1).splitlines()
    assert plan == [
        "~ rule 'Welcome' → v2 (1 contacts mid-journey)",
        "    1 contact(s) at step 3 cannot move: that step is gone in the new version (they finish on "
        "their current version)",
        "Rules: 0 to add, 1 to change, 0 to pause.",
    ]
    assert 'name="migrate" value="yes"' in page and "+  wait 2d" in page
    assert _rule(app).active_version_id == rule.active_version_id, "the plan changed nothing"
    done = _form(editor, f"/admin/rules/{rule.id}/activate", version="2", migrate="yes")
    assert done.status_code == 302
    flashes = _page_flash(editor, "/admin/rules/")
    assert flashes[:2] == ["Activated v2 of 'Welcome'.", "~ rule 'Welcome' → v2 (1 contacts mid-journey)"]
    assert "0 contact(s) moved to v2 at the same step" in flashes
    with app.app_context():
        session = get_session()
        active = session.get(RuleVersion, session.get(Rule, rule.id).active_version_id)
        assert active.number == 2 and active.activated_at is not None
        assert session.get(RuleVersion, session.scalar(select(Enrolment.version_id))).number == 1


def test_activating_with_migrate_moves_contacts_to_the_same_step(app, client):
    editor, rule = _one_waiting(app, client)
    assert (
        _form(
            editor,
            f"/admin/rules/{rule.id}",
            source='rule "Welcome"\nwhen form.submitted then\n  send email '
            'welcome\n  wait 3d\n  tag "late"\n  send email welcome\nend\n',
        ).status_code
        == 302
    )
    assert _form(editor, f"/admin/rules/{rule.id}/activate", version="2", migrate="yes").status_code == 302
    assert "1 contact(s) moved to v2 at the same step" in _page_flash(editor, "/admin/rules/")
    with app.app_context():
        session = get_session()
        assert session.get(RuleVersion, session.scalar(select(Enrolment.version_id))).number == 2


def test_versions_are_listed_and_any_two_compared(app):
    editor = signed_in(app, "editor", email="ed@example.com")
    assert _form(editor, "/admin/rules/new", source=WELCOME).status_code == 302
    rule = _rule(app)
    assert (
        _form(editor, f"/admin/rules/{rule.id}", source=WELCOME.replace("end\n", "  wait 1d\nend\n")).status_code == 302
    )
    page = editor.get(f"/admin/rules/{rule.id}").get_data(as_text=True)
    assert re.search(r'<tr id="version-2">.*?draft.*?ed@example.com', page, re.S)
    assert f'href="/admin/rules/{rule.id}?version=1"' in page
    shown = editor.get(f"/admin/rules/{rule.id}?version=1").get_data(as_text=True)
    assert "Text of v1" in shown and "wait 1d" not in shown
    diff = editor.get(f"/admin/rules/{rule.id}/diff?old=1&new=2").get_data(as_text=True)
    pair = re.search(
        r'<div class="diff-pair" data-nudge-diff>\s*<textarea[^>]*>(.*?)</textarea>\s*'
        r"<textarea[^>]*>(.*?)</textarea>\s*</div>",
        diff,
        re.S,
    )
    assert [html.unescape(text) for text in pair.groups()] == [WELCOME, WELCOME.replace("end\n", "  wait 1d\nend\n")]
    assert '<span class="diff-add">+  wait 1d</span>' in diff and '<span class="diff-file">--- v1</span>' in diff
    assert editor.get(f"/admin/rules/{rule.id}/diff?old=9&new=2").status_code == 404
    assert editor.get(f"/admin/rules/{rule.id}/diff?old=x").status_code == 400


def test_pause_and_resume_say_what_happens_and_a_draft_refuses_them(app):
    load_rules(app)
    editor = signed_in(app, "editor")
    rule = _rule(app)
    assert _form(editor, f"/admin/rules/{rule.id}/pause").status_code == 302
    assert _rule(app).status == "paused"
    assert "Paused 'Welcome': nobody enters; 0 contact(s) mid-journey wait where they are." in _page_flash(
        editor, "/admin/rules/"
    )
    assert _form(editor, f"/admin/rules/{rule.id}/resume").status_code == 302 and _rule(app).status == "active"
    assert _form(editor, "/admin/rules/new", source=WELCOME.replace("Welcome", "Later")).status_code == 302
    refused = _form(editor, f"/admin/rules/{_rule(app, 'Later').id}/pause", hx=True)
    assert refused.status_code == 409 and "is a draft, never activated" in _flash(refused)[0]


def test_a_rule_from_git_shows_its_file_and_warns_before_saving(app, runner, tmp_path):
    repo = tmp_path / "repo"
    (repo / "templates/email").mkdir(parents=True)
    (repo / "welcome.nudge").write_text(WELCOME, encoding="utf-8")
    (repo / "templates/email/welcome.subject").write_text("Hi", encoding="utf-8")
    (repo / "templates/email/welcome.txt").write_text("Hello", encoding="utf-8")
    assert runner.invoke(["apply", str(repo)]).exit_code == 0
    editor = signed_in(app, "editor")
    rule = _rule(app)
    page = html.unescape(editor.get(f"/admin/rules/{rule.id}").get_data(as_text=True))
    path = str(Path(repo / "welcome.nudge"))
    assert f'<code class="origin">{path}</code>' in page
    assert "Saving it here makes the copy in git differ" in " ".join(page.split())
    form = re.search(r'<form id="rule-form"[^>]*>', page).group(0)
    assert 'data-confirm="This rule came from git' in form and path in form, "asked before saving"
    assert f"apply:{path}" in page, "the version says who applied it"
    viewer_page = signed_in(app, "viewer").get(f"/admin/rules/{rule.id}").get_data(as_text=True)
    assert 'id="git-warning"' not in viewer_page and "data-confirm" not in re.search(
        r'<form id="rule-form"[^>]*>', viewer_page
    ).group(0)
