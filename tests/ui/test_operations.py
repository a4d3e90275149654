"""Messages and Tasks in a real browser: resend a failed message and see it arrive at the real SMTP server; mark a
task done; a viewer sees both areas and can change nothing."""

from __future__ import annotations

from sqlalchemy import select

from server.db import get_session
from server.engine.render import save_template
from server.models import Message, Task

from ..engine.test_resend import FlakySmtp
from ..helpers import api_key, load_rules, post_event, run_worker
from .conftest import make_user, shot, sign_in

THANKS = 'rule "Thanks"\nwhen order.paid then\n  send email thanks\nend\n'
HAND_OFF = 'rule "Hand-off"\nwhen form.submitted then\n  task "Call {{ contact.email }}" for "sales" due 1d\nend\n'


def _failed_send(app, client, smtp_server) -> int:
    with app.app_context():
        save_template(get_session(), "email", "thanks", {"subject": "Thanks", "txt": "Thanks for your order."})
        get_session().commit()
    load_rules(app, THANKS)
    smtp_server.stop()
    smtp_server.handler = FlakySmtp()
    smtp_server.start()
    smtp_server.handler.refuse = "554 5.6.0 message content refused"
    post_event(client, api_key(app), email="bea@example.com", event="order.paid")
    run_worker(app)
    smtp_server.handler.refuse = None
    with app.app_context():
        message = get_session().scalar(select(Message))
        assert message.status == "failed"
        return message.id


def test_a_failed_message_is_resent_from_messages_and_arrives(app, client, page, smtp_server):
    make_user(app, "ed@example.com", role="editor")
    message_id = _failed_send(app, client, smtp_server)
    sign_in(page, "ed@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Messages").click()
    row = page.locator(f"#message-{message_id}")
    assert "5.6.0 message content refused" in row.inner_text() and "failed" in row.inner_text()
    page.get_by_label("Channel").select_option("email")
    page.get_by_role("button", name="Show").click()
    shot(page, "messages")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Resend message {message_id}").click()
    page.get_by_role("status").get_by_text(f"1 message(s) queued to be sent again: #{message_id}.").wait_for()
    assert "channel=email" in page.url  # back on the same filtered list
    run_worker(app)
    arrived = smtp_server.wait_for(1)
    assert [m["To"] for m in arrived] == ["bea@example.com"] and arrived[0]["Subject"] == "Thanks"
    page.get_by_label("Show", exact=True).select_option("all")
    page.get_by_role("button", name="Show").click()
    assert "sent" in page.locator(f"#message-{message_id}").inner_text()


def test_a_task_is_marked_done_in_the_inbox(app, client, page, smtp_server):
    app.config["TEAMS"] = {}  # no members to notify: the task alone
    make_user(app, "ed@example.com", role="editor")
    load_rules(app, HAND_OFF)
    post_event(client, api_key(app), email="lead@example.com")
    run_worker(app)
    with app.app_context():
        task_id = get_session().scalar(select(Task.id))
    sign_in(page, "ed@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks").click()
    row = page.locator(f"#task-{task_id}")
    assert "Call lead@example.com" in row.inner_text() and "sales" in row.inner_text()
    shot(page, "tasks")
    row.get_by_role("button", name=f"Mark task {task_id} done").click()
    page.get_by_role("status").get_by_text(f"Task {task_id} is done.").wait_for()
    assert row.locator(".badge").inner_text() == "done"  # the row changed in place (htmx)
    with app.app_context():
        assert get_session().get(Task, task_id).status == "done"


def test_a_viewer_sees_messages_and_tasks_but_changes_nothing(app, client, page, smtp_server):
    make_user(app, "vera@example.com", role="viewer")
    message_id = _failed_send(app, client, smtp_server)
    sign_in(page, "vera@example.com")
    page.goto("/admin/messages/")
    assert page.locator(f"#message-{message_id}").count() == 1
    assert page.get_by_role("button", name=f"Resend message {message_id}").count() == 0
    page.goto("/admin/tasks/")
    assert page.get_by_role("heading", level=1).inner_text() == "Tasks"
    assert page.get_by_role("button", name="Done").count() == 0
