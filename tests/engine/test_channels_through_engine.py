"""Rules send through every built-in channel with the data each needs: rendered text, or signed JSON."""

import json

import pytest

from server.db import get_session
from server.engine.render import save_template
from server.models import WebhookEndpoint

from ..helpers import api_key, load_rules, post_event, run_worker


@pytest.fixture
def webhook_app(config):
    """The app, allowed to call webhooks on 127.0.0.1 (refused by default: SSRF guard)."""
    from server.app import create_app

    app = create_app({**config, "WEBHOOK_ALLOW": "127.0.0.1"})
    yield app
    app.extensions["nudge.queue"].close()
    app.extensions["nudge.db"].dispose()


def test_webhook_step_posts_contact_and_event_signed(webhook_app, receiver):
    server, secret = receiver
    app, client = webhook_app, webhook_app.test_client()
    with app.app_context():
        session = get_session()
        session.add(WebhookEndpoint(name="billing_sync", url=f"{server.url}/hook", secrets=[secret]))
        session.commit()
    load_rules(app, 'rule "Sync"\nwhen order.placed then\n  send webhook billing_sync\nend\n')
    post_event(client, api_key(app), email="buyer@example.com", event="order.placed", sku="A-1")
    run_worker(app)
    [hit] = server.received
    assert hit.verified_by == [secret]
    body = json.loads(hit.body)  # Standard Webhooks' envelope: {type, timestamp, data}
    assert body["data"]["contact"]["email"] == "buyer@example.com"
    assert body["data"]["event"] == {"sku": "A-1"}
    assert hit.headers["webhook-id"].startswith("enr:")


def test_email_renders_the_stored_template_with_event_props(app, client, smtp_server):
    with app.app_context():
        session = get_session()
        save_template(
            session,
            "email",
            "receipt",
            {"subject": "Order {{ event.sku }}", "txt": "Thanks {{ contact.email }} for {{ event.sku }}"},
        )
        session.commit()
    load_rules(app, 'rule "Receipt"\nwhen order.placed then\n  send email receipt\nend\n')
    post_event(client, api_key(app), email="r@example.com", event="order.placed", sku="B-2")
    run_worker(app)
    [msg] = smtp_server.wait_for(1)
    assert msg["Subject"] == "Order B-2"
    assert "Thanks r@example.com for B-2" in msg.get_body(("plain",)).get_content()
    assert msg["List-Unsubscribe"] and msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
