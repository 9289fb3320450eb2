"""Small sweeps from the lab: a few values of one or two settings around the current settings, on the lab's own
engine, returned as a contact sheet and result rows (in memory, or as a full sweep folder when ``out_dir`` is given).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from PIL import Image

from ..errors import CancelledError, SettingsError
from ..models.modelset import RANDOM_WEIGHTS_CAPTION
from .contact import sheets_from_rows, sweep_contact_sheets
from .manifest import check_units, job_id
from .results import best_by_metric, cell_value
from .spec import SweepSpec, axes_from_mapping

ProgressHook = Callable[[int, int, Mapping[str, Any]], None]  # (jobs finished, jobs in all, the finished job's row)
MAX_SMALL_JOBS = 24


@dataclass
class SmallSweep:
    sheet: Image.Image  # the first (usually only) contact sheet page
    rows: list[dict[str, Any]]  # one per job: axis values, status, error, metrics
    pages: list[tuple[str, Image.Image]] = field(default_factory=list)  # (Z label, sheet) per page
    images: dict[str, Image.Image] = field(default_factory=dict)  # job id -> output image
    best: list[dict[str, Any]] = field(default_factory=list)  # best job per metric
    folder: Path | None = None  # the sweep folder when run with out_dir


def run_small_sweep(source: Any, base_settings: Any, axes: Mapping[str, Sequence[Any]], engine: Any,
                    on_progress: ProgressHook | None = None, *, out_dir: str | os.PathLike | None = None,
                    cancel: Any = None, max_jobs: int = MAX_SMALL_JOBS, cell: int = 112) -> SmallSweep:
    """Sweep ``axes`` (e.g. {"strength": [0.5, 0.7], "controls.depth.scale": [0.5, 1.0]}) around ``base_settings``
    (a StaticSettings or a mapping of its fields) for ``source`` (a path or a PIL image) on ``engine``.

    Every job is validated before the first one runs; a failed job becomes a 'failed' cell and row, and the sweep
    goes on. ``cancel`` (a CancelToken) stops it between or during jobs (CancelledError). With ``out_dir`` the jobs
    get run records, a manifest and results.json like `zrealism sweep` (resumable); without it nothing is written."""
    base = base_settings.to_dict() if hasattr(base_settings, "to_dict") else dict(base_settings)
    spec = SweepSpec(image="<lab source>", preset=engine.models.name, base=base, axes=axes_from_mapping(axes))
    jobs = spec.expand(engine.models.default_controls)
    if len(jobs) > max_jobs:
        raise SettingsError("axes", {a.name: list(a.values) for a in spec.axes}, f"at most {max_jobs} jobs in a lab "
                            f"sweep (these axes make {len(jobs)})",
                            "Use fewer values, or `zrealism sweep` for large sweeps (it resumes and scales out).")
    for job in jobs:
        check_units(job.settings, engine.models)
    if out_dir is not None:
        return _sweep_folder(source, spec, engine, on_progress, Path(out_dir), cancel, cell)

    from ..generate.static import run_static

    axis_dicts = [axis.to_dict() for axis in spec.axes]
    rows: list[dict[str, Any]] = []
    images: dict[str, Image.Image] = {}
    positions: dict[str, Sequence[int]] = {}
    source_image = None
    for job in jobs:
        if cancel is not None and getattr(cancel, "cancelled", False):
            raise CancelledError(f"sweep cancelled after {len(rows)} of {len(jobs)} jobs")
        ident = job_id({"settings": job.settings.to_dict(), "models": engine.models.to_dict()})
        positions[ident] = job.position
        row: dict[str, Any] = {"job": ident, "index": job.index, **_cells(job.coords), "seed": job.settings.seed}
        try:
            result = run_static(source, job.settings, engine=engine, cancel=cancel)
        except (CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:  # one job's failure is that job's, the sweep goes on
            row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        else:
            row.update(status="completed", error=None, seconds=result.timings.get("total"))
            if result.metrics is not None:
                row.update(result.metrics.flat())
            images[ident] = result.image
            source_image = source_image or result.context.prepared.image
        rows.append(row)
        if on_progress is not None:
            on_progress(len(rows), len(jobs), row)
    note = RANDOM_WEIGHTS_CAPTION if getattr(engine.models, "random_weights", False) else None
    pages = sheets_from_rows(axis_dicts, rows, images, source=source_image or _as_image(source), cell=cell,
                             note=note, positions=positions)
    names = [axis.name for axis in spec.axes]
    return SmallSweep(pages[0][1], rows, pages, images, best_by_metric(rows, axes=names))


def _cells(coords: Mapping[str, Any]) -> dict[str, Any]:
    return {name: cell_value(value) for name, value in coords.items()}


def _as_image(source: Any) -> Image.Image | None:
    if isinstance(source, Image.Image):
        return source
    try:
        with Image.open(source) as image:
            image.load()
            return image.convert("RGB")
    except Exception:  # the source thumbnail is a courtesy on the sheet
        return None


def _sweep_folder(source: Any, spec: SweepSpec, engine: Any, on_progress: ProgressHook | None, folder: Path,
                  cancel: Any, cell: int) -> SmallSweep:
    """The same sweep as `zrealism sweep`: manifest, run records, resume, results.json, contact sheet."""
    import dataclasses

    from .results import collect_rows
    from .runner import Processes, run_sweep

    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(source, Image.Image):
        path = folder / "source.png"
        source.save(path)
        source = path
    spec = dataclasses.replace(spec, image=str(Path(source).resolve()))

    def hook(done: int, total: int, state: Mapping[str, Any]) -> None:
        if on_progress is not None:
            rows = {row["job"]: row for row in collect_rows(folder)}
            on_progress(done, total, rows.get(state["id"], dict(state)))

    result = run_sweep(spec, folder, engine=engine, progress=False, on_job=hook, cancel=cancel,
                       processes=Processes(None))  # a notebook kernel is one process, whatever its environment says
    images: dict[str, Image.Image] = {}
    for row in result.rows:
        if row.get("output"):
            images[row["job"]] = _as_image(folder / row["output"])
    pages = sweep_contact_sheets(folder, cell=cell, rows=result.rows)
    names = [axis.name for axis in spec.axes]
    return SmallSweep(pages[0][1], result.rows, pages, images, best_by_metric(result.rows, axes=names), folder)
