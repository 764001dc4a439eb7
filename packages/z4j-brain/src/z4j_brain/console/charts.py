"""SVG charts drawn on the server: tasks finished and failed per time bucket, and a bar of fires
by how they went. Pure: figures in, markup out. Every text that came from an agent (an engine's
name) is escaped here; colours are CSS classes (the page's CSP allows no inline style).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from markupsafe import Markup, escape

WIDTH: Final = 360
HEIGHT: Final = 120
_PAD: Final = 4
_AXIS: Final = 16


def bars(
    title: str,
    done: Sequence[int],
    failed: Sequence[int],
    bucket_minutes: int,
) -> Markup:
    """A bar per bucket (oldest first): finished tasks, their failed part drawn over them, with
    the figures in the title and a text summary for screen readers."""
    count = max(1, len(done))
    top = max([d + f for d, f in zip(done, failed, strict=True)] + [1])
    slot = (WIDTH - 2 * _PAD) / count
    usable = HEIGHT - _AXIS - _PAD
    total_done, total_failed = sum(done), sum(failed)
    label = (
        f"{title}: {total_done + total_failed} tasks finished in the last "
        f"{count * bucket_minutes} minutes, {total_failed} failed"
    )
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
        f'<line class="axis" x1="{_PAD}" y1="{HEIGHT - _AXIS}" x2="{WIDTH - _PAD}" '
        f'y2="{HEIGHT - _AXIS}"/>',
    ]
    for i, (ok, bad) in enumerate(zip(done, failed, strict=True)):
        x = _PAD + i * slot + 1
        width = max(1.0, slot - 2)
        for value, below, css in ((ok + bad, 0, "ok"), (bad, 0, "failed")):
            if value <= 0:
                continue
            height = usable * value / top
            y = HEIGHT - _AXIS - height - below
            minutes_ago = (count - i) * bucket_minutes
            parts.append(
                f'<rect class="{css}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
                f'height="{height:.1f}"><title>{value} {"failed" if css == "failed" else "tasks"}'
                f" {minutes_ago} to {minutes_ago - bucket_minutes} min ago</title></rect>"
            )
    parts.append(
        f'<text class="tick" x="{_PAD}" y="{HEIGHT - 3}">-{count * bucket_minutes} min</text>'
        f'<text class="tick end" x="{WIDTH - _PAD}" y="{HEIGHT - 3}">now (max {top})</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def share(title: str, counts: Mapping[str, int], order: Sequence[str]) -> Markup:
    """One horizontal bar split by ``order``'s keys (CSS class ``part-KEY``), with a legend."""
    total = sum(counts.get(k, 0) for k in order)
    label = f"{title}: " + ", ".join(f"{counts.get(k, 0)} {k.replace('_', ' ')}" for k in order)
    parts = [
        f'<svg class="share" viewBox="0 0 {WIDTH} 24" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]
    x = 0.0
    if total == 0:
        parts.append(f'<rect class="empty" x="0" y="0" width="{WIDTH}" height="24"/>')
    for key in order:
        value = counts.get(key, 0)
        if total == 0 or value == 0:
            continue
        width = WIDTH * value / total
        parts.append(
            f'<rect class="part-{escape(key)}" x="{x:.1f}" y="0" width="{width:.1f}" '
            f'height="24"><title>{value} {escape(key.replace("_", " "))}</title></rect>'
        )
        x += width
    parts.append("</svg>")
    return Markup("".join(parts))
