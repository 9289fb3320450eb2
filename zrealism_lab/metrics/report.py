"""Result objects of an evaluation: one Metric per number, gathered in a MetricReport."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import SettingsError

_ARROWS = {"higher": "↑", "lower": "↓", "none": "·"}


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    direction: str  # "higher" or "lower" is better, "none" for descriptive values
    range: tuple[float, float]  # may hold ±inf for unbounded ends
    unit: str
    meaning: str
    group: str

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "value": float(self.value),
            "direction": self.direction,
            # strict JSON has no infinity: an unbounded end is written as null
            "range": [None if math.isinf(end) else float(end) for end in self.range],
            "unit": self.unit,
            "meaning": self.meaning,
            "group": self.group,
        }


@dataclass
class MetricReport:
    """The metrics of one evaluation.

    ``kind`` is "pair", "clip" or "adherence"; ``common_size`` is the (width, height) at which the two images
    were compared (None for clips and adherence); ``series`` holds per-frame curves of clips;
    ``notes`` say what was resized, skipped or fell back.
    """

    kind: str
    values: list[Metric] = field(default_factory=list)
    common_size: tuple[int, int] | None = None
    notes: list[str] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [metric.name for metric in self.values]

    def __contains__(self, name: object) -> bool:
        return any(metric.name == name for metric in self.values)

    def get(self, name: str) -> Metric:
        for metric in self.values:
            if metric.name == name:
                return metric
        raise SettingsError("metric", name, "one of " + ", ".join(self.names()),
                            "That metric was not measured in this report.")

    def value(self, name: str) -> float:
        return self.get(name).value

    def flat(self) -> dict[str, float]:
        """{name: value}: the shape sweeps put in their result rows."""
        return {metric.name: float(metric.value) for metric in self.values}

    def extend(self, other: "MetricReport") -> None:
        """Append another report's metrics and notes (e.g. control adherence into an image-pair report)."""
        self.values.extend(other.values)
        self.notes.extend(other.notes)
        self.series.update(other.series)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "common_size": list(self.common_size) if self.common_size else None,
            "metrics": [metric.to_dict() for metric in self.values],
            "notes": list(self.notes),
            "series": {name: [float(v) for v in values] for name, values in self.series.items()},
        }

    def as_table(self) -> str:
        rows = [("group", "metric", "value", "unit", "better", "range")]
        for metric in self.values:
            low, high = (_format_end(end) for end in metric.range)
            rows.append((metric.group, metric.name, f"{metric.value:.4g}", metric.unit,
                         _ARROWS.get(metric.direction, "?"), f"[{low}, {high}]"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * width for width in widths))
        if self.common_size:
            lines.append(f"compared at {self.common_size[0]}x{self.common_size[1]} px")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.as_table()


def _format_end(end: float) -> str:
    if math.isinf(end):
        return "∞" if end > 0 else "-∞"
    return f"{end:g}"
