"""The lab's runs on disk: what a run folder's record says, and the PNG, record and report inputs exported from a
run of the session's history."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..reports.media import download_link
from .state import HistoryEntry


def record_status(run_dir: Path | None) -> str | None:
    """The status a run folder's record.json gives (None: no folder, no record, or an unreadable one)."""
    if run_dir is None or not (Path(run_dir) / "record.json").is_file():
        return None
    try:
        return json.loads((Path(run_dir) / "record.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def output_png(entry: HistoryEntry) -> bytes:
    """The run's output PNG: the run folder's file when there is one, since it carries the parameters metadata."""
    from ..files import png_bytes

    if entry.run_dir is not None and (Path(entry.run_dir) / "output.png").is_file():
        return (Path(entry.run_dir) / "output.png").read_bytes()
    return png_bytes(entry.result.image)


def record_of(entry: HistoryEntry) -> dict[str, Any]:
    """The run's record: the one it wrote, else the same facts gathered from the result (a run without a folder)."""
    result = entry.result
    if result.record:
        return dict(result.record)
    return {"status": result.status, "settings": result.settings.to_dict(), "prompt": result.context.prompt,
            "negative_prompt": result.context.negative_prompt, "background": result.context.analysis.to_dict(),
            "colour": result.colour.to_dict(), "metrics": result.metrics.to_dict() if result.metrics else None,
            "timings": result.timings, "warnings": list(result.warnings), "engine": result.engine}


def download_links_html(entry: HistoryEntry) -> str:
    png = output_png(entry)
    record = json.dumps(record_of(entry), indent=2, default=str).encode()
    stem = f"zrealism-run{entry.number}"
    return ("download: " + download_link(png, f"{stem}.png", "image/png", "output PNG", "zr-download-png")
            + download_link(record, f"{stem}.json", "application/json", "record JSON", "zr-download-record"))


def save_png(entry: HistoryEntry, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run{entry.number}-seed{entry.settings.seed}.png"
    path.write_bytes(output_png(entry))
    return path


def save_record(entry: HistoryEntry, folder: Path) -> Path:
    from ..files import atomic_write_json

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run{entry.number}-record.json"
    atomic_write_json(path, record_of(entry))
    return path


def report_parameters(entry: HistoryEntry, preset: str, folder: Path, known: dict[str, Any]) -> dict[str, Any]:
    """The static report notebook's parameters for re-running this run (only those the notebook declares)."""
    values: dict[str, Any] = {k: v for k, v in entry.settings.to_dict().items() if k in known}
    values["preset"] = preset
    source = getattr(entry.result.context.source, "path", None)
    if source:
        values["image"] = str(source)
    else:  # an upload: the report notebook reads a file, so keep the bytes beside the report
        from ..files import png_bytes

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"run{entry.number}-source.png"
        path.write_bytes(png_bytes(entry.result.context.source.image))
        values["image"] = str(path)
    return {k: v for k, v in values.items() if k in known}


__all__ = ["download_links_html", "output_png", "record_of", "record_status", "report_parameters", "save_png",
           "save_record"]
