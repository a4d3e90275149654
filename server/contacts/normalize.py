"""Normalising contact attributes: one address form in the database, whatever came in."""

from __future__ import annotations

import functools
import math
import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import email_validator
import phonenumbers
from email_validator import EmailNotValidError, validate_email
from email_validator.syntax import validate_email_domain_name

from ..sdk import lone_surrogate
from .errors import InvalidInput
from .phones import international_e164

LOCALE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
_LINE_BREAK = re.compile("[\r\n\x0b\x0c\x85\u2028\u2029]")
_ATEXT = r"a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~"
#: a plain ASCII address: a dot-atom before the one ``@``, letters, digits, dots and hyphens after it (most addresses)
_PLAIN_ADDRESS = re.compile(rf"([{_ATEXT}]+(?:\.[{_ATEXT}]+)*)@([a-zA-Z0-9.-]+)\Z")
#: the longest address email-validator accepts, in UTF-8 bytes
_MAX_ADDRESS = 254


def check_text(value: Any, field: str, max_length: int, *, allow_empty: bool = False, one_line: bool = False) -> str:
    """A string that every database stores (no NUL, no lone surrogate) within *max_length* characters.

    :param one_line: refuse line breaks too (names end up in mail headers such as ``To:``).
    """
    if not isinstance(value, str):
        raise InvalidInput(field, f"{field} must be a string")
    if not (value.isascii() and value.isprintable()):  # printable ASCII (most text) holds none of these
        if "\x00" in value:
            raise InvalidInput(field, f"{field} contains a NUL character")
        if lone_surrogate(value):
            raise InvalidInput(field, f"{field} holds a lone UTF-16 surrogate, which is not text")
        if one_line and _LINE_BREAK.search(value):
            raise InvalidInput(field, f"{field} must be one line: remove the line break")
    if len(value) > max_length:
        raise InvalidInput(field, f"{field} is longer than {max_length} characters")
    if not allow_empty and not value.strip():
        raise InvalidInput(field, f"{field} must not be empty")
    return value


def normalize_email(value: Any, field: str = "email") -> str:
    """The lower-cased, normalised address, or :class:`InvalidInput` saying why not."""
    text = check_text(value, field, 320).strip()
    plain = _plain_address(text)
    if plain is not None:
        return plain
    try:
        return _normalized_address(text)
    except EmailNotValidError as exc:
        raise InvalidInput(field, f"{field} {text[:80]!r} is not a valid address: {exc}") from None


def _plain_address(text: str) -> str | None:
    """What email-validator makes of a plain ASCII address, its domain checked once per domain; None when the
    address is not plain or not valid (the full validation then decides, and words the error).

    For such an address email-validator keeps the local part as written and checks the domain on its own, then
    the lengths: the same steps here, with its own domain check, so the result is the same (tests compare both).
    """
    match = _PLAIN_ADDRESS.match(text)
    if match is None:
        return None
    local, domain = match.groups()
    checked = _domain(domain, email_validator.TEST_ENVIRONMENT, email_validator.GLOBALLY_DELIVERABLE)
    if checked is None:
        return None
    normalized = f"{local}@{checked[0]}"
    for form in (text, normalized, f"{local}@{checked[1]}"):
        if len(form.encode()) > _MAX_ADDRESS:
            return None
    return normalized.lower()


@functools.lru_cache(maxsize=4096)
def _domain(domain: str, test_environment: bool, globally_deliverable: bool) -> tuple[str, str] | None:
    """email-validator's (domain, ascii_domain) for an address's *domain*, or None when it refuses it."""
    try:
        info = validate_email_domain_name(
            domain, test_environment=test_environment, globally_deliverable=globally_deliverable
        )
    except EmailNotValidError:
        return None
    return info["domain"], info["ascii_domain"]


@functools.lru_cache(maxsize=65536)
def _normalized_address(text: str) -> str:
    """email_validator's answer is a pure function of the text (no DNS): the addresses seen again skip its ~0.1 ms."""
    return validate_email(text, check_deliverability=False).normalized.lower()


