"""The link rewriter keeps every byte it does not have to change, and wraps only what a reader follows."""

from __future__ import annotations

import pytest

from server.engine.tracking import add_pixel, rewrite_html, rewrite_text, tracked_link

BASE = "https://nudge.example"


def wrap(url: str) -> str:
    return f"{BASE}/c/<{url}>" if tracked_link(url, BASE) else url


@pytest.mark.parametrize(
    "source,expected",
    [
        ('<a href="https://a.example/x">x</a>', '<a href="https://nudge.example/c/&lt;https://a.example/x&gt;">x</a>'),
        # attribute order and other attributes are kept; quotes become double quotes on the rewritten tag only
        (
            "<A class=btn HREF='https://a.example/?p=1&amp;q=2' target=_blank>go</A>",
            '<A class="btn" href="https://nudge.example/c/&lt;https://a.example/?p=1&amp;q=2&gt;" '
            'target="_blank">go</A>',
        ),
        ('<a href="https://a.example/" data-nudge-track="off">x</a>', '<a href="https://a.example/">x</a>'),
        ('<a href="mailto:a@b.example">m</a><a href="tel:+1555">t</a><a href="#top">#</a><a href="/rel">r</a>', None),
        ('<a href="https://nudge.example/u/TOKEN">leave</a><a href="https://nudge.example/p/TOKEN">prefs</a>', None),
        ('<!-- <a href="https://a.example/">x</a> --><script>"<a href=\'https://a.example/\'>"</script>', None),
        ("<p title='<a href=\"https://a.example/\">'>no link here</p>", None),
        ('<a name="top">anchor without href</a>', None),
    ],
)
def test_rewrite_html(source, expected):
    assert rewrite_html(source, wrap) == (source if expected is None else expected)


def test_everything_around_a_link_is_kept_byte_for_byte():
    head = '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><style>\n p { x: "<a href=y>" }\n</style></head>\n'
    body = "<body>\r\n<p>Grüße &nbsp; &amp; <b>bold</b>\n\n\t"
    tail = "</p>\n<img src=logo.png alt=''>\n</body></html>"
    out = rewrite_html(head + body + '<a href="https://a.example/">x</a>' + tail, wrap)
    assert out == head + body + '<a href="https://nudge.example/c/&lt;https://a.example/&gt;">x</a>' + tail


def test_the_pixel_goes_before_the_body_ends_or_at_the_end():
    assert add_pixel("<body><p>x</p></BODY></html>", "https://n.example/o/t.gif").endswith(
        '<img src="https://n.example/o/t.gif" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0"></BODY></html>'
    )
    assert add_pixel("<p>x</p>", "https://n.example/o/t.gif").startswith('<p>x</p><img src="https://n.example/o/t.gif"')


@pytest.mark.parametrize(
    "text,expected",
    [
        ("see https://a.example/x.", "see https://nudge.example/c/<https://a.example/x>."),
        ("(https://a.example/x)", "(https://nudge.example/c/<https://a.example/x>)"),
        ("https://w.example/A_(b), ok", "https://nudge.example/c/<https://w.example/A_(b)>, ok"),
        ("leave: https://nudge.example/u/TOKEN", "leave: https://nudge.example/u/TOKEN"),
        ("mail a@b.example or ftp://x.example", "mail a@b.example or ftp://x.example"),
    ],
)
def test_rewrite_text(text, expected):
    assert rewrite_text(text, wrap) == expected
