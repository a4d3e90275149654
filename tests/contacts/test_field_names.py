"""define_field matches a custom field's name whole: a trailing newline is refused, never stored.

(The API's schema refuses such a name before define_field sees it; the import and other callers rely on it.)
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from server.contacts import InvalidInput, define_field
from server.db import get_session
from server.models import FieldDefinition


@pytest.mark.parametrize("name", ["plan\n", "plan\r\n", "\nplan"])
def test_a_field_name_with_a_newline_is_refused(app, name):
    with app.app_context():
        session = get_session()
        with pytest.raises(InvalidInput) as refused:
            define_field(session, name, "string")
        assert refused.value.field == "name"
        session.rollback()
        assert session.scalar(select(func.count()).select_from(FieldDefinition)) == 0


def test_a_lowercase_name_is_defined(app):
    with app.app_context():
        assert define_field(get_session(), "plan_2", "string").name == "plan_2"
