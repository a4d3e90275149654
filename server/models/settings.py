"""Settings changed in the admin UI: one row per setting, and a counter every change moves on.

The effective configuration is defaults < these rows < the config file < the environment
(``server.instance_settings``); processes compare the counter to the one they last read, per request and per job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, JsonType, UTCDateTime, utcnow


class StoredSetting(Base):
    """One setting's value as an admin saved it (``key`` as in ``app.config``, without ``NUDGE_``)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the value as JSON: a string, number, boolean or (teams) a mapping
    value: Mapped[Any] = mapped_column(JsonType, nullable=False)
    #: who saved it: ``user:3``
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SettingsVersion(Base):
    """The settings' version: one row (``scope`` "settings"), moved on in the transaction of every change."""

    __tablename__ = "settings_version"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
