"""The Segments area through the test client: the list with live counts, the editor's live diagnostics, count and
sample, create/edit/delete (refused while a rule or a segment uses it) — roles, CSRF, escaping, audit rows."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from server.db import get_session
from server.engine.scope import Scope
from server.models import Contact, ContactTag, Segment
from server.segments import compile_condition, count

from ..helpers import load_rules, signed_in
from .crm_helpers import BREAKOUT, SCRIPT, audited, escaped, page_flash, post

VIP = 'tag == "vip"'


@pytest.fixture
def people(app):
    """12 VIPs (one with hostile names), 5 others; the ids of the VIPs, in id order."""
    with app.app_context():
        session = get_session()
        vips = []
        for n in range(17):
            contact = Contact(email=f"p{n}@example.com", first_name=SCRIPT if n == 0 else f"P{n}", last_name=BREAKOUT)
            session.add(contact)
            session.flush()
            if n % 17 < 12:
                session.add(ContactTag(contact_id=contact.id, tag="vip"))
                vips.append(contact.id)
        session.commit()
        return vips


def _segment(app, name: str, condition: str, description: str = "") -> int:
    with app.app_context():
        session = get_session()
        row = Segment(name=name, condition=condition, description=description)
        session.add(row)
        session.commit()
        return row.id


def _exists(app, name: str) -> bool:
    with app.app_context():
        return get_session().scalar(select(Segment.id).where(Segment.name == name)) is not None


def _sample_ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<a href="/admin/contacts/(\d+)">#', page)]


def _count_of(page: str) -> int:
    return int(re.search(r'<strong id="segment-count">(\d+)</strong>', page).group(1))


# -- roles -----------------------------------------------------------------------------------------------------
def test_a_viewer_reads_segments_and_their_members_but_changes_nothing(app, people):
    segment_id = _segment(app, "VIPs", VIP)
    viewer = signed_in(app, "viewer")
    listing = viewer.get("/admin/segments/").get_data(as_text=True)
    assert f'href="/admin/segments/{segment_id}">VIPs</a>' in listing and ">12</td>" in listing
    assert '<a href="/admin/segments/" aria-current="page">Segments</a>' in listing  # in the navigation
    assert "New segment" not in listing
    page = viewer.get(f"/admin/segments/{segment_id}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and _count_of(text) == 12 and _sample_ids(text) == people[:10]
    assert "Save segment" not in text and "Delete segment" not in text and "hx-post" not in text
    assert re.search(r"<textarea id=\"segment-condition\"[^>]*\breadonly\b", text)
    assert viewer.get("/admin/segments/new").status_code == 403
    for url, form in (
        ("/admin/segments/new", {"name": "Mine", "condition": VIP}),
        (f"/admin/segments/{segment_id}", {"condition": 'tag == "x"'}),
        (f"/admin/segments/{segment_id}/delete", {}),
        ("/admin/segments/preview", {"condition": VIP}),
    ):
        assert post(viewer, url, **form).status_code == 403, url
    assert (
        viewer.post("/admin/segments/validate", json={"source": VIP}, headers={"X-CSRF-Token": viewer.csrf}).status_code
        == 403
    )
    assert _exists(app, "VIPs") and not _exists(app, "Mine")
    assert audited(app, "segment.created") == [] and audited(app, "segment.deleted") == []


@pytest.mark.parametrize("role", ["editor", "admin"])
def test_an_editor_or_admin_creates_a_segment_audited_with_a_flash(app, people, role):
    client = signed_in(app, role)
    assert "New segment" in client.get("/admin/segments/").get_data(as_text=True)
    response = post(client, "/admin/segments/new", name="VIPs", condition=VIP, description=f"Best {SCRIPT}")
    assert response.status_code == 302
    with app.app_context():
        row = get_session().scalar(select(Segment).where(Segment.name == "VIPs"))
        assert row.condition == VIP and row.description == f"Best {SCRIPT}"
    assert response.headers["Location"] == f"/admin/segments/{row.id}"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert html.unescape(page_flash(page)) == "Segment 'VIPs' is saved: 12 contact(s) in it now."
    escaped(page, f"Best {SCRIPT}")
    (entry,) = audited(app, "segment.created")
    assert entry.target_id == "VIPs" and entry.actor.startswith("user:")


def test_changes_need_the_csrf_token(app, people):
    segment_id = _segment(app, "VIPs", VIP)
    editor = signed_in(app, "editor")
    assert post(editor, "/admin/segments/new", csrf=False, name="Mine", condition=VIP).status_code == 400
    assert post(editor, f"/admin/segments/{segment_id}/delete", csrf=False).status_code == 400
    assert post(editor, "/admin/segments/preview", hx=True, csrf=False, condition=VIP).status_code == 400
    assert not _exists(app, "Mine") and _exists(app, "VIPs")


# -- live diagnostics, count and sample --------------------------------------------------------------------------
def test_the_live_preview_counts_and_samples_as_the_segment_engine_does(app, people):
    editor = signed_in(app, "editor")
    answer = post(editor, "/admin/segments/preview", hx=True, condition=VIP)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and page.startswith('<div id="segment-preview"')
    with app.app_context():
        expected = count(get_session(), compile_condition(get_session(), VIP).tree, scope=Scope.of)
    assert _count_of(page) == expected == 12
    assert _sample_ids(page) == people[:10]  # the first ten members, linked to their pages
    escaped(page, SCRIPT, BREAKOUT)  # hostile names shown as text
    narrower = post(editor, "/admin/segments/preview", hx=True, condition=f'{VIP} and contact.first_name == "P5"')
    assert _count_of(narrower.get_data(as_text=True)) == 1


def test_a_typo_is_reported_at_its_line_and_column_and_nothing_is_counted(app, people):
    editor = signed_in(app, "editor")
    condition = 'tag == "vip"\n  and contact.frist_name == "Ann"'
    page = post(editor, "/admin/segments/preview", hx=True, condition=condition).get_data(as_text=True)
    assert 'data-line="2" data-col="7"' in page and "line 2, column 7" in page and "first_name" in page
    assert 'id="segment-count"' not in page
    assert 'id="segment-condition-error"' not in page  # a refused save's error under the condition stays
    fixed_page = post(editor, "/admin/segments/preview", hx=True, condition=VIP).get_data(as_text=True)
    assert '<p id="segment-condition-error" hx-swap-oob="delete"></p>' in fixed_page  # it goes once it checks
    answer = editor.post("/admin/segments/validate", json={"source": condition}, headers={"X-CSRF-Token": editor.csrf})
    (problem,) = answer.json["diagnostics"]
    assert (problem["severity"], problem["line"], problem["col"]) == ("error", 2, 7)
    assert "first_name" in problem["message"] + (problem["hint"] or "")
    fixed = editor.post("/admin/segments/validate", json={"source": VIP}, headers={"X-CSRF-Token": editor.csrf})
    assert fixed.json == {"diagnostics": []}
    assert editor.post("/admin/segments/validate", json={}, headers={"X-CSRF-Token": editor.csrf}).status_code == 400


def test_a_bad_condition_or_name_is_refused_and_nothing_saved(app, people):
    editor = signed_in(app, "editor")
    bad = post(editor, "/admin/segments/new", name="Broken", condition='tag == "vip" and')
    assert bad.status_code == 422 and "The segment was not saved: line 1" in html.unescape(bad.get_data(as_text=True))
    assert 'aria-invalid="true"' in bad.get_data(as_text=True)
    named = post(editor, "/admin/segments/new", name=SCRIPT, condition=VIP)
    assert named.status_code == 422
    escaped(named.get_data(as_text=True), SCRIPT)
    _segment(app, "VIPs", VIP)
    twice = post(editor, "/admin/segments/new", name="VIPs", condition='tag == "other"')
    assert twice.status_code == 422 and "exists already" in twice.get_data(as_text=True)
    assert post(editor, "/admin/segments/new", name="Empty", condition="  ").status_code == 422
    with app.app_context():
        assert list(get_session().scalars(select(Segment.name))) == ["VIPs"]
    assert audited(app, "segment.created") == []


def test_editing_changes_the_condition_audited_and_hostile_conditions_are_escaped(app, people):
    segment_id = _segment(app, "VIPs", VIP)
    editor = signed_in(app, "editor")
    hostile = f'{VIP} or contact.first_name == "{SCRIPT}"'
    response = post(editor, f"/admin/segments/{segment_id}", condition=hostile, description="")
    assert response.status_code == 302
    page = editor.get(response.headers["Location"]).get_data(as_text=True)
    assert "is saved: 12 contact(s)" in page  # the hostile-named contact is a VIP already
    escaped(page, SCRIPT)
    escaped(editor.get("/admin/segments/").get_data(as_text=True), SCRIPT)
    (entry,) = audited(app, "segment.updated")
    assert entry.detail == {"changed": ["condition"]}
    refused = post(editor, f"/admin/segments/{segment_id}", condition="tag ==")
    assert refused.status_code == 422
    with app.app_context():
        assert get_session().get(Segment, segment_id).condition == hostile  # unchanged
    assert editor.get("/admin/segments/999999").status_code == 404


# -- delete ------------------------------------------------------------------------------------------------------
def test_delete_is_refused_while_an_active_rule_a_draft_or_a_segment_uses_it(app, people):
    segment_id = _segment(app, "VIPs", VIP)
    load_rules(app, 'rule "VIP welcome"\nwhen form.submitted and in segment "VIPs" then\n  send email welcome\nend\n')
    editor = signed_in(app, "editor")
    refused = post(editor, f"/admin/segments/{segment_id}/delete")
    text = html.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 409 and "Segment 'VIPs' was not deleted: rule 'VIP welcome' use(s) it" in text
    assert _exists(app, "VIPs")

    # the rule's newest version, a draft, no longer uses it, but the active one does: still refused
    with app.app_context():
        from server.models import Rule

        rule_id = get_session().scalar(select(Rule.id))
    draft = post(
        editor,
        f"/admin/rules/{rule_id}",
        source='rule "VIP welcome"\nwhen form.submitted then\n  send email welcome\nend\n',
    )
    assert draft.status_code == 302
    assert post(editor, f"/admin/segments/{segment_id}/delete").status_code == 409

    # a draft of a new rule uses it, and so does another segment
    assert (
        post(
            editor, "/admin/rules/new", source='rule "Draft"\nwhen a.b and not in segment "VIPs" then\n  stop\nend\n'
        ).status_code
        == 302
    )
    _segment(app, "Rich VIPs", 'in segment "VIPs" and contact.score > 10')
    text = html.unescape(post(editor, f"/admin/segments/{segment_id}/delete").get_data(as_text=True))
    assert "rule 'Draft', rule 'VIP welcome', segment 'Rich VIPs' use(s) it" in text
    assert audited(app, "segment.deleted") == []


def test_delete_of_an_unused_segment(app, people):
    segment_id = _segment(app, "VIPs", VIP)
    load_rules(app)  # a rule that uses no segment
    editor = signed_in(app, "editor")
    response = post(editor, f"/admin/segments/{segment_id}/delete")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/segments/"
    assert (
        html.unescape(page_flash(editor.get("/admin/segments/").get_data(as_text=True))) == "Segment 'VIPs' is deleted."
    )
    assert not _exists(app, "VIPs")
    (entry,) = audited(app, "segment.deleted")
    assert entry.target_id == "VIPs"


def test_a_segment_that_would_be_in_itself_is_refused(app, people):
    vips = _segment(app, "VIPs", VIP)
    _segment(app, "Rich VIPs", 'in segment "VIPs" and contact.score > 10')
    editor = signed_in(app, "editor")
    looped = post(editor, f"/admin/segments/{vips}", condition='in segment "Rich VIPs"')
    assert looped.status_code == 422
    assert "the segment would be in itself ('VIPs' → 'Rich VIPs' → 'VIPs')" in html.unescape(
        looped.get_data(as_text=True)
    )
    assert post(editor, f"/admin/segments/{vips}", condition='in segment "VIPs"').status_code == 422
    with app.app_context():
        assert get_session().get(Segment, vips).condition == VIP
