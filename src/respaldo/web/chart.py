"""Charts of a database's backups over time, as inline SVG drawn on the server: no
charting library and no script for the browser to run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from respaldo.operations.views import BackupView

_WIDTH, _HEIGHT, _PAD = 640, 160, 36


@dataclass(frozen=True)
class Series:
    """One line: its label (already translated), colour, and value of a backup."""

    label: str
    colour: str
    value: Callable[[BackupView], float | None]
    format: Callable[[float], str]


def line_chart(
    title: str,
    backups: Sequence[BackupView],
    series: Sequence[Series],
    most: str = "max {value}",
) -> Markup:
    """An SVG with one small line chart per series, oldest backup on the left.

    Each chart is scaled to its own maximum and labelled with it (``most``, in the page's
    language: "máx. 1,1 MB"), and the SVG carries a text description (``<title>``,
    ``<desc>``) for screen readers.
    """
    ordered = sorted(backups, key=lambda b: b.timestamp)
    parts: list[Markup] = []
    descriptions: list[str] = []
    for index, line in enumerate(series):
        values = [line.value(b) for b in ordered]
        points = [(i, v) for i, v in enumerate(values) if v is not None]
        top = max((v for _, v in points), default=0.0)
        parts.append(
            Markup(
                '<g transform="translate(0,{offset})">'
                '<text x="4" y="14" class="chart-label">{label} ({top})</text>'
                '<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" '
                'stroke="#6e7781" stroke-width="1"/>'
            ).format(
                offset=index * (_HEIGHT + 10),
                label=line.label,
                top=most.format(value=line.format(top)),
                left=_PAD,
                right=_WIDTH - 8,
                base=_HEIGHT - 8,
            )
        )
        if points and top > 0:
            span = max(len(ordered) - 1, 1)
            coords = " ".join(
                f"{_PAD + (_WIDTH - _PAD - 8) * i / span:.1f},"
                f"{_HEIGHT - 8 - (_HEIGHT - 32) * v / top:.1f}"
                for i, v in points
            )
            parts.append(
                Markup(
                    '<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'
                ).format(colour=line.colour, coords=coords)
            )
            descriptions.append(
                f"{line.label}: {line.format(points[-1][1])} "
                f"({most.format(value=line.format(top))})"
            )
        parts.append(Markup("</g>"))
    return Markup(
        '<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        'xmlns="http://www.w3.org/2000/svg"><title>{title}</title><desc>{desc}</desc>{body}</svg>'
    ).format(
        width=_WIDTH,
        height=len(series) * (_HEIGHT + 10),
        title=title,
        desc="; ".join(descriptions),
        body=Markup("").join(parts),
    )
