"""The Tasks inbox through the test client: tasks from rules' ``task`` steps by team, assigned to users, due dates,
marked done exactly as ``nudge tasks --done`` does; the team's ``notify`` notifications — roles, CSRF, bad input,
escaping, htmx rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, select

from server.db import get_db, get_session
from server.models import Contact, Rule, Task, User, utcnow

from ..helpers import api_key, load_rules, make_user, post_event, run_worker, signed_in
from .crm_helpers import BREAKOUT, SCRIPT, audited, escaped, flash_of, page_flash, post

QUOTED = BREAKOUT.replace('"', '\\"')  # as a string in the rules language
RULES = f"""rule "Hand-off"
when form.submitted then
  task "Call {{{{ contact.email }}}} {SCRIPT}" for "sales" due 1d
  notify "sales" "Hot lead {QUOTED}"
end

rule "Ops"
when order.paid then
  task "Check the order" for "ops"
end
"""


@pytest.fixture
def config(config):
    return {**config, "TEAMS": "sales=ana@team.example,bob@team.example;ops=olga@team.example;support=sue@team.example"}


def _work(app, client) -> dict[str, int]:
    load_rules(app, RULES)
    key = api_key(app)
    post_event(client, key, email="lead@example.com")
    post_event(client, key, email="buyer@example.com", event="order.paid")
    run_worker(app)
    with app.app_context():
        return {t.team: t.id for t in get_session().scalars(select(Task))}


def _rows(html) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="task-(\d+)">', html)]


def test_the_inbox_lists_tasks_by_team_with_due_dates_and_the_teams_notifications(app, client, smtp_server):
    tasks = _work(app, client)
    viewer = signed_in(app, "viewer")
    html = viewer.get("/admin/tasks/").get_data(as_text=True)
    assert _rows(html) == [tasks["sales"], tasks["ops"]]  # the one due first, then the one without a due date
    escaped(html, f"Call lead@example.com {SCRIPT}", f"Hot lead {BREAKOUT}")
    assert "rule:Hand-off" not in html and 'href="/admin/contacts/' in html
    with app.app_context():
        rules = dict(get_session().execute(select(Rule.name, Rule.id)).all())
    assert f'rule <a href="/admin/rules/{rules["Hand-off"]}">Hand-off</a>' in html  # the rule by name, linked
    for team in ("sales", "ops", "support"):  # every configured team can be chosen, even one without tasks yet
        assert f'<option value="{team}">{team}</option>' in html
    sales = viewer.get("/admin/tasks/?team=sales").get_data(as_text=True)
    assert _rows(sales) == [tasks["sales"]]
    notes = sales.split('id="notes-head"')[1]
    assert notes.count("Hot lead") == 2 and "ana@team.example" in notes and "bob@team.example" in notes
    assert notes.count("<td>notify</td>") == 2 and notes.count("<td>task</td>") == 2  # the task step told them too
    assert "Hot lead" not in viewer.get("/admin/tasks/?team=ops").get_data(as_text=True).split('id="notes-head"')[1]
    assert "Mark task" not in html and "Assign task" not in html  # a viewer reads


def test_a_task_from_a_rule_known_by_its_id_links_the_rule_and_other_sources_stay_as_written(app, client, smtp_server):
    _work(app, client)
    with app.app_context():
        session = get_session()
        ops = session.scalar(select(Rule.id).where(Rule.name == "Ops"))
        session.add_all(
            [
                Task(text="By id", team="ops", source=f"rule:{ops}"),
                Task(text="Gone", team="ops", source="rule:No such rule"),
                Task(text="From the API", team="ops", source="api"),
            ]
        )
        session.commit()
    html = signed_in(app, "viewer").get("/admin/tasks/?team=ops").get_data(as_text=True)
    assert html.count(f'rule <a href="/admin/rules/{ops}">Ops</a>') == 2  # the task step's, and the one by id
    assert "<td>rule:No such rule</td>" in html and "<td>api</td>" in html


def test_marking_a_task_done_is_what_nudge_tasks_done_does(app, client, runner, smtp_server):
    tasks = _work(app, client)
    editor = signed_in(app, "editor")
    response = post(editor, f"/admin/tasks/{tasks['sales']}/done", hx=True)
    assert response.status_code == 200 and flash_of(response) == [f"Task {tasks['sales']} is done."]
    row = response.get_data(as_text=True)
    assert row.startswith(f'<tr id="task-{tasks["sales"]}">') and "status-done" in row and "Mark task" not in row
    with app.app_context():
        task = get_session().get(Task, tasks["sales"])
        assert task.status == "done" and task.completed_at is not None
    assert "Hand-off" not in runner.invoke(["tasks"]).output  # the CLI's open list no longer has it
    again = post(editor, f"/admin/tasks/{tasks['sales']}/done", hx=True)
    assert flash_of(again) == [f"Task {tasks['sales']} was done already."]
    # the CLI's own close writes the same audit entry
    assert runner.invoke(["tasks", "--done", str(tasks["ops"])]).output == f"task {tasks['ops']} done\n"
    entries = audited(app, "task.updated")
    assert [(e.actor[:5], e.detail) for e in entries] == [
        ("user:", {"changed": ["status"]}),
        ("cli", {"changed": ["status"]}),
    ]
    done = editor.get("/admin/tasks/?show=done").get_data(as_text=True)
    assert sorted(_rows(done)) == sorted(tasks.values())


def test_assigning_and_due_dates(app, client, smtp_server):
    tasks = _work(app, client)
    editor = signed_in(app, "editor", email="ed@example.com")
    sam = make_user(app, "sam@example.com", role="viewer")
    gone = make_user(app, "gone@example.com", role="viewer", disabled_at=utcnow())
    page = editor.get("/admin/tasks/").get_data(as_text=True)
    assert f'<option value="{sam}">sam@example.com</option>' in page and "gone@example.com" not in page
    response = post(editor, f"/admin/tasks/{tasks['ops']}/assign", hx=True, assigned_to=str(sam))
    assert flash_of(response) == [f"Task {tasks['ops']} is assigned to sam@example.com."]
    assert f'<option value="{sam}" selected>sam@example.com</option>' in response.get_data(as_text=True)
    for bad in (str(gone), "999999", "sam", "\u00b2"):  # ² is a digit to str.isdigit, not to int()
        refused = post(editor, f"/admin/tasks/{tasks['ops']}/assign", hx=True, assigned_to=bad)
        assert refused.status_code == 422 and flash_of(refused)[0].startswith("Not assigned: ")
    with app.app_context():
        assert get_session().get(Task, tasks["ops"]).assigned_to == sam
    me = signed_in(app, "editor", email="me@example.com")
    with app.app_context():
        my_id = get_session().scalar(select(User.id).where(User.email == "me@example.com"))
    post(me, f"/admin/tasks/{tasks['sales']}/assign", assigned_to=str(my_id))
    assert _rows(me.get("/admin/tasks/?assigned=me").get_data(as_text=True)) == [tasks["sales"]]
    assert _rows(me.get("/admin/tasks/?assigned=nobody").get_data(as_text=True)) == []

    moved = post(editor, f"/admin/tasks/{tasks['ops']}/due", due_at="2031-02-03T04:05")
    assert moved.status_code == 302 and moved.headers["Location"].endswith("/admin/tasks/")
    assert f"Task {tasks['ops']} is due 2031-02-03 04:05 UTC." in page_flash(
        editor.get("/admin/tasks/").get_data(as_text=True)
    )
    with app.app_context():
        assert get_session().get(Task, tasks["ops"]).due_at == datetime(2031, 2, 3, 4, 5, tzinfo=UTC)
    for bad in ("next week", "1999-01-01T00:00"):
        assert post(editor, f"/admin/tasks/{tasks['ops']}/due", hx=True, due_at=bad).status_code == 422
    cleared = post(editor, f"/admin/tasks/{tasks['ops']}/due", hx=True, due_at="")
    assert flash_of(cleared) == [f"Task {tasks['ops']} has no due date now."]
    assert [e.detail["changed"] for e in audited(app, "task.updated")] == [
        ["assigned_to"],
        ["assigned_to"],
        ["due_at"],
        ["due_at"],
    ]


def test_viewers_cannot_change_tasks_and_writes_need_the_csrf_token(app, client, smtp_server):
    tasks = _work(app, client)
    viewer, editor = signed_in(app, "viewer"), signed_in(app, "editor")
    for action, form in (("done", {}), ("assign", {"assigned_to": ""}), ("due", {"due_at": ""})):
        assert post(viewer, f"/admin/tasks/{tasks['sales']}/{action}", **form).status_code == 403
        assert post(editor, f"/admin/tasks/{tasks['sales']}/{action}", csrf=False, **form).status_code == 400
    assert post(editor, "/admin/tasks/999999/done").status_code == 404
    assert signed_in(app, "viewer").get("/admin/tasks/?show=later").status_code == 400
    with app.app_context():
        assert get_session().get(Task, tasks["sales"]).status == "open"


def test_the_notifications_name_their_contacts_linked_read_in_one_query_and_an_erased_one_says_so(
    app, client, smtp_server
):
    _work(app, client)
    post_event(client, api_key(app), email="second@example.com")
    run_worker(app)
    with app.app_context():
        ids = dict(get_session().execute(select(Contact.email, Contact.id)).all())
    viewer = signed_in(app, "viewer")
    statements: list[str] = []
    engine = get_db(app).engine

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        html = viewer.get("/admin/tasks/?team=sales").get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    notes = html.split('id="notes-head"')[1]
    for email in ("lead@example.com", "second@example.com"):
        assert notes.count(f'<a href="/admin/contacts/{ids[email]}">{email}</a>') == 4, email  # 2 notify, 2 task
    assert not re.search(r">#\d+</a>", notes)
    # the tasks' contacts and the notifications' contacts: one query for the page, however many rows
    assert len([s for s in statements if re.search(r"\bFROM contacts\b", s)]) == 1, statements
    admin = signed_in(app, "admin")
    assert post(admin, f"/admin/contacts/{ids['lead@example.com']}/erase", confirm="yes").status_code == 302
    notes = admin.get("/admin/tasks/").get_data(as_text=True).split('id="notes-head"')[1]
    assert notes.count('<span class="hint">erased</span>') == 4
    assert notes.count(f'<a href="/admin/contacts/{ids["second@example.com"]}">second@example.com</a>') == 4
