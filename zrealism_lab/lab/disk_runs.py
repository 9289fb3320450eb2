"""The runs already on disk: every run folder's record.json under the lab's output folder, read back as history
entries, so History survives a re-run of the cell or a kernel restart. No widgets here."""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from .state import HistoryEntry

RECORD_NAME = "record.json"
MAX_LOADED_RUNS = 200  # the newest ones; a folder of thousands of runs must not slow the first paint
_MAX_RECORD_BYTES = 5 * 2**20  # records are a few kB; anything far larger is not one of ours


def scan_runs(out_dir: Path | None, limit: int = MAX_LOADED_RUNS) -> list[tuple[Path, dict[str, Any]]]:
    """(run folder, record) of the newest ``limit`` runs under ``out_dir``, oldest first; unreadable ones are left."""
    if out_dir is None or not Path(out_dir).is_dir():
        return []
    found: list[tuple[str, Path, dict[str, Any]]] = []
    # Run folders are named by their start time, so the newest are read without parsing every record.
    paths = sorted(Path(out_dir).glob(f"*/{RECORD_NAME}"), key=lambda p: p.parent.name)[-2 * limit:]
    for path in paths:
        try:
            if path.stat().st_size > _MAX_RECORD_BYTES:
                continue
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("kind") in ("static", "temporal") and record.get("status"):
            found.append((str(record.get("started") or ""), path.parent, record))
    found.sort(key=lambda item: (item[0], item[1].name))
    return [(folder, record) for _, folder, record in found[-limit:]]


def settings_of(record: dict[str, Any]) -> Any:
    """The record's settings as StaticSettings or TemporalSettings; None when they no longer read (an older
    version's field, say): the run still lists, it only cannot be sent back to the Controls tab."""
    from ..errors import ZRealismError
    from ..settings import StaticSettings, TemporalSettings

    cls = TemporalSettings if record.get("kind") == "temporal" else StaticSettings
    try:
        return cls.from_dict(record.get("settings") or {})
    except (ZRealismError, TypeError, ValueError):
        return None


def source_label_of(record: dict[str, Any]) -> str:
    """How a recorded run's source is named: "sample dark", "upload" (bytes have no path), the file name, or "source
    not recorded" (cancelled and failed runs stop before their record names it)."""
    from ..source.samples import sample_path

    if not isinstance(record.get("source"), dict):
        return "source not recorded"
    path = record["source"].get("path")
    if not path:
        return "upload"
    path = Path(path)
    try:
        if path == sample_path(path.stem):
            return f"sample {path.stem}"
    except Exception:  # noqa: BLE001 - not a sample name: the file's own name
        pass
    return path.name


def seconds_of(record: dict[str, Any]) -> float:
    total = (record.get("timings") or {}).get("total") if isinstance(record.get("timings"), dict) else None
    if isinstance(total, (int, float)):
        return float(total)
    try:
        started = _dt.datetime.fromisoformat(record["started"])
        finished = _dt.datetime.fromisoformat(record["finished"])
        return max(0.0, (finished - started).total_seconds())
    except (KeyError, TypeError, ValueError):
        return 0.0


def entry_from_record(number: int, folder: Path, record: dict[str, Any]) -> HistoryEntry:
    """A history entry for a run folder (no result object: its pictures and metrics are read from the folder)."""
    status = str(record.get("status"))
    error = record.get("error")
    if isinstance(error, dict):
        error = error.get("message") or error.get("type")
    return HistoryEntry(number, status, settings_of(record), source_label_of(record), seconds_of(record),
                        error=None if error is None else str(error), folder=folder,
                        kind=str(record.get("kind")), record=record, from_disk=True)


def load_history(history: Any, out_dir: Path | None) -> int:
    """Put the runs on disk into ``history`` (a RunHistory), oldest first, leaving out folders it already has;
    returns how many were added."""
    known = {str(Path(e.run_dir)) for e in history.entries if e.run_dir is not None}
    added = 0
    for folder, record in scan_runs(out_dir):
        if str(folder) in known:
            continue
        history.add_entry(lambda number, f=folder, r=record: entry_from_record(number, f, r))
        added += 1
    return added


__all__ = ["MAX_LOADED_RUNS", "entry_from_record", "load_history", "scan_runs", "settings_of", "source_label_of"]
