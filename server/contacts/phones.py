"""A fast path for phone numbers written in international form (``+49 30 123456``), with phonenumbers' own answer.

``phonenumbers.parse`` spends most of its time on what such a number does not need: looking for an extension,
vanity letters, an IDD prefix or non-ASCII digits. For text that is a ``+``, then ASCII digits with single spaces or
hyphens between groups, none of those steps changes anything (none of its patterns matches), so the number is the
``+`` and its digits; the steps that remain are phonenumbers' own, called in the order ``parse`` calls them. The
validity check is ``is_valid_number``'s, with its last step (one pattern after another per number type) asked as
one pattern per region and number length, built from the same patterns (:func:`_valid_national`); E.164 is the
``+``, the country code and the national significant number, as ``format_number`` writes it. Anything else, or
any number this path cannot finish, goes to the full ``parse`` (tests compare both paths over every region's
example numbers and their near misses).
"""

from __future__ import annotations

import re
from typing import Any

import phonenumbers
from phonenumbers import phonenumberutil as util
from phonenumbers.phonemetadata import PhoneMetadata, PhoneNumberDesc

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
    if number.national_number == 0:  # format_number's special case: leave it to the full path
        return None
    nsn = util.national_significant_number(number)
    if not _valid(number, country_code, nsn):
        return None
    return f"+{country_code}{nsn}"


def _valid(number: phonenumbers.PhoneNumber, country_code: int, nsn: str) -> bool:
    """``is_valid_number(number)``, its country code and national significant number *nsn* given."""
    region = util.region_code_for_number(number)
    if region is None:
        return False
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region.upper())
    if metadata is None or (
        region != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY
        and country_code != util.country_code_for_valid_region(region)
    ):
        return False
    return _valid_national(metadata, len(nsn)).fullmatch(nsn) is not None


#: (metadata, length) → the pattern a national number of that length matches when its type is known
_TYPED: dict[tuple[int, int], tuple[Any, re.Pattern[str]]] = {}
#: what matches nothing (an empty alternation would match the empty number)
_NOTHING = re.compile(r"(?!)")


def _valid_national(metadata: PhoneMetadata, length: int) -> re.Pattern[str]:
    """One pattern that a national number of *length* digits fully matches exactly when phonenumbers'
    ``_number_type_helper`` gives it a type (not ``UNKNOWN``).

    That helper asks the general description first, then each type's description in turn (mobile only when its
    pattern differs from the fixed line's), and a description matches when its possible lengths (if it lists any)
    hold the number's length and its pattern matches the whole number. For a given length the lengths are
    settled, so the answer is: the general pattern matches, and one of the type patterns whose lengths allow it
    does; a full match of an alternation is a full match of one of its branches.
    """
    key = (id(metadata), length)
    cached = _TYPED.get(key)
    if cached is not None and cached[0] is metadata:
        return cached[1]
    kinds = [
        metadata.premium_rate,
        metadata.toll_free,
        metadata.shared_cost,
        metadata.voip,
        metadata.personal_number,
        metadata.pager,
        metadata.uan,
        metadata.voicemail,
        metadata.fixed_line,
    ]
    if not metadata.same_mobile_and_fixed_line_pattern:
        kinds.append(metadata.mobile)
    typed = [f"(?:{desc.national_number_pattern})" for desc in kinds if desc is not None and _allows(desc, length)]
    general = metadata.general_desc
    if not typed or general is None or not _allows(general, length):
        pattern = _NOTHING
    else:
        pattern = re.compile(f"(?=(?:{general.national_number_pattern})\\Z)(?:{'|'.join(typed)})")
    _TYPED[key] = (metadata, pattern)  # the metadata kept alive with it: its id stays its own
    return pattern


def _allows(desc: PhoneNumberDesc, length: int) -> bool:
    """Whether a number of *length* digits may match *desc* (``_is_number_matching_desc`` before its pattern)."""
    if not desc.national_number_pattern:
        return False
    return not desc.possible_length or length in desc.possible_length
