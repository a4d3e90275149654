"""Open and click tracking added to a rendered message: signed click links and an open pixel.

Called once per message, after its template is rendered and before the channel gets it (the message's key and
its contact are known then, so every link is signed for exactly this message and person). Only a channel that
declares ``tracking = True`` gets it; the core never names a channel. What is tracked:

- in its HTML parts (``html``), each ``<a href>`` and ``<area href>`` to an ``http(s)`` URL becomes a signed
  click URL (``/c/<token>``) that redirects to it (``TRACK_CLICKS``); an open pixel goes before ``</body>``,
  or at the end without one (``TRACK_OPENS``);
- in its plain-text parts (``txt``), each ``http(s)`` URL, with ``TRACK_TEXT_LINKS`` (default off: a long
  redirect URL in a plain-text mail is ugly and looks like phishing to some filters);
- never: a link with ``data-nudge-track="off"`` (the attribute is removed from the output), ``mailto:``,
  ``tel:``, ``#anchors``, relative links, and Nudge's own signed links (unsubscribe ``/u/``, preferences
  ``/p/``, form confirmations ``/f/``, links already tracked ``/c/``). ``List-Unsubscribe`` is a header the
  channel writes from the message's own unsubscribe URL, which this never touches.

A transactional message (``data.transactional``, or ``data.marketing`` false: a double opt-in confirmation)
is tracked only with ``TRACK_TRANSACTIONAL``; ``UNTRACKED_CHANNELS`` turns tracking off for channels by name.

The HTML is read by the standard library's :class:`html.parser.HTMLParser` (a real tokenizer: tags inside
comments, ``<script>``, ``<style>`` and attribute values are not mistaken for links), and only the start tags
of the links it rewrites are written anew; every other byte of the part is kept as rendered.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from html.parser import HTMLParser
from typing import Any

from ..config_checks import names_of
from ..links import click_url, open_url
from .render import HTML_PARTS, ONE_LINE_PARTS

__all__ = ["OPT_OUT_ATTRIBUTE", "add_tracking", "tracked_link", "tracking_problem", "wants_tracking"]

#: the attribute that keeps a link out of click tracking: ``<a href="…" data-nudge-track="off">``
OPT_OUT_ATTRIBUTE = "data-nudge-track"
#: values of :data:`OPT_OUT_ATTRIBUTE` that opt a link out
_OFF = frozenset({"off", "false", "no", "0"})
#: the elements whose ``href`` is a link a reader follows
_LINK_TAGS = frozenset({"a", "area"})
#: paths of Nudge's own signed links, never wrapped: unsubscribe, preferences, form confirmations, clicks
_OWN_PATHS = ("/u/", "/p/", "/f/", "/c/", "/o/")
#: an http(s) URL in plain text; trailing punctuation of the sentence is trimmed by :func:`_text_url`
_TEXT_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\")]}>"
PIXEL_TAG = (
    '<img src="{src}" width="1" height="1" alt="" '
    'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">'
)


def wants_tracking(channel: Any, config: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    """Whether a message of *channel* (its class) with outbox *data* gets tracking under *config*."""
    if not getattr(channel, "tracking", False) or channel.name in untracked_channels(config):
        return False
    transactional = bool(data.get("transactional")) or not data.get("marketing", True)
    if transactional and not config.get("TRACK_TRANSACTIONAL", False):
        return False
    return bool(config.get("TRACK_OPENS", True) or config.get("TRACK_CLICKS", True))


def untracked_channels(config: Mapping[str, Any]) -> frozenset[str]:
    """The channel names of ``UNTRACKED_CHANNELS``."""
    return names_of(config.get("UNTRACKED_CHANNELS"))


def tracking_problem(config: Mapping[str, Any], channels: Mapping[str, Any]) -> str | None:
    """What is wrong with ``UNTRACKED_CHANNELS`` given the installed *channels*, or None."""
    unknown = sorted(untracked_channels(config) - set(channels))
    if unknown:
        return f"names no installed channel: {', '.join(unknown)}; installed: {', '.join(sorted(channels))}"
    return None


def tracked_link(url: str, base_url: str) -> bool:
    """Whether *url* is a link click tracking wraps: http(s), and not one of Nudge's own signed links."""
    if not url.lower().startswith(("http://", "https://")):
        return False
    base = base_url.rstrip("/")
    return not (url.startswith(base + "/") and url[len(base) :].startswith(_OWN_PATHS))


