"""Addresses are normalised exactly as email-validator does it, whether or not they take the plain-address path."""

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from server.contacts.errors import InvalidInput
from server.contacts.normalize import _plain_address, normalize_email

#: pieces that make addresses near every rule: dots, hyphens, IDNA, special-use and numeric domains, lengths
LOCALS = ["a", "User.Name", "x+tag", "a..b", ".a", "a.", "o'brien", "a_b", "ü", '"q"', "a b", "Postmaster", "x" * 64]
LOCALS += ["x" * 65, "x" * 200, "a@b", "<a", "a(b)", "#!$%&'*+/=?^`{|}~-"]
DOMAINS = ["example.com", "Example.COM", "sub.example.co.uk", "localhost", "example", "example.test", "x.invalid"]
DOMAINS += ["x.local", "123.456", "1.2.3.4", "example.123", "-a.com", "a-.com", "a..com", ".a.com", "a.com."]
DOMAINS += ["xn--bcher-kva.example", "xn--a.com", "bücher.example", "[127.0.0.1]", "a" * 63 + ".com"]
DOMAINS += ["a" * 64 + ".com", ".".join(["a" * 60] * 4) + ".com", "x_y.com", "arpa", "x.onion", "ex ample.com", ""]


def reference(text: str) -> str | None:
    """What the full validation makes of *text* (None: refused)."""
    try:
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def ours(text: str) -> str | None:
    try:
        return normalize_email(text)
    except InvalidInput:
        return None


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("local", LOCALS)
def test_plain_address_path_agrees_with_email_validator(local, domain):
    text = f"{local}@{domain}"
    assert ours(text) == reference(text.strip())


def test_plain_addresses_take_the_fast_path():
    assert _plain_address("User.Name+x@Example.COM") == "user.name+x@example.com"
    assert _plain_address("a@localhost") is None  # refused: the full validation words the error
    with pytest.raises(InvalidInput, match="is not a valid address"):
        normalize_email("a@localhost")


PIECES = [*"aZ9._-+@'\"<>ü ", "xn--", "com", ".com", "test", "x" * 60]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
def test_any_text_normalises_as_email_validator_says(text):
    assert ours(text) == reference(text.strip())
