"""Numbers written ``+CC …`` take a fast path that gives exactly phonenumbers' answer, valid or not."""

import random

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.contacts.errors import InvalidInput
from server.contacts.normalize import normalize_phone
from server.contacts.phones import international_e164

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
TYPES = [getattr(phonenumbers.PhoneNumberType, name) for name in dir(phonenumbers.PhoneNumberType) if name.isupper()]


def reference(text: str, region: str | None) -> str | None:
    """The full path: parse, validity, E.164 (None: refused)."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def ours(text: str, region: str | None) -> str | None:
    try:
        return normalize_phone(text, region)
    except InvalidInput:
        return None


def _examples() -> list[str]:
    """Every region's example number of every type, in E.164 and international form, and near misses of each."""
    rng = random.Random(12)
    out: set[str] = set()
    for region in [*REGIONS, "001"]:
        for kind in TYPES:
            if region == "001":
                numbers = [
                    phonenumbers.example_number_for_non_geo_entity(cc)
                    for cc in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS
                ]
            else:
                numbers = [phonenumbers.example_number_for_type(region, kind)]
            for number in numbers:
                if number is None:
                    continue
                e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                international = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
                digits = e164[1:]
                out |= {e164, international, international.replace(" ", "-")}
                out.add("+" + digits[:-1])  # one digit short
                out.add("+" + digits + str(rng.randrange(10)))  # one digit long
                i = rng.randrange(1, len(digits))
                out.add("+" + digits[:i] + str(rng.randrange(10)) + digits[i + 1 :])  # one digit changed
                out.add("+" + digits[:i] + "0" + digits[i:])  # a national prefix in the middle
                cc = str(number.country_code)
                out.add(f"+{cc} 0{digits[len(cc) :]}")  # the trunk prefix written after the country code
    return sorted(out)


EXAMPLES = _examples()


@pytest.mark.parametrize("region", [None, "DE", "US", "GB", "IT", "BR", "de"])
def test_fast_path_agrees_with_phonenumbers_on_every_regions_examples(region):
    fast_hits = 0
    upper = region.upper() if region else None
    for text in EXAMPLES:
        expected = reference(text, upper)
        assert ours(text, region) == expected, text
        fast = international_e164(text, upper)
        if fast is not None:
            fast_hits += 1
            assert fast == expected, text
    # the fast path is taken for most of them (the valid ones), so this test compares something
    assert fast_hits > len(EXAMPLES) // 4


def test_numbers_in_other_shapes_take_the_full_path():
    assert international_e164("+49 30 1234567", None) == "+49301234567"
    assert international_e164("+49-30-1234567", "DE") == "+49301234567"
    for text in ["030 1234567", "+49 (30) 1234567", "+49 30 1234567 ext 12", "+49  30 1234567", "+1 800 FLOWERS"]:
        assert international_e164(text, "DE") is None
    assert normalize_phone("030 1234567", "de") == "+49301234567"
    with pytest.raises(InvalidInput, match="is not a valid phone number"):
        normalize_phone("+49 30 1")


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from([*"0123456789", " ", "-", "+", "+1", "+39 0", "+44", "+7", "+49", "+800"]), max_size=18)
)
def test_any_digits_normalise_as_phonenumbers_says(pieces):
    text = "".join(pieces)
    for region in (None, "IT"):
        assert ours(text, region) == reference(text.strip(), region)
