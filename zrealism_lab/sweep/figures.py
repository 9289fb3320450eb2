"""Metric-versus-parameter figures of a sweep, one per (axis, metric), the other axis as the hue."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

HEADLINE_ONLY = True


def default_metrics(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The headline image-pair metrics the rows hold (all pair metrics in them when none is a headline one)."""
    from ..metrics import metric_names

    present = {key for row in rows for key in row}
    names = [name for name in metric_names("pair", headline_only=HEADLINE_ONLY) if name in present]
    return names or [name for name in metric_names() if name in present]


def metric_figures(rows: Sequence[Mapping[str, Any]], axes: Sequence[str],
                   metrics: Sequence[str] | None = None) -> list[tuple[str, str, Any]]:
    """(axis, metric, Figure) for every axis with more than one value and every metric, from completed rows.
    With two or more axes, the first other axis with several values colours the lines."""
    from ..plots import plot_metric_vs_parameter

    done = [row for row in rows if row.get("status") == "completed"]
    if not done:
        return []
    names = list(metrics) if metrics is not None else default_metrics(done)
    varied = [axis for axis in axes if len({repr(row.get(axis)) for row in done}) > 1]
    figures = []
    for axis in varied:
        hue = next((other for other in varied if other != axis), None)
        for metric in names:
            if any(metric in row for row in done):
                figures.append((axis, metric, plot_metric_vs_parameter(done, axis, metric, hue=hue)))
    return figures
