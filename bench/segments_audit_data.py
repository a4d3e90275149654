"""Data and pages of the Segments and Audit log areas for bench/bench_admin_pages.py: a handful of segments over the
contacts, and an audit log of 1,000,000 entries (a year of them; a rare actor among many frequent ones)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text

AUDIT_ROWS = 1_000_000
KINDS = ("rule", "segment", "contact", "task", "template", "user", "apikey", "message")
SEGMENTS = {
    "VIPs": 'tag == "vip"',
    "High scorers": "contact.score >= 50",
    "Engaged VIPs": 'tag == "vip" and tag == "newsletter" and contact.score >= 20',
    "Annas": 'contact.first_name == "Ana" or contact.first_name == "Anna"',
}


def fill(app, audit_rows: int = AUDIT_ROWS) -> None:
    """The segments and an audit log of *audit_rows* entries (``INSERT … SELECT`` from a recursive counter, as the
    contacts)."""
    from server.db import get_session
    from server.models import Segment, utcnow

    base = utcnow().strftime("%Y-%m-%d %H:%M:%S")
    kinds = " ".join(f"WHEN {i} THEN '{k}'" for i, k in enumerate(KINDS))
    with app.app_context():
        session = get_session()
        session.add_all(Segment(name=name, condition=condition) for name, condition in SEGMENTS.items())
        session.execute(
            text(f"""
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)
            INSERT INTO audit_log (at, actor, action, target_type, target_id, detail)
            SELECT datetime(:base, '-' || ((:count - i) * 31) || ' seconds'),
                   CASE WHEN i % 10000 = 0 THEN 'user:999' WHEN i % 3 = 0 THEN 'cli' ELSE 'user:' || (1 + i % 5) END,
                   'x.updated', CASE i % {len(KINDS)} {kinds} END, CAST(i % 5000 AS TEXT), '{{"changed": ["name"]}}'
            FROM n"""),
            {"count": audit_rows, "base": base},
        )
        session.commit()


def pages(app, client) -> list[tuple[str, Any]]:
    """The pages to time, and the editor's live preview (a form post, as htmx sends it while typing)."""
    import re
    from datetime import timedelta

    from bench.crm_data import page_link
    from server.db import get_session
    from server.models import AuditEntry, Segment, utcnow

    with app.app_context():
        segment_id = get_session().scalar(select(Segment.id).where(Segment.name == "Engaged VIPs"))
        newest = get_session().scalar(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(1))
    day = (utcnow() - timedelta(days=180)).date().isoformat()
    page = client.get(f"/admin/segments/{segment_id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    def preview() -> Any:
        response = client.post(
            "/admin/segments/preview",
            data={"csrf_token": token, "condition": SEGMENTS["Engaged VIPs"]},
            headers={"HX-Request": "true"},
        )
        assert response.status_code == 200 and "segment-count" in response.get_data(as_text=True)
        return response

    return [
        ("Segments: the list (live counts)", "/admin/segments/"),
        ("Segments: one segment (count and sample)", f"/admin/segments/{segment_id}"),
        ("Segments: the editor's live count and sample", preview),
        ("Audit log (1,000,000 entries)", "/admin/audit/"),
        ("Audit log: next page", f"/admin/audit/?after={page_link(app, '|||', (newest - 50,))}"),
        ("Audit log: a rare actor", "/admin/audit/?actor=user:999"),
        ("Audit log: one kind", "/admin/audit/?kind=template"),
        ("Audit log: one day, months ago", f"/admin/audit/?since={day}&until={day}"),
    ]
