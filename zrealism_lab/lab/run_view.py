"""One finished still as the Results, History and Compare views show it, whether it ran in this session (a result
object) or is read back from its run folder (PNG files and record.json): its pictures in pipeline order, its
output, its metrics and its notes. No widgets here."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .state import HistoryEntry


@dataclass
class Picture:
    caption: str
    image: Image.Image
    css: str  # the test hook on the picture


@dataclass
class RunView:
    number: int
    label: str
    pictures: list[Picture]  # source (prepared), control maps, raw output, anchored output
    metrics: Any = None  # a MetricReport
    colour: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    background: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    run_dir: Path | None = None
    random_weights: bool = False
    mask: Any = None  # the prepared subject mask, when known (colour moments over the subject)
    adapters: dict[str, Any] = field(default_factory=dict)  # the record's adapters entry (LoRAs, embeddings, IP)

    def picture(self, css: str) -> Image.Image | None:
        for item in self.pictures:
            if item.css == css:
                return item.image
        return None

    @property
    def output(self) -> Image.Image | None:
        return self.picture("zr-result-output")

    @property
    def source(self) -> Image.Image | None:
        return self.picture("zr-result-source")

    @property
    def raw(self) -> Image.Image | None:
        return self.picture("zr-result-raw")

    def flat_metrics(self) -> dict[str, float]:
        return self.metrics.flat() if self.metrics is not None else {}


def view_of(entry: HistoryEntry) -> RunView:
    """The entry's view: from its result object when it ran in this session, else from its run folder."""
    if entry.result is not None:
        return _from_result(entry)
    if entry.folder is not None and entry.status == "completed":
        return _from_folder(entry)
    raise LookupError(f"Run #{entry.number} {entry.status}: it has no pictures to show.")


def _from_result(entry: HistoryEntry) -> RunView:
    result = entry.result
    context = result.context
    pictures = [Picture("source (prepared)", context.prepared.image, "zr-result-source")]
    for kind, control_map in context.control_maps.items():
        pictures.append(Picture(f"{kind} map ({control_map.method})", control_map.image, f"zr-result-map-{kind}"))
    colour = result.colour
    pictures.append(Picture("raw output", result.raw, "zr-result-raw"))
    pictures.append(Picture(f"output ({colour.method} {colour.strength:g})", result.image, "zr-result-output"))
    random_weights = bool((result.engine or {}).get("models", {}).get("random_weights"))
    return RunView(entry.number, entry.label, pictures, result.metrics, colour.to_dict(), dict(result.timings),
                   context.analysis.to_dict(), [str(w) for w in result.warnings], result.run_dir, random_weights,
                   getattr(context.prepared, "mask", None), dict(getattr(result, "adapters", None) or {}))


def _load(path: Path) -> Image.Image | None:
    if not path.is_file():
        return None
    with Image.open(path) as image:
        image.load()
        return image.copy()


def _from_folder(entry: HistoryEntry) -> RunView:
    folder = Path(entry.folder)
    record = entry.record or {}
    pictures: list[Picture] = []
    source = _load(folder / "source_prepared.png")
    if source is not None:
        pictures.append(Picture("source (prepared)", source, "zr-result-source"))
    controls = record.get("controls") if isinstance(record.get("controls"), dict) else {}
    for kind, info in controls.items():
        image = _load(folder / f"control_{kind}.png")
        if image is not None:
            method = info.get("method") if isinstance(info, dict) else None
            pictures.append(Picture(f"{kind} map ({method})" if method else f"{kind} map", image,
                                    f"zr-result-map-{kind}"))
    colour = record.get("colour") if isinstance(record.get("colour"), dict) else {}
    raw, output = _load(folder / "output_raw.png"), _load(folder / "output.png")
    if raw is not None:
        pictures.append(Picture("raw output", raw, "zr-result-raw"))
    if output is not None:
        caption = f"output ({colour.get('method')} {colour.get('strength', 0):g})" if colour else "output"
        pictures.append(Picture(caption, output, "zr-result-output"))
    models = record.get("models") if isinstance(record.get("models"), dict) else {}
    return RunView(entry.number, entry.label, pictures, metrics_from_record(record.get("metrics")), colour,
                   dict(record.get("timings") or {}), dict(record.get("background") or {}),
                   [str(w) for w in record.get("warnings") or []], folder, bool(models.get("random_weights")),
                   adapters=dict(record.get("adapters") or {}))


def metrics_from_record(data: Any) -> Any:
    """A MetricReport from a record's "metrics" (MetricReport.to_dict); None when there are none."""
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), list):
        return None
    from ..metrics.report import Metric, MetricReport

    values = []
    for item in data["metrics"]:
        try:
            low, high = item.get("range") or (None, None)
            values.append(Metric(item["name"], float(item["value"]), item.get("direction", "none"),
                                 (-math.inf if low is None else float(low), math.inf if high is None else float(high)),
                                 item.get("unit", ""), item.get("meaning", ""), item.get("group", "")))
        except (KeyError, TypeError, ValueError):
            continue
    size = data.get("common_size")
    series = {str(k): [float(v) for v in vs] for k, vs in (data.get("series") or {}).items() if isinstance(vs, list)}
    return MetricReport(data.get("kind", "pair"), values, tuple(size) if size else None, list(data.get("notes") or []),
                        series)


@dataclass
class RecordedClip:
    """A clip read back from its run folder, in the shape the Temporal tab's player reads (run_dir, metrics)."""

    run_dir: Path
    metrics: Any
    frames: Any = None
    fps: int = 8


def clip_of(entry: HistoryEntry) -> Any:
    """The clip to play for a temporal entry: its result object, or its run folder's files."""
    if entry.result is not None:
        return entry.result
    if entry.status != "completed" or entry.folder is None or not (Path(entry.folder) / "clip.mp4").is_file():
        raise LookupError(f"Run #{entry.number} {entry.status}: it has no clip to play.")
    record = entry.record or {}
    return RecordedClip(Path(entry.folder), metrics_from_record(record.get("metrics")))


__all__ = ["Picture", "RecordedClip", "RunView", "clip_of", "metrics_from_record", "view_of"]
