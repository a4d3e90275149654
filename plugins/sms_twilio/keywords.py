"""The opt-out, opt-in and help keywords of an incoming SMS, read the way carriers and Twilio read them.

An opt-out is honoured however it is written: any case, with punctuation, or followed by more words
("Stop.", "stop please", "OPT-OUT now"): a person who wrote STOP first meant it, and a missed opt-out
is the costly mistake. An opt-in or a help request must be the keyword alone (punctuation and case
aside), so an ordinary reply that happens to start with "yes" never re-subscribes anyone. Letters a phone
keyboard may put in for Latin ones (full-width ＳＴＯＰ, 𝐒𝐓𝐎𝐏) count as those (NFKC), and invisible format
characters (a zero-width space) are left out.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

#: Twilio's standard opt-out keywords (plus "OPT OUT", two words, as CTIA lists it)
OPT_OUT = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT")
OPT_IN = ("START", "UNSTOP", "YES")
HELP = ("HELP", "INFO")

_WORDS = re.compile(r"[^\W\d_]+")


class Keyword(NamedTuple):
    kind: str  # "opt_out", "opt_in", "help"
    word: str  # as listed above, e.g. "OPT OUT"


def read_keyword(body: str) -> Keyword | None:
    """The keyword *body* stands for, or None for an ordinary message."""
    text = unicodedata.normalize("NFKC", body or "")
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    words = [word.upper() for word in _WORDS.findall(text)]
    if not words:
        return None
    for keyword in OPT_OUT:
        parts = keyword.split()
        if words[: len(parts)] == parts:
            return Keyword("opt_out", keyword)
    if len(words) == 1:
        if words[0] in OPT_IN:
            return Keyword("opt_in", words[0])
        if words[0] in HELP:
            return Keyword("help", words[0])
    return None
