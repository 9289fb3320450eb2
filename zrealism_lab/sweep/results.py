"""Sweep results: one row per job (its axis values, status, run folder and metrics), the best job per metric, and
reading a finished sweep folder back for notebooks and reports."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..files import atomic_write_json
from ..records import RECORD_NAME
from .manifest import RESULTS_NAME, completed_run, read_job_state, read_json, read_manifest, relative
from .spec import IMAGE_AXIS, format_value, image_label

RESULTS_FORMAT = 1
HIGHER, LOWER = "higher", "lower"


def cell_value(value: Any) -> Any:
    """Axis values as table/plot cells: lists (a controls axis) become their label, so they compare and hash."""
    if isinstance(value, (list, tuple, dict)):
        return format_value(value)
    return value


def job_row(folder: str | os.PathLike, job: Mapping[str, Any]) -> dict[str, Any]:
    """The row of one job: what it varied, how it ended, where its run is, and its metrics."""
    folder = Path(folder)
    row: dict[str, Any] = {"job": job["id"], "index": job["index"]}
    row.update({name: cell_value(value) for name, value in job["coords"].items()})
    if IMAGE_AXIS in job["coords"]:  # tables and plots name an image by its file; the path stays beside it
        row[IMAGE_AXIS] = image_label(job["coords"][IMAGE_AXIS])
        row["image_path"] = job["coords"][IMAGE_AXIS]
    row.setdefault("seed", job.get("seed"))
    state = read_job_state(folder, job["id"]) or {}
    run = completed_run(folder, job["id"])
    if run is not None:
        record = read_json(run / RECORD_NAME)
        shown = run_picture(run)
        row.update(status="completed", run_dir=relative(run, folder),
                   output=relative(shown, folder) if shown is not None else None,
                   seconds=(record.get("timings") or {}).get("total"), error=None)
        for metric in (record.get("metrics") or {}).get("metrics", []):
            row[metric["name"]] = metric["value"]
    elif state.get("status") == "failed":
        row.update(status="failed", run_dir=state.get("run_dir"), output=None, seconds=state.get("seconds"),
                   error=(state.get("error") or {}).get("message"))
    else:
        row.update(status="pending", run_dir=None, output=None, seconds=None, error=None)
    return row


RUN_PICTURES = ("output.png", "frames/frame_0001.png")  # a still's output; a clip's first frame


def run_picture(run: Path) -> Path | None:
    """The picture that stands for a run on sheets and in tables: a still's output, a clip's first frame."""
    return next((run / name for name in RUN_PICTURES if (run / name).is_file()), None)


def collect_rows(folder: str | os.PathLike, manifest: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    manifest = manifest if manifest is not None else read_manifest(folder)
    return [job_row(folder, job) for job in manifest["jobs"]]


def metric_columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The registered metric names that appear in the rows, in registry order."""
    from ..metrics import metric_names

    present = {key for row in rows for key in row}
    return [name for name in metric_names() if name in present]


def metric_direction(name: str) -> str:
    from ..metrics import METRICS

    try:
        return METRICS.get(name).direction
    except Exception:  # a metric this version does not know (an older or newer record): not rankable
        return "none"


def best_by_metric(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] | None = None,
                   axes: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """For each metric where higher or lower is better, the completed job that did best (ties: the first)."""
    done = [row for row in rows if row.get("status") == "completed"]
    names = list(metrics) if metrics is not None else metric_columns(done)
    table = []
    for name in names:
        direction = metric_direction(name)
        if direction not in (HIGHER, LOWER):
            continue
        scored = [row for row in done if _finite(row.get(name))]
        if not scored:
            continue
        pick = max if direction == HIGHER else min
        best = pick(scored, key=lambda row: float(row[name]))
        entry = {"metric": name, "better": direction, "value": float(best[name]), "job": best["job"]}
        for axis in axes or ():
            entry[axis] = best.get(axis)
        entry["run_dir"] = best.get("run_dir")
        table.append(entry)
    return table


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def failures(rows: Iterable[Mapping[str, Any]], axes: Sequence[str] = ()) -> list[dict[str, Any]]:
    return [{"job": row["job"], **{axis: row.get(axis) for axis in axes}, "error": row.get("error"),
             "run_dir": row.get("run_dir")} for row in rows if row.get("status") == "failed"]


def counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    tally = {"completed": 0, "failed": 0, "pending": 0}
    for row in rows:
        tally[row["status"]] = tally.get(row["status"], 0) + 1
    return tally


def write_results(folder: str | os.PathLike, manifest: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                  contact_sheets: Sequence[str | os.PathLike] = ()) -> Path:
    axes = [axis["name"] for axis in manifest["axes"]]
    data = {
        "format": RESULTS_FORMAT,
        "name": manifest.get("name"),
        "axes": manifest["axes"],
        "random_weights": manifest.get("random_weights", False),
        "counts": counts(rows),
        "metrics": [{"name": name, "better": metric_direction(name)} for name in metric_columns(rows)],
        "best": best_by_metric(rows, axes=axes),
        "runs": {row["job"]: row["run_dir"] for row in rows if row.get("run_dir")},
        "contact_sheets": [relative(p, folder) for p in contact_sheets],
        "rows": list(rows),
    }
    path = Path(folder) / RESULTS_NAME
    atomic_write_json(path, data)
    return path


def load_results(folder: str | os.PathLike) -> dict[str, Any]:
    """results.json of a sweep folder (rows re-read from the runs when the file is missing, e.g. mid-sweep)."""
    folder = Path(folder)
    path = folder / RESULTS_NAME
    if path.is_file():
        return read_json(path)
    manifest = read_manifest(folder)
    rows = collect_rows(folder, manifest)
    axes = [axis["name"] for axis in manifest["axes"]]
    return {"format": RESULTS_FORMAT, "name": manifest.get("name"), "axes": manifest["axes"],
            "random_weights": manifest.get("random_weights", False), "counts": counts(rows),
            "metrics": [{"name": n, "better": metric_direction(n)} for n in metric_columns(rows)],
            "best": best_by_metric(rows, axes=axes), "runs": {}, "contact_sheets": [], "rows": rows}
