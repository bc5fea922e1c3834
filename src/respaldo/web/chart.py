"""Charts of a database's backups over time, as inline SVG drawn on the server: no
charting library and no script for the browser to run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from respaldo.operations.views import BackupView

_WIDTH, _HEIGHT, _PAD = 640, 160, 36


@dataclass(frozen=True)
class Series:
    """One line: its label (already translated), colour, and value of a backup."""

    label: str
    colour: str
    value: Callable[[BackupView], float | None]
    format: Callable[[float], str]


def line_chart(title: str, backups: Sequence[BackupView], series: Sequence[Series]) -> Markup:
    """An SVG with one small line chart per series, oldest backup on the left.

    Each chart is scaled to its own maximum and labelled with it, and the SVG carries a
    text description (``<title>``, ``<desc>``) for screen readers.
    """
    ordered = sorted(backups, key=lambda b: b.timestamp)
    parts: list[str] = []
    descriptions: list[str] = []
    for index, line in enumerate(series):
        values = [line.value(b) for b in ordered]
        points = [(i, v) for i, v in enumerate(values) if v is not None]
        top = max((v for _, v in points), default=0.0)
        offset = index * (_HEIGHT + 10)
        parts.append(
            f'<g transform="translate(0,{offset})">'
            f'<text x="4" y="14" class="chart-label">{escape(line.label)}'
            f" (max {escape(line.format(top))})</text>"
            f'<line x1="{_PAD}" y1="{_HEIGHT - 8}" x2="{_WIDTH - 8}" y2="{_HEIGHT - 8}" '
            'stroke="#6e7781" stroke-width="1"/>'
        )
        if points and top > 0:
            span = max(len(ordered) - 1, 1)
            coords = " ".join(
                f"{_PAD + (_WIDTH - _PAD - 8) * i / span:.1f},"
                f"{_HEIGHT - 8 - (_HEIGHT - 32) * v / top:.1f}"
                for i, v in points
            )
            parts.append(
                f'<polyline fill="none" stroke="{line.colour}" stroke-width="2" '
                f'points="{coords}"/>'
            )
            last = points[-1][1]
            descriptions.append(f"{line.label}: {line.format(last)} (max {line.format(top)})")
        parts.append("</g>")
    height = len(series) * (_HEIGHT + 10)
    return Markup(
        f'<svg class="chart" role="img" viewBox="0 0 {_WIDTH} {height}" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title><desc>{escape('; '.join(descriptions))}</desc>"
        + "".join(parts)
        + "</svg>"
    )
