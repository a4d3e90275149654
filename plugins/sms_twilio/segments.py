"""How many SMS segments a text takes, and in which encoding (GSM 03.38 7-bit, else UCS-2).

A text whose every character is in the GSM-7 alphabet (its basic set, or its extension table, where a character
takes two septets) goes as GSM-7: 160 septets in one segment, 153 in each of several (the rest carries the
concatenation header). Any other character makes the whole text UCS-2: 70 UTF-16 units alone, 67 in each of
several. Carriers bill per segment, so the template editor shows the count.
"""

from __future__ import annotations

from typing import NamedTuple

#: GSM 03.38 basic character set (one septet each)
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: GSM 03.38 extension table (an escape septet plus one: two septets each)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


class Segments(NamedTuple):
    """A text's encoding (``GSM-7`` or ``UCS-2``), its length in that encoding's units and its number of segments."""

    encoding: str
    units: int
    number: int


def segments(text: str) -> Segments:
    """Count the segments *text* takes as one SMS."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text):
        units = sum(2 if c in GSM7_EXTENDED else 1 for c in text)
        single, each = 160, 153
        encoding = "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2  # characters beyond the BMP take two units
        single, each = 70, 67
        encoding = "UCS-2"
    count = 0 if units == 0 else 1 if units <= single else -(-units // each)
    return Segments(encoding, units, count)


__all__ = ["GSM7_BASIC", "GSM7_EXTENDED", "Segments", "segments"]
