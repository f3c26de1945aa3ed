"""Small server-rendered SVG charts: lines (with gaps for empty buckets) and
bars.  No JavaScript and no build step: the page ships the drawing."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["Series", "bar_chart", "line_chart", "nice_ticks"]

_W, _H = 560, 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 14, 28
PALETTE = ("#2563eb", "#f97316", "#059669", "#db2777")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # None: no data in that bucket (a gap)
    colour: str = PALETTE[0]


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``top``."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _plot_box() -> tuple[float, float, float, float]:
    return _LEFT, _TOP, _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM


def _frame(
    title: str, labels: Sequence[str], ticks: list[float], fmt: Callable[[float], str]
) -> list[str]:
    x0, y0, w, h = _plot_box()
    top = ticks[-1] or 1.0
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {_W} {_H}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for tick in ticks:
        y = y0 + h - h * tick / top
        parts.append(
            f'<line x1="{x0}" x2="{x0 + w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{x0 - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
            f"{escape(fmt(tick))}</text>"
        )
    shown = max(1, math.ceil(len(labels) / 6))  # at most ~6 x labels
    for i, label in enumerate(labels):
        if i % shown == 0 or (i == len(labels) - 1 and len(labels) <= 6):
            x = _x(i, len(labels))
            parts.append(
                f'<text x="{x:.1f}" y="{_H - 8}" class="tick" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    return parts


def _x(i: int, n: int) -> float:
    x0, _, w, _ = _plot_box()
    return x0 + (w * (i + 0.5) / n if n else 0)


def _y(value: float, top: float) -> float:
    _, y0, _, h = _plot_box()
    return y0 + h - h * value / (top or 1.0)


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
) -> Markup:
    """One polyline per series; a bucket without data breaks the line."""
    values = [v for s in series for v in s.values if v is not None]
    ticks = nice_ticks(max(values, default=0.0))
    parts = _frame(title, labels, ticks, fmt)
    n = len(labels)
    for s in series:
        run: list[str] = []
        for i, value in enumerate([*s.values, None]):
            if value is not None:
                run.append(f"{_x(i, n):.1f},{_y(value, ticks[-1]):.1f}")
                continue
            if len(run) > 1:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{s.colour}" '
                    'stroke-width="2" stroke-linejoin="round"/>'
                )
            parts += [
                f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.5" fill="{s.colour}"/>'
                for p in run
            ]
            run = []
    parts.append(_legend(series))
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    colour: str = PALETTE[2],
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
) -> Markup:
    """One bar per bucket, each with its value as a tooltip."""
    ticks = nice_ticks(max(values, default=0.0))
    parts = _frame(title, labels, ticks, fmt)
    _, _, w, _ = _plot_box()
    width = max(2.0, w / max(1, len(values)) * 0.7)
    base = _y(0.0, ticks[-1])
    for i, value in enumerate(values):
        y = _y(value, ticks[-1])
        parts.append(
            f'<rect x="{_x(i, len(values)) - width / 2:.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{max(0.0, base - y):.1f}" fill="{colour}" rx="1.5">'
            f"<title>{escape(labels[i])}: {escape(fmt(value))}</title></rect>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _legend(series: Sequence[Series]) -> str:
    if len(series) < 2:
        return ""
    x = _W - _RIGHT
    items = []
    for s in reversed(series):
        x -= 9 + 7 * len(s.name) + 16
        items.append(
            f'<rect x="{x}" y="2" width="9" height="9" rx="2" fill="{s.colour}"/>'
            f'<text x="{x + 13}" y="10" class="tick">{escape(s.name)}</text>'
        )
    return "".join(items)
