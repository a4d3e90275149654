"""Charts drawn on the server as inline SVG: horizontal bars (a funnel, split arms) and lines (a time series).

Readable without colour: every bar carries its number as text beside it, every line has its own dash pattern and
marker shape and is named in a legend drawn as those patterns, and each chart is an ``role="img"`` with a
``<title>`` and ``<desc>`` a screen reader announces. Pages put the same numbers in a ``<table>`` next to the
chart (docs/admin.md, "Results"). Every text is escaped here; callers pass plain strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import count

from markupsafe import Markup, escape

#: one per series, in order: (dash pattern, marker shape); colour only adds to these
SERIES_STYLES = (("", "circle"), ("6 4", "square"), ("2 3", "triangle"), ("10 3 2 3", "diamond"), ("1 5", "cross"))
_ids = count(1)


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its value, the text beside it (default: the value), an optional interval [low, high]."""

    label: str
    value: float
    text: str | None = None
    low: float | None = None
    high: float | None = None


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _head(chart_id: str, title: str, desc: str, width: int, height: int, kind: str) -> str:
    return (
        f'<svg class="chart chart-{kind}" id="{chart_id}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(desc)}</desc>'
    )


def bar_chart(bars: Sequence[Bar], *, title: str, desc: str = "", maximum: float | None = None) -> Markup:
    """Horizontal bars, one a row, each labelled on its left and with its number (or *text*) on its right.

    :param maximum: the value of a full bar (default: the largest value or interval end); 1.0 for rates.
    """
    label_w, bar_w, text_w, row_h = 240, 400, 380, 28
    width, height = label_w + bar_w + text_w, max(1, len(bars)) * row_h + 8
    top = maximum or max([b.high if b.high is not None else b.value for b in bars] + [0]) or 1
    chart_id = f"chart-{next(_ids)}"
    out = [_head(chart_id, title, desc or _describe(bars), width, height, "bars")]
    for i, bar in enumerate(bars):
        y = 4 + i * row_h
        w = max(0.0, min(1.0, bar.value / top)) * bar_w
        label = bar.label if len(bar.label) <= 36 else bar.label[:35] + "…"
        text = _text(bar)
        out.append(
            f'<g class="bar"><title>{escape(_line(bar))}</title>'  # the row's hover text
            f'<text class="chart-label" x="{label_w - 8}" y="{y + 18}" text-anchor="end">'
            f"<title>{escape(bar.label)}</title>{escape(label)}</text>"
            f'<rect class="chart-track" x="{label_w}" y="{y + 4}" width="{bar_w}" height="{row_h - 10}"/>'
            f'<rect class="chart-bar" x="{label_w}" y="{y + 4}" width="{_num(w)}" height="{row_h - 10}"/>'
        )
        if bar.low is not None and bar.high is not None:
            x1 = label_w + max(0.0, min(1.0, bar.low / top)) * bar_w
            x2 = label_w + max(0.0, min(1.0, bar.high / top)) * bar_w
            mid = y + row_h / 2 - 1
            out.append(
                f'<path class="chart-interval" d="M{_num(x1)} {_num(mid)}H{_num(x2)}'
                f'M{_num(x1)} {_num(mid - 6)}V{_num(mid + 6)}M{_num(x2)} {_num(mid - 6)}V{_num(mid + 6)}"/>'
            )
        out.append(f'<text class="chart-value" x="{label_w + bar_w + 8}" y="{y + 18}">{escape(text)}</text></g>')
    out.append("</svg>")
    return Markup("".join(out))


def _text(bar: Bar) -> str:
    return bar.text if bar.text is not None else _num(bar.value)


def _line(bar: Bar) -> str:
    return f"{bar.label}: {_text(bar)}"


def _describe(bars: Sequence[Bar]) -> str:
    return "; ".join(_line(b) for b in bars)


def _path(*points: tuple[float, float], close: bool = True) -> str:
    d = "".join(f"{'M' if i == 0 else 'L'}{_num(x)} {_num(y)}" for i, (x, y) in enumerate(points))
    return d + ("Z" if close else "")


def _marker(shape: str, x: float, y: float) -> str:
    if shape == "circle":
        return f'<circle cx="{_num(x)}" cy="{_num(y)}" r="3.5"/>'
    if shape == "square":
        return f'<rect x="{_num(x - 3.5)}" y="{_num(y - 3.5)}" width="7" height="7"/>'
    if shape == "triangle":
        return f'<path d="{_path((x, y - 4.5), (x + 4.5, y + 3.5), (x - 4.5, y + 3.5))}"/>'
    if shape == "diamond":
        return f'<path d="{_path((x, y - 5), (x + 5, y), (x, y + 5), (x - 5, y))}"/>'
    cross = _path((x - 4, y - 4), (x + 4, y + 4), close=False) + _path((x + 4, y - 4), (x - 4, y + 4), close=False)
    return f'<path class="chart-cross" d="{cross}"/>'


def line_chart(
    x_labels: Sequence[str], series: Mapping[str, Sequence[float | None]], *, title: str, desc: str = ""
) -> Markup:
    """Lines over *x_labels* (days), one per series, each with its own dash and marker, named in a legend."""
    left, right, top_pad, plot_h, legend_h = 44, 20, 12, 160, 26
    plot_w = 460
    width, height = left + plot_w + right, top_pad + plot_h + 40 + legend_h
    values: list[float] = [v for points in series.values() for v in points if v is not None]
    top = max(values + [0]) or 1
    n = len(x_labels)
    chart_id = f"chart-{next(_ids)}"
    totals = "; ".join(f"{name}: {_num(sum(v for v in pts if v is not None))} in all" for name, pts in series.items())
    out = [_head(chart_id, title, desc or totals, width, height, "lines")]
    base_y = top_pad + plot_h

    def x_at(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else i * plot_w / (n - 1))

    def y_at(v: float) -> float:
        return base_y - v / top * plot_h

    out.append('<g class="chart-axes">')
    for frac in (0, 0.5, 1):
        y = base_y - frac * plot_h
        out.append(f'<path class="chart-grid" d="M{left} {_num(y)}H{left + plot_w}"/>')
        out.append(
            f'<text class="chart-tick" x="{left - 6}" y="{_num(y + 4)}" text-anchor="end">{_num(top * frac)}</text>'
        )
    step = max(1, -(-n // 5))
    for i in range(0, n, step):
        x, label = _num(x_at(i)), escape(x_labels[i])
        out.append(f'<text class="chart-tick" x="{x}" y="{base_y + 18}" text-anchor="middle">{label}</text>')
    out.append("</g>")
    for k, (name, points) in enumerate(series.items()):
        dash, shape = SERIES_STYLES[k % len(SERIES_STYLES)]
        coords = [(x_at(i), y_at(v)) for i, v in enumerate(points) if v is not None]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<g class="chart-series series-{k}"><title>{escape(name)}</title>')
        if len(coords) > 1:
            out.append(f'<path class="chart-line" d="{_path(*coords, close=False)}"{dash_attr}/>')
        out.extend(_marker(shape, x, y) for x, y in coords)
        lx = left + k * 170
        ly = height - 10
        out.append(
            f'<path class="chart-line" d="M{lx} {ly - 4}H{lx + 28}"{dash_attr}/>{_marker(shape, lx + 14, ly - 4)}'
            f'<text class="chart-legend" x="{lx + 34}" y="{ly}">{escape(name)}</text></g>'
        )
    out.append("</svg>")
    return Markup("".join(out))


__all__ = ["SERIES_STYLES", "Bar", "bar_chart", "line_chart"]