def normalize_phone(value: Any, region: str | None = None, field: str = "phone") -> str:
    """The number in E.164 (``+4930123456``); without a leading ``+`` the *region* (``DE``) is assumed."""
    text = check_text(value, field, 64).strip()
    region = region.upper() if region else None
    fast = international_e164(text, region)  # most stored and imported numbers: the same answer, 4x sooner
    if fast is not None:
        return fast
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        hint = "; write it with the country code, e.g. +49 30 123456" if exc.error_type == 0 else ""
        raise InvalidInput(
            field, f"{field} {text!r} is not a phone number: {exc.args[0] if exc.args else exc}{hint}"
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(field, f"{field} {text!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_timezone(value: Any, field: str = "timezone") -> str:
    text = check_text(value, field, 64).strip()
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            field, f"{field} {text!r} is not a known time zone; use an IANA name like Europe/Berlin"
        ) from None
    return text


def check_locale(value: Any, field: str = "locale") -> str:
    text = check_text(value, field, 32).strip()
    if not LOCALE.match(text):
        raise InvalidInput(field, f"{field} {text!r} is not a locale such as en or de-AT")
    return text


#: the integers every backend stores in JSON: 64-bit
_INT_MIN, _INT_END = -(2**63), 2**63


def flat_json_texts(value: dict[Any, Any], texts: list[str]) -> bool:
    """Whether the object *value* holds only text keys and text, 64-bit integers, finite numbers, booleans and
    nulls that :func:`check_json` takes — all but the check of its texts for a NUL or a lone surrogate: its keys and
    text values are added to *texts*, for the caller to check many objects' texts at once. False for anything else
    (nested values, a value out of range): :func:`check_json` then says what is wrong."""
    for key, item in value.items():
        kind = type(item)
        if type(key) is not str:
            return False
        texts.append(key)
        if kind is str:
            texts.append(item)
        elif kind is int:
            if not _INT_MIN <= item < _INT_END:
                return False
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif item is not None and kind is not bool:
            return False
    return True


def _shown_key(key: str) -> str:
    """*key* quoted for an error, its NUL or surrogate escaped (``'a\\x00'``), a long one cut to its start."""
    return repr(key[:40]) + ("…" if len(key) > 40 else "")


def check_json(value: Any, field: str, depth: int = 0) -> Any:
    """JSON every backend stores: no NUL in strings, finite numbers, 64-bit integers, bounded nesting."""
    if depth > 32:
        raise InvalidInput(field, f"{field} nests deeper than 32 levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(field, f"{field} contains a NUL character")
        if lone_surrogate(value):
            raise InvalidInput(field, f"{field} holds a lone UTF-16 surrogate, which is not text")
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        if not _INT_MIN <= value < _INT_END:
            raise InvalidInput(field, f"{field} is an integer outside the 64-bit range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(field, f"{field} must be a finite number")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_json(item, f"{field}[{i}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(field, f"{field} has a key that is not text ({type(key).__name__})")
            if "\x00" in key:
                raise InvalidInput(field, f"{field} has a key {_shown_key(key)} with a NUL character")
            if lone_surrogate(key):
                raise InvalidInput(
                    field, f"{field} has a key {_shown_key(key)} holding a lone UTF-16 surrogate, which is not text"
                )
            check_json(item, f"{field}.{key}", depth + 1)
    else:
        raise InvalidInput(field, f"{field} holds a value that is not JSON")
    return value


def parse_datetime(value: Any, field: str) -> datetime:
    """An ISO-8601 date-time with a time zone, as aware UTC."""
    if isinstance(value, datetime):
        parsed = value
    else:
        text = check_text(value, field, 64).strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InvalidInput(field, f"{field} {text!r} is not ISO-8601, e.g. 2026-05-01T12:00:00Z") from None
    if parsed.tzinfo is None:
        raise InvalidInput(field, f"{field} needs a time zone, e.g. a trailing Z for UTC")
    if not 1900 <= parsed.year <= 9998:
        raise InvalidInput(field, f"{field} must be a year between 1900 and 9998")
    return parsed.astimezone(UTC)


def parse_date(value: Any, field: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = check_text(value, field, 32).strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(field, f"{field} {text!r} is not a date like 2026-05-01") from None


def iso(value: datetime | None) -> str | None:
    """``2026-05-01T12:00:00Z``: the one text form of a UTC time (sorts as it compares)."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
