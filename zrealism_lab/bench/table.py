"""The bench's report: one row per measured figure, the machine it ran on, and the Markdown and JSON of both."""
from __future__ import annotations

import os
import platform
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

GIB = 2 ** 30
NO_GPU = "not yet measured (no GPU)"


@dataclass
class Row:
    """One measured figure: what, value, unit, target and whether it was met."""

    section: str
    what: str
    value: float | str | None
    unit: str = ""
    target: str = ""  # e.g. "<= 1.05"
    met: bool | None = None
    note: str = ""
    status: str = "measured"  # or NO_GPU, "skipped: ...", "failed: ..."

    def value_text(self) -> str:
        if self.status != "measured":
            return self.status
        return format_value(self.value)

    def met_text(self) -> str:
        return "" if self.met is None else ("yes" if self.met else "NO")


@dataclass
class BenchReport:
    machine: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    mode: str = "quick"
    seconds: float = 0.0

    def add(self, rows: Row | Sequence[Row]) -> None:
        self.rows.extend([rows] if isinstance(rows, Row) else rows)

    def to_markdown(self) -> str:
        m = self.machine
        lines = [
            f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB RAM; torch {m.get('torch')} "
            f"({m.get('torch_threads')} threads), diffusers {m.get('diffusers')}, Python {m.get('python')}"
            + (f"; GPU {m['gpu']}" if m.get("gpu") else "; no GPU"),
            (f"Load average (1 min) at start {m.get('load_start')}, at end {m.get('load_end')}; "
             f"bench mode {self.mode}, {self.seconds:.0f} s in all."),
            "",
            "| section | what | value | unit | target | met? | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in self.rows:
            cells = [row.section, row.what, row.value_text(), row.unit, row.target, row.met_text(), row.note]
            lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "mode": self.mode, "seconds": round(self.seconds, 2),
                "rows": [asdict(r) for r in self.rows]}


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        v = float(value)
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 1:
            return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
        return f"{v:.3g}"
    return str(value)


def format_list(values: Sequence[float]) -> str:
    return "[" + ", ".join(format_value(v) for v in values) + "]"


def target_met(value: float | None, target: str) -> bool | None:
    """Check ``value`` against a target written as "<= 1.05", "< 1", ">= 2", "== 0" or "yes" (true)."""
    if target == "yes" and isinstance(value, bool):
        return value
    match = re.fullmatch(r"\s*(<=|<|>=|>|==)\s*([-+0-9.eE]+)\s*", target or "")
    if value is None or match is None or not isinstance(value, (int, float)):
        return None
    op, limit = match.group(1), float(match.group(2))
    return {"<=": value <= limit, "<": value < limit, ">=": value >= limit, ">": value > limit,
            "==": value == limit}[op]


def row(section: str, what: str, value: Any, unit: str = "", target: str = "", note: str = "") -> Row:
    return Row(section, what, value, unit, target, target_met(value, target) if target else None, note)


def failed_row(section: str, what: str, exc: BaseException) -> Row:
    text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:160]
    return Row(section, what, None, status="failed: " + text)


def machine_info() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "platform": platform.platform(), "load_start": load_average(),
    }
    try:
        import diffusers

        info["diffusers"] = diffusers.__version__
    except ImportError:
        info["diffusers"] = None
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / GIB, 1)
    except ImportError:
        info["memory_gib"] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = f"{props.name} ({props.total_memory / GIB:.0f} GiB)"
    return info


def load_average() -> float | None:
    """The 1-minute load average, recorded with the table: a busy machine explains slow figures."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None
