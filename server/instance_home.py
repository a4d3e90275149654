"""The instance folder (``NUDGE_HOME`` or the nearest ``nudge-data``) and what it holds: the secret key, the
embedded database a command may not create."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from .config_checks import NoInstance

#: the instance folder ``nudge up`` creates, and every command looks for, when ``NUDGE_HOME`` is not set
HOME_FOLDER = "nudge-data"


def secret_key(home: Path) -> str:
    """Read the instance's secret key, creating it (mode 0600) on first use."""
    path = home / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


@dataclass(frozen=True)
class Home:
    """Where an instance lives, and how it was found."""

    path: Path
    #: the folders searched for ``nudge-data`` (empty when ``NUDGE_HOME`` named the place)
    looked_at: tuple[Path, ...] = ()

    @property
    def explicit(self) -> bool:
        return not self.looked_at


def find_home(explicit: str | None = None, cwd: Path | None = None) -> Home:
    """The instance folder: one answer for every command and every process of ``nudge up``.

    ``NUDGE_HOME`` when it is set; else the nearest ``nudge-data`` folder in the current directory or
    one of its parents (so commands run from a sub-folder of the project find it); else
    ``./nudge-data`` in the current directory, where ``nudge up`` creates a new instance.
    """
    if explicit:
        return Home(Path(explicit).expanduser().resolve())
    here = (cwd or Path.cwd()).resolve()
    looked = tuple(folder / HOME_FOLDER for folder in (here, *here.parents))
    found = next((path for path in looked if path.is_dir()), None)
    return Home(found or looked[0], looked)


def require_instance(home: Home, url: str, explicit_url: bool) -> None:
    """Refuse to start on an embedded SQLite database that does not exist yet: only ``nudge up`` and
    ``nudge db upgrade`` create one (a command run from the wrong folder must not make an empty instance)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return  # PostgreSQL, or an in-memory database: nothing is created on disk
    database = Path(parsed.database)
    if database.exists():
        return
    todo = "create it with `nudge up` or `nudge db upgrade`"
    if explicit_url:
        raise NoInstance("DATABASE_URL", f"no database at {database}", todo)
    if home.explicit:
        raise NoInstance(
            "HOME",
            f"{home.path} holds no Nudge instance (no {database.name})",
            f"set NUDGE_HOME to the folder `nudge up` created, or {todo}",
        )
    if home.path.is_dir():
        raise NoInstance(
            "HOME",
            f"{home.path} holds no Nudge instance (no {database.name})",
            f"run this from the project folder, set NUDGE_HOME, or {todo}",
        )
    looked = ", ".join(str(path) for path in home.looked_at)
    raise NoInstance(
        "HOME",
        f"no Nudge instance found (looked for {looked})",
        "run this from the project folder, set NUDGE_HOME, or start one with `nudge up`",
    )
