"""Bar charts as inline SVG: what ``abuso stats -f html`` draws.

Two shapes are all the page needs (stacked columns per day, horizontal bars per name), so they are drawn
here in a few lines of SVG rather than by importing a plotting library (~1 s of start-up and 50 MB for four
bar charts). Every label is XML-escaped: reporters' addresses come from hostile mail.
"""

from __future__ import annotations

import math
from html import escape

#: Colour-blind friendly categorical palette (Tableau 20 order, as matplotlib's tab20).
PALETTE = ("#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd",
           "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d",
           "#17becf", "#9edae5")
FONT = 'font-family="sans-serif" font-size="11" fill="#333"'


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top`` (1, 2, 5 times a power of ten apart)."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if step < 1:
        step = 1
    return [i * step for i in range(int(math.ceil(top / step)) + 1)]


def _label(text: str, limit: int = 40) -> str:
    return escape(text if len(text) <= limit else text[:limit - 1] + "…")


def stacked_columns(columns: list[str], series: dict[str, list[int]], title: str, unit: str = "incidents") -> str:
    """One column per x label, stacked by series (largest series at the bottom), legend on the right."""
    left, top, right, bottom = 50, 30, 170, 80
    width = max(480, min(1100, 26 * len(columns) + left + right))
    height = 330
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(values[i] for values in series.values()) for i in range(len(columns))]
    ticks = nice_ticks(max(totals, default=0))
    scale = plot_h / ticks[-1]
    slot = plot_w / max(1, len(columns))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img"><title>{escape(title)}</title>',
           f'<text x="{left + plot_w / 2}" y="16" text-anchor="middle" {FONT} font-size="13">{escape(title)}</text>']
    for t in ticks:
        y = top + plot_h - t * scale
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{t:g}</text>')
    for i in range(len(columns)):
        base = 0.0
        for k, (name, values) in enumerate(series.items()):
            if values[i]:
                h = values[i] * scale
                y = top + plot_h - base - h
                out.append(f'<rect x="{left + i * slot + slot * 0.1:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" '
                           f'height="{h:.1f}" fill="{PALETTE[k % len(PALETTE)]}">'
                           f'<title>{escape(columns[i])} {escape(name)}: {values[i]}</title></rect>')
                base += h
    step = max(1, math.ceil(len(columns) / 20))
    for i in range(0, len(columns), step):
        x, y = left + (i + 0.5) * slot, top + plot_h + 12
        out.append(f'<text x="{x:.1f}" y="{y}" text-anchor="end" transform="rotate(-45 {x:.1f} {y})" '
                   f'{FONT}>{escape(columns[i])}</text>')
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#333"/>')
    out.append(f'<text x="12" y="{top + plot_h / 2}" transform="rotate(-90 12 {top + plot_h / 2})" '
               f'text-anchor="middle" {FONT}>{escape(unit)}</text>')
    for k, name in enumerate(series):
        y = top + 4 + 16 * k
        out.append(f'<rect x="{width - right + 14}" y="{y}" width="12" height="10" '
                   f'fill="{PALETTE[k % len(PALETTE)]}"/>')
        out.append(f'<text x="{width - right + 32}" y="{y + 9}" {FONT}>{_label(name, 24)}</text>')
    out.append("</svg>")
    return "".join(out)


def bars(rows: list[tuple[str, int]], title: str, color: str, unit: str = "incidents") -> str:
    """Horizontal bars, one per (label, value), in the given order, each with its value at its end."""
    label_w, right, top, row_h = 230, 60, 30, 24
    width = 760
    height = top + row_h * len(rows) + 30
    plot_w = width - label_w - right
    ticks = nice_ticks(max((v for _, v in rows), default=0))
    scale = plot_w / ticks[-1]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img"><title>{escape(title)}</title>',
           f'<text x="{label_w + plot_w / 2}" y="16" text-anchor="middle" {FONT} font-size="13">'
           f'{escape(title)}</text>']
    for t in ticks:
        x = label_w + t * scale
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - 24}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" {FONT}>{t:g}</text>')
    for i, (name, value) in enumerate(rows):
        y = top + i * row_h
        w = value * scale
        out.append(f'<text x="{label_w - 8}" y="{y + row_h / 2 + 4}" text-anchor="end" {FONT}>{_label(name)}</text>')
        out.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{color}">'
                   f'<title>{escape(name)}: {value}</title></rect>')
        out.append(f'<text x="{label_w + w + 4:.1f}" y="{y + row_h / 2 + 4}" {FONT}>{value}</text>')
    out.append(f'<text x="{label_w + plot_w / 2}" y="{height}" text-anchor="middle" {FONT}>{escape(unit)}</text>')
    out.append("</svg>")
    return "".join(out)
