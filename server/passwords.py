"""What an admin password must be, when a person chooses it (random ones are always strong)."""

from __future__ import annotations

import unicodedata

#: fewest characters a chosen password may have
MIN_LENGTH = 12
#: fewest different characters: ``aaaaaaaaaaaa`` and ``abababababab`` are not passwords
MIN_DISTINCT = 5
#: passwords people pick first; refused whatever their length
COMMON = frozenset(
    {
        "password",
        "password123",
        "password1234",
        "passw0rdpassw0rd",
        "123456789012",
        "1234567890123",
        "qwertyuiopas",
        "qwerty123456",
        "iloveyou1234",
        "letmein12345",
        "administrator",
        "admin1234567",
        "changeme1234",
        "welcome12345",
        "nudgenudgenudge",
    }
)


def password_problem(password: str, email: str = "") -> str | None:
    """Why *password* may not be an admin's password, or None when it may.

    :param email: the account's address: a password made of its name is refused.
    :return: a short reason that fits after "password refused: ".
    """
    if not password:
        return "it is empty"
    if any(unicodedata.category(ch).startswith("C") for ch in password):
        return "it holds control characters (a pasted line break?)"
    if len(password) < MIN_LENGTH:
        return f"it has {len(password)} characters; use at least {MIN_LENGTH}"
    if len(set(password)) < MIN_DISTINCT:
        return f"it uses fewer than {MIN_DISTINCT} different characters"
    lowered = password.lower()
    name = email.lower().partition("@")[0]
    if lowered in COMMON or (len(name) >= 3 and len(lowered.replace(name, "")) < MIN_LENGTH):
        return "it is too easy to guess (a common password, or the account's own name)"
    return None