def add_tracking(
    parts: Mapping[str, str],
    *,
    public_id: str,
    message_key: str,
    config: Mapping[str, Any],
    app: Any = None,
) -> dict[str, str]:
    """*parts* with click links and the open pixel added (see the module's notes for what is and is not)."""
    base = str(config["BASE_URL"])
    clicks = bool(config.get("TRACK_CLICKS", True))

    def wrap(url: str) -> str:
        return click_url(public_id, message_key, url, app=app) if clicks and tracked_link(url, base) else url

    out = dict(parts)
    for part, text in parts.items():
        if not text:
            continue
        if part in HTML_PARTS:
            text = rewrite_html(text, wrap)
            if config.get("TRACK_OPENS", True):
                text = add_pixel(text, open_url(public_id, message_key, app=app))
        elif part not in ONE_LINE_PARTS and config.get("TRACK_TEXT_LINKS", False):
            text = rewrite_text(text, wrap)
        out[part] = text
    return out


def add_pixel(text: str, src: str) -> str:
    """*text* with the open pixel just before its last ``</body>``, or at the end."""
    pixel = PIXEL_TAG.format(src=html.escape(src, quote=True))
    at = text.lower().rfind("</body>")
    return text[:at] + pixel + text[at:] if at >= 0 else text + pixel


def rewrite_text(text: str, wrap: Callable[[str], str]) -> str:
    """*text* with each http(s) URL replaced by ``wrap(url)``; punctuation ending a sentence stays outside."""

    def one(match: re.Match[str]) -> str:
        url, tail = _text_url(match.group(0))
        return wrap(url) + tail

    return _TEXT_URL.sub(one, text)


def _text_url(found: str) -> tuple[str, str]:
    """Split a URL found in text from the punctuation after it (a closing bracket it opened is kept)."""
    url = found
    while url and url[-1] in _TRAILING:
        closer = url[-1]
        opener = {")": "(", "]": "[", "}": "{"}.get(closer)
        if opener and url.count(opener) >= url.count(closer):
            break
        url = url[:-1]
    return url, found[len(url) :]


def rewrite_html(text: str, wrap: Callable[[str], str]) -> str:
    """*text* with each link's ``href`` replaced by ``wrap(href)`` and the opt-out attribute removed.

    Only the start tags of links that change are written anew (attributes in their order, values quoted and
    escaped); all other bytes are kept.
    """
    if "href" not in text.lower():  # no link to find (the parser lower-cases attribute names): skip parsing
        return text
    finder = _LinkFinder()
    finder.feed(text)
    finder.close()
    if not finder.links:
        return text
    starts = [0]
    for source_line in text.split("\n"):
        starts.append(starts[-1] + len(source_line) + 1)
    pieces: list[str] = []
    done = 0
    for (line, col), raw, attrs, closed in finder.links:
        begin = starts[line - 1] + col
        if text[begin : begin + len(raw)] != raw:  # never rewrite what the parser did not point at exactly
            continue
        new = _link_tag(raw, attrs, closed, wrap)
        if new is None:
            continue
        pieces.append(text[done:begin])
        pieces.append(new)
        done = begin + len(raw)
    pieces.append(text[done:])
    return "".join(pieces)


def _link_tag(raw: str, attrs: list[tuple[str, str | None]], closed: bool, wrap: Callable[[str], str]) -> str | None:
    """The start tag *raw* rewritten, or None when it stays as it is."""
    opted_out = any(name == OPT_OUT_ATTRIBUTE and (value or "").strip().lower() in _OFF for name, value in attrs)
    changed = False
    kept: list[tuple[str, str | None]] = []
    for name, value in attrs:
        if name == OPT_OUT_ATTRIBUTE:
            changed = True
            continue
        if name == "href" and value is not None and not opted_out:
            new = wrap(value.strip())
            if new != value.strip():
                value, changed = new, True
        kept.append((name, value))
    if not changed:
        return None
    tag = raw[1:].split(None, 1)[0].rstrip("/>")
    body = "".join(f" {n}" if v is None else f' {n}="{html.escape(v, quote=True)}"' for n, v in kept)
    return f"<{tag}{body}{' /' if closed else ''}>"


class _LinkFinder(HTMLParser):
    """Collects the start tags of links: (position, source text, attributes, self-closing)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[tuple[int, int], str, list[tuple[str, str | None]], bool]] = []

    def _link(self, tag: str, attrs: list[tuple[str, str | None]], closed: bool) -> None:
        raw = self.get_starttag_text()
        if tag in _LINK_TAGS and raw and any(name == "href" for name, _ in attrs):
            self.links.append((self.getpos(), raw, attrs, closed))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._link(tag, attrs, False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._link(tag, attrs, True)
