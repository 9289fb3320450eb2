"""Two runs side by side: their outputs in equal boxes, every setting that differs (control units one per row, in
full), and their metrics with each difference marked better or worse by the metric's direction (metrics/registry)."""
from __future__ import annotations

import html
from typing import Any, Sequence

import ipywidgets as w

from .run_view import RunView
from .views import THUMB_SIDE, picture_html

# Metrics of the source alone: both runs of one source give the same value, so they say nothing in a comparison.
_SOURCE_ONLY_SUFFIX = "_source"


def units_text(units: Sequence[Any] | None) -> str:
    """Control units one per line: "depth 0.9 [0–1] midas"; none: the preset's default units."""
    if units is None:
        return "the preset's default units"
    if not units:
        return "none"
    lines = []
    for unit in units:
        data = unit if isinstance(unit, dict) else unit.to_dict()
        method = f" {data['method']}" if data.get("method") else ""
        lines.append(f"{data['kind']} {data['scale']:g} [{data['start']:g}–{data['end']:g}]{method}")
    return "\n".join(lines)


def settings_rows(first: Any, second: Any) -> list[tuple[str, str, str]]:
    """(setting, first value, second value) for every setting that differs, in full."""
    a = first.to_dict() if first is not None else {}
    b = second.to_dict() if second is not None else {}
    rows = []
    for key in list(a) + [k for k in b if k not in a]:
        if a.get(key) == b.get(key):
            continue
        if key == "controls":
            rows.append((key, units_text(a.get(key)), units_text(b.get(key))))
        else:
            rows.append((key, str(a.get(key)), str(b.get(key))))
    return rows


def judge(name: str, first: float, second: float) -> str:
    """'better', 'worse' or '' for the second value against the first, by the metric's registered direction."""
    from ..metrics.registry import HIGHER, LOWER, METRICS

    if name not in METRICS or abs(second - first) <= 1e-9 * max(1.0, abs(first)):
        return ""
    direction = METRICS.get(name).direction
    if direction == HIGHER:
        return "better" if second > first else "worse"
    if direction == LOWER:
        return "better" if second < first else "worse"
    return ""


def metric_rows(first: RunView, second: RunView) -> list[tuple[str, float, float, str]]:
    """(metric, first, second, better/worse/'') for the metrics both runs have, source-only ones left out."""
    a, b = first.flat_metrics(), second.flat_metrics()
    return [(name, a[name], b[name], judge(name, a[name], b[name])) for name in a
            if name in b and not name.endswith(_SOURCE_ONLY_SUFFIX)]


def comparison(first: RunView, second: RunView, first_settings: Any, second_settings: Any) -> w.Widget:
    """The two runs' outputs side by side, the settings that differ and the metric differences."""
    a, b = f"#{first.number}", f"#{second.number}"
    pictures = []
    for view in (first, second):
        output = view.output
        pictures.append(picture_html(output, view.label, f"zr-compare-output-{view.number}", THUMB_SIDE + 64)
                        if output is not None else f"<i>{html.escape(view.label)}: no output picture</i>")
    rows = [f"<tr><th>setting</th><th>{a}</th><th>{b}</th></tr>"]
    for key, left, right in settings_rows(first_settings, second_settings):
        rows.append(f'<tr class="zr-diff-{html.escape(key)}"><td>{html.escape(key)}</td>'
                    f'<td class="zr-wrap-text">{html.escape(left)}</td><td class="zr-wrap-text">'
                    f"{html.escape(right)}</td></tr>")
    if len(rows) == 1:
        rows.append('<tr><td colspan="3"><i>same settings</i></td></tr>')
    found = metric_rows(first, second)
    if found:
        rows.append(f"<tr><th>metric</th><th>{a}</th><th>{b}</th><th>{b} − {a}</th></tr>")
    for name, left, right, verdict in found:
        css = f' class="zr-{verdict}"' if verdict else ""
        mark = {"better": " ▲ better", "worse": " ▼ worse"}.get(verdict, "")
        rows.append(f'<tr class="zr-metric-row-{html.escape(name)}"><td>{html.escape(name)}</td><td>{left:.4g}</td>'
                    f"<td>{right:.4g}</td><td{css}>{right - left:+.4g}{mark}</td></tr>")
    table = f'<table class="zr-table zr-compare-table">{"".join(rows)}</table>'
    return w.VBox([w.HTML(f'<div class="zr-compare-pictures">{"".join(pictures)}</div>'), w.HTML(table)])


__all__ = ["comparison", "judge", "metric_rows", "settings_rows", "units_text"]
