"""Phone numbers in E.164 (``+14155552671``): the one form sends, callbacks and contact look-ups agree on."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "it has no (known) country code",
    NumberParseException.NOT_A_NUMBER: "it is not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "it is too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "it is too short",
    NumberParseException.TOO_LONG: "it is too long",
}
_POSSIBLE_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: "its country code is unknown",
    ValidationResult.TOO_SHORT: "it is too short",
    ValidationResult.TOO_LONG: "it is too long",
    ValidationResult.INVALID_LENGTH: "it has the wrong number of digits",
}


def normalise(number: str, region: str | None = None) -> str:
    """Return *number* in E.164.

    :param region: ISO 3166 country code (``US``) assumed for numbers written without ``+<country code>``.
    :raises ValueError: saying why the number cannot be used.
    """
    text = (number or "").strip()
    if not text:
        raise ValueError("empty phone number")
    try:
        parsed = phonenumbers.parse(text, region.upper() if region else None)
    except NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, str(exc))
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE and not text.startswith("+"):
            reason += ": write it as +<country code><number>, or set NUDGE_SMS_DEFAULT_REGION (e.g. US)"
        raise ValueError(f"{text!r} cannot be used: {reason}") from None
    possible = phonenumbers.is_possible_number_with_reason(parsed)
    if possible not in (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        raise ValueError(f"{text!r} cannot be used: {_POSSIBLE_REASONS.get(possible, 'it is not a possible number')}")
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"{text!r} is not a valid phone number for country code +{parsed.country_code}")
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def stored_forms(e164: str) -> list[str]:
    """The ways a contact's phone may have been written down for this E.164 number (for an indexed look-up)."""
    parsed = phonenumbers.parse(e164)
    national = phonenumbers.format_number(parsed, PhoneNumberFormat.NATIONAL)
    forms = {
        e164,
        e164[1:],
        "00" + e164[1:],
        phonenumbers.format_number(parsed, PhoneNumberFormat.INTERNATIONAL),
        national,
        "".join(ch for ch in national if ch.isdigit()),
    }
    return sorted(forms)


def region_of(e164: str) -> str | None:
    """The country an E.164 number belongs to (``US``), used to read national forms of it."""
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164))
