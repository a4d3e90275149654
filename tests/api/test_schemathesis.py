"""Schemathesis over /api/v1/openapi.json: generated requests, valid and invalid, never get a 5xx,
and every answer matches the documented schema and content type.

Bounded: a few hundred examples per backend, derandomized so a run is repeatable. Path ids are
pointed at seeded records most of the time, so the views' real work runs rather than their 404.
(The pytest plugin's lazy ``from_fixture`` does not run under pytest 9, so the strategy is driven
by hand.)
"""

import base64

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from server.db import get_session
from server.models import Contact, FieldDefinition, Message, Task, Template

from ..helpers import api_key

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def _seed(app) -> dict[str, object]:
    """Records for generated paths to hit (re-made when a generated DELETE removed one)."""
    with app.app_context():
        session = get_session()
        ids = {}
        for name, email in (("contact_id", "seed@example.com"), ("from_id", "other@example.com")):
            contact = session.scalar(select(Contact).where(Contact.email == email))
            if contact is None:
                contact = Contact(email=email, fields={})
                session.add(contact)
                session.flush()
            ids[name] = contact.id
        task = session.scalar(select(Task).limit(1)) or Task(text="call back")
        template = session.scalar(select(Template).limit(1)) or Template(
            channel="email", name="seed", parts={"subject": "Hi", "txt": "Hello"}
        )
        message = session.scalar(select(Message).limit(1)) or Message(
            key="seed", contact_id=ids["contact_id"], channel="email", template="seed", data={}
        )
        if session.scalar(select(FieldDefinition).where(FieldDefinition.name == "plan")) is None:
            session.add(FieldDefinition(name="plan", type="string"))
        session.add_all([task, template, message])
        session.commit()
        ids.update(task_id=task.id, template_id=template.id, message_id=message.id, name="plan")
        return ids


@pytest.mark.parametrize("mode,examples", [(GenerationMode.POSITIVE, 300), (GenerationMode.NEGATIVE, 200)])
def test_generated_requests_get_no_server_error(app, mode, examples):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {api_key(app, 'admin')}"}

    @given(case=schema.as_strategy(mode), aim=st.booleans())
    @settings(
        max_examples=examples, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(case, aim):
        if aim and case.path_parameters:
            seeded = _seed(app)
            for name in case.path_parameters:
                if name in seeded:
                    case.path_parameters[name] = seeded[name]
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS)

    run()


@pytest.mark.parametrize("mode,examples", [(GenerationMode.POSITIVE, 250), (GenerationMode.NEGATIVE, 150)])
def test_the_segment_endpoints_answer_only_what_they_document(app, mode, examples):
    """/v1/batch, /v1/track … (docs/api.md, "Segment-compatible ingest") with the write key as the clients send it
    (the HTTP Basic user): no 5xx, and every status and body is one their description lists (they have no
    catch-all ``default`` answer)."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app).include(path_regex="^/v1/")
    operations = {result.ok().path for result in schema.get_all_operations()}
    assert operations == {f"/v1/{kind}" for kind in ("batch", "track", "identify", "page", "screen", "group", "alias")}
    basic = base64.b64encode(f"{api_key(app, 'ingest')}:".encode()).decode()
    headers = {"Authorization": f"Basic {basic}"}

    @given(case=schema.as_strategy(mode))
    @settings(
        max_examples=examples, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(case):
        response = case.call(headers=headers)
        case.validate_response(response, checks=[*CHECKS, status_code_conformance])

    run()
