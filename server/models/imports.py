"""What the admin UI's Imports area keeps: each CSV file uploaded, how its columns map, and how far its import got."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import NEVER_REUSE_IDS, Base, JsonType, UTCDateTime, utcnow


class ImportRecord(Base):
    """One CSV import: the uploaded file (kept under the instance's data folder, never in the database), its
    column mapping and merge mode, and its progress as the worker running it reports it.

    ``status`` goes ``draft`` (uploaded, not mapped yet) → ``queued`` → ``running`` → ``done`` or ``failed``;
    ``discarded`` removes the file. ``attempt`` counts the starts, so a job of an earlier attempt does nothing.
    """

    __tablename__ = "imports"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    file_name: Mapped[str] = mapped_column(String(255))
    #: the file's name in the data folder's ``imports/``
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    header: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    #: CSV column → field (``-`` skips the column)
    mapping: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    merge: Mapped[str] = mapped_column(String(16), default="update")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    #: why the import failed (``failed``), in words a person can act on
    error: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the last time the worker reported progress (or the import was queued): a long silence means it stopped
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
