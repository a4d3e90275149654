import pytest
from sqlalchemy import select

from server.db import get_session
from server.models import Contact, Event, Message, utcnow


@pytest.fixture
def contact_id(app):
    with app.app_context():
        session = get_session()
        contact = Contact(email="reader@example.com", phone="+4930123456", fields={})
        session.add(contact)
        session.commit()
        return contact.id


@pytest.fixture
def public_id(app, contact_id):
    """The random id the contact's signed links carry."""
    with app.app_context():
        return get_session().get(Contact, contact_id).public_id


@pytest.fixture
def sent_message(app, contact_id):
    """A message sent an hour ago, so opens and clicks are not 'seconds after send'."""
    from datetime import timedelta

    with app.app_context():
        session = get_session()
        msg = Message(
            key="journey:1:step:2",
            contact_id=contact_id,
            channel="email",
            template="news",
            status="sent",
            sent_at=utcnow() - timedelta(hours=1),
            data={},
        )
        session.add(msg)
        session.commit()
        return msg.key


def events(app, name=None):
    with app.app_context():
        query = select(Event).order_by(Event.id)
        if name:
            query = query.where(Event.name == name)
        return list(get_session().scalars(query))


HUMAN = {
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
}
