"""The common shape of a benchmark's results: rows of figure, baseline measured in the same run, ratio, target and
verdict; and the one table ``make bench`` prints from them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

COLUMNS = ("path", "figure", "baseline (same run)", "ratio", "target", "verdict")


@dataclass(frozen=True)
class Row:
    """One measured figure next to its baseline.

    :param path: what was measured, with its size ("contacts page, 1,000,000 contacts: tag vip").
    :param figure: the measurement, in *unit*.
    :param baseline: the baseline's measurement, in *unit*, taken in the same run (0 when there is none).
    :param baseline_name: what the baseline is ("GET /admin/login").
    :param target: the target in words ("< 300 ms", ">= 0.5x baseline").
    :param met: whether *figure* meets *target*; None when the bench failed before it could say.
    :param error: why the bench failed (then *figure* and *baseline* mean nothing).
    """

    path: str
    figure: float
    unit: str
    baseline: float
    baseline_name: str
    target: str
    met: bool | None
    error: str | None = None

    @property
    def ratio(self) -> float:
        return self.figure / self.baseline if self.baseline else math.nan

    @property
    def verdict(self) -> str:
        if self.error is not None or self.met is None:
            return "ERROR"
        return "met" if self.met else "MISSED"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": None if math.isnan(self.ratio) else self.ratio, "verdict": self.verdict}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


def under(path: str, figure: float, unit: str, baseline: float, baseline_name: str, limit: float) -> Row:
    """A row whose target is *figure* below *limit* (a time)."""
    return Row(path, figure, unit, baseline, baseline_name, f"< {limit:g} {unit}", figure < limit)


def ratio_at_least(path: str, figure: float, unit: str, baseline: float, baseline_name: str, least: float) -> Row:
    """A row whose target is *figure* at least *least* times *baseline* (a rate)."""
    met = bool(baseline) and figure / baseline >= least
    return Row(path, figure, unit, baseline, baseline_name, f">= {least:g}x baseline", met)


def failed(path: str, error: str) -> Row:
    """The row of a bench that stopped with *error*."""
    return Row(path, math.nan, "", 0.0, "", "", None, error)


def number(value: float, unit: str = "") -> str:
    """*value* with its *unit*, with as many decimals as its size needs."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f}" + (f" {unit}" if unit else "")


def cells(row: Row) -> tuple[str, ...]:
    if row.error is not None:
        return (row.path, "-", "-", "-", row.target or "-", f"ERROR: {row.error}")
    baseline = f"{number(row.baseline, row.unit)} ({row.baseline_name})" if row.baseline_name else "-"
    ratio = "-" if math.isnan(row.ratio) else f"{row.ratio:,.0f}x" if row.ratio >= 100 else f"{row.ratio:.3g}x"
    return (row.path, number(row.figure, row.unit), baseline, ratio, row.target, row.verdict)


def render(rows: list[Row], title: str = "") -> str:
    """The rows as one plain-text table (a Markdown table: it reads in a terminal and pastes into docs)."""
    table = [COLUMNS, *(cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]

    def line(values: tuple[str, ...]) -> str:
        return "| " + " | ".join(value.ljust(width) for value, width in zip(values, widths, strict=True)) + " |"

    out = [title] if title else []
    out += [line(COLUMNS), "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
    out += [line(values) for values in table[1:]]
    met = sum(1 for row in rows if row.verdict == "met")
    out.append(
        f"{met} of {len(rows)} figures meet their target"
        + (f"; {len(rows) - met} do not (MISSED or ERROR)" if met < len(rows) else ".")
    )
    return "\n".join(out)


__all__ = ["COLUMNS", "Row", "cells", "failed", "number", "ratio_at_least", "render", "under"]
