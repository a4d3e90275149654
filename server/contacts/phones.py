"""A fast path for phone numbers written in international form (``+49 30 123456``), with phonenumbers' own answer.

``phonenumbers.parse`` spends most of its time on what such a number does not need: looking for an extension,
vanity letters, an IDD prefix or non-ASCII digits. For text that is a ``+``, then ASCII digits with single spaces or
hyphens between groups, none of those steps changes anything (none of its patterns matches), so the number is the
``+`` and its digits; the steps that remain are phonenumbers' own, called in the order ``parse`` calls them, and the
validity check and E.164 formatting are its public functions. Anything else, or any number this path cannot finish,
goes to the full ``parse`` (tests compare both paths over every region's example numbers and their near misses).
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import phonenumberutil as util
from phonenumbers.phonemetadata import PhoneMetadata

#: a ``+``, then ASCII digits in groups separated by one space or hyphen: no extension, letters or IDD possible
_INTERNATIONAL = re.compile(r"\+[0-9]+(?:[ -][0-9]+)*")
#: what ``parse`` does not let through as a national number's length
_NOT_A_NATIONAL_LENGTH = (
    util.ValidationResult.TOO_SHORT,
    util.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    util.ValidationResult.INVALID_LENGTH,
)


def international_e164(text: str, region: str | None) -> str | None:
    """The E.164 form of *text* when it is a valid number written ``+CC …``, exactly as the full path gives it.

    :param region: the upper-case default region passed to ``parse`` (it decides which metadata is read).
    :return: None when the text has another shape or the number is not valid: the full path then decides (and
        words the error).
    """
    if not _INTERNATIONAL.fullmatch(text):
        return None
    digits = text[1:].replace(" ", "").replace("-", "")
    if len(digits) <= util._MIN_LENGTH_FOR_NSN:
        return None
    country_code, national = util._extract_country_code(digits)
    if country_code == 0 or len(national) < util._MIN_LENGTH_FOR_NSN:
        return None
    number_region = util.region_code_for_country_code(country_code)
    if number_region != region:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, number_region)
    else:
        metadata = PhoneMetadata.metadata_for_region(region, None)
    if metadata is None:
        return None
    _, potential, _ = util._maybe_strip_national_prefix_carrier_code(national, metadata)
    if util._test_number_length(potential, metadata) not in _NOT_A_NATIONAL_LENGTH:
        national = potential
    if not util._MIN_LENGTH_FOR_NSN <= len(national) <= util._MAX_LENGTH_FOR_NSN:
        return None
    number = phonenumbers.PhoneNumber(country_code=country_code)
    util._set_italian_leading_zeros_for_phone_number(national, number)
    number.national_number = int(national)
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
