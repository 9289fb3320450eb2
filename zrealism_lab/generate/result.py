"""What every run returns beside its pictures: status, metrics, timings, notes, the engine it ran on and where its
record went. Static and temporal results extend this one shape."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..metrics import MetricReport


@dataclass(kw_only=True)
class RunResult:
    metrics: MetricReport | None
    status: Literal["completed", "cancelled"]
    timings: dict[str, float]
    warnings: list[str]
    engine: dict[str, Any]  # Engine.describe(): model set, hardware plan, loaded components
    run_dir: Path | None = None
    record: dict[str, Any] = field(default_factory=dict)
    adapters: dict[str, Any] = field(default_factory=dict)  # AdapterPlan.to_record(): LoRAs, embeddings, IP-Adapter
    speed: dict[str, Any] = field(default_factory=dict)  # SpeedPlan.to_dict(): the mode and what it changed
