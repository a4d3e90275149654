"""Segment conditions with `matches`: refused with the reason when RE2 cannot run the pattern."""

import pytest


@pytest.mark.parametrize(
    "pattern,used",
    [
        (r"(a)\\1", "a backreference"),
        ("a*+", "a possessive quantifier"),
        ("(?>a)", "an atomic group"),
        (r"a\\Z", "`\\Z`"),
        ("a{1001}", "a repetition count above 1000"),
        # 41 characters, 15,005 instructions: 0.8 s a contact on a 10,000-character value
        (r"\\w{1000}\\w{1000}\\w{1000}\\w{1000}\\w{1000}x", "compiles to 15,005 steps, more than 2,000"),
    ],
)
def test_segment_conditions_name_the_unsupported_construct(api, pattern, used):
    response = api.post("/segments/preview", json={"condition": f'contact.email matches "{pattern}"'})
    assert response.status_code == 422
    assert used in response.json["detail"] and "condition:1:" in response.json["detail"]


def test_accepted_patterns_still_match(api):
    api.post("/contacts", json={"email": "s1@example.com"})
    api.post("/contacts", json={"email": "other@example.com"})
    response = api.post("/segments/preview", json={"condition": 'contact.email matches "(?i)^S[0-9]@"'})
    assert response.status_code == 200 and response.json["count"] == 1
