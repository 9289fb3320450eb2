"""Batches (N runs of one source at seeds seed, seed+1, ...) and folders of source images, as A1111 and ComfyUI
users know them. Each run is an ordinary run (run_static / run_temporal: its own run folder and record.json, which
also says the run's place in its batch); a batch adds one grid image of its outputs and a small batch.json, in a
folder of its own beside the runs.

    OUT/
      <stamp>-static-<id>/     one run folder per seed (record.json has "batch": {"index": 1, "count": 4, ...})
      <stamp>-batch-<id>/      grid.png (the outputs; a clip's first frame) and batch.json (seeds, runs, status)
      <stamp>-images-<id>/     for a folder of images: summary.csv and summary.md (one row per run)

A batch of one is a plain run (no batch folder). A run that fails or is cancelled stops its batch: the finished
runs stay, the stopped run's folder keeps its 'failed' / 'cancelled' record (as any run does), batch.json says
where it stopped, and the error is raised again.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import math
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from PIL import Image

from ..errors import CancelledError, IntakeError, SettingsError
from ..files import atomic_write_bytes, atomic_write_json, atomic_write_text, check_output_root, png_bytes
from ..records import RECORD_NAME, read_record
from ..settings import SPECS, StaticSettings, TemporalSettings
from .result import RunResult

RANDOM_SEED = -1  # a batch's seed of -1: draw one seed, count up from it
MAX_BATCH_COUNT = 100
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")  # what a folder of source images is scanned for
BATCH_FORMAT = 1
BATCH_NAME = "batch.json"
GRID_NAME = "grid.png"
SUMMARY_CSV, SUMMARY_MD = "summary.csv", "summary.md"

RunCallback = Callable[[int, int, RunResult], None]  # (run number from 1, runs in the batch, the finished run)


@dataclass
class BatchResult:
    kind: Literal["static", "temporal"]
    seeds: list[int]  # every planned seed, in order
    results: list[RunResult]  # the finished runs, in seed order (fewer than seeds when the batch stopped)
    status: Literal["completed", "failed", "cancelled"]
    random_seed: bool = False  # the first seed was drawn
    error: str | None = None  # why the batch stopped
    stopped_run: Path | None = None  # the stopped run's folder, when it had one
    folder: Path | None = None  # the batch folder (grid.png, batch.json); None without out_dir
    grid: Image.Image | None = None
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.seeds)

    @property
    def run_dirs(self) -> list[Path]:
        return [r.run_dir for r in self.results if r.run_dir is not None]

    @property
    def images(self) -> list[Image.Image]:
        return [first_image(r) for r in self.results]


# --------------------------------------------------------------------------------- seeds
def draw_seed(count: int = 1) -> int:
    """A random first seed that leaves room for ``count`` seeds counting up from it (as the lab's dice button)."""
    top = int(SPECS["seed"].maximum)
    return secrets.randbelow(top - max(1, count) + 2)


def batch_seeds(seed: int, count: int) -> list[int]:
    """seed, seed+1, ... for ``count`` runs; a bad count, or one that would run past the last seed, is refused."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_BATCH_COUNT:
        raise SettingsError("batch_count", count, f"a whole number from 1 to {MAX_BATCH_COUNT}")
    top = int(SPECS["seed"].maximum)
    if seed + count - 1 > top:
        raise SettingsError("batch_count", count, f"at most {top - seed + 1} with seed {seed}",
                            f"A batch counts its seeds up from the first and the last seed is {top}: lower the seed, "
                            f"or use seed {RANDOM_SEED} to draw one.")
    return [seed + i for i in range(count)]


def _first_seed(settings: Any, count: int) -> tuple[Any, bool]:
    """The settings with their seed fixed (drawn when it is RANDOM_SEED) and whether it was drawn."""
    if settings.seed == RANDOM_SEED:
        return settings.replace(seed=draw_seed(count)), True
    return settings, False


# --------------------------------------------------------------------------------- the batch
def run_static_batch(source: Any, settings: StaticSettings | dict | None = None, *, count: int = 4,
                     engine: Any = None, models: Any = "realistic-vision", out_dir: str | os.PathLike | None = None,
                     on_step: Any = None, on_run: RunCallback | None = None, cancel: Any = None,
                     preview_every: int = 5, evaluate: bool = True, device: str = "auto",
                     offload: str = "auto") -> BatchResult:
    """``count`` static runs of ``source`` at seeds settings.seed, +1, ... (seed -1: one drawn seed, counted up).
    Settings, source and count are checked before any model loads; the engine is loaded once and shared."""
    from .static import run_static

    settings, drawn, seeds = _batch_settings(StaticSettings, settings, count)
    source = _checked_source(source)
    if out_dir is not None:
        check_output_root(out_dir)

    def run_one(seed: int) -> RunResult:
        return run_static(source, settings.replace(seed=seed), models=models, engine=engine, out_dir=out_dir,
                          on_step=on_step, cancel=cancel, preview_every=preview_every, evaluate=evaluate,
                          device=device, offload=offload)

    return _run_batch("static", run_one, seeds, drawn, out_dir, on_run, cancel)


def run_temporal_batch(source: Any = None, settings: TemporalSettings | dict | None = None, *, clip: Any = None,
                       count: int = 4, engine: Any = None, models: Any = "realistic-vision",
                       out_dir: str | os.PathLike | None = None, on_step: Any = None,
                       on_run: RunCallback | None = None, cancel: Any = None, preview_every: int = 5,
                       evaluate: bool = True, device: str = "auto", offload: str = "auto") -> BatchResult:
    """``count`` temporal runs (a still or a clip, as run_temporal takes them) at seeds settings.seed, +1, ...;
    the grid shows each clip's first frame."""
    from ..source.video import Clip, validate_clip_path
    from .temporal import run_temporal

    settings, drawn, seeds = _batch_settings(TemporalSettings, settings, count)
    if (source is None) == (clip is None):
        raise SettingsError("source/clip", "both" if source is not None else "neither",
                            "exactly one: a still (StaticResult, image or image path) or an input clip")
    source = _checked_source(source)
    if clip is not None and not isinstance(clip, Clip):
        validate_clip_path(clip)
    if out_dir is not None:
        check_output_root(out_dir)

    def run_one(seed: int) -> RunResult:
        return run_temporal(source, settings.replace(seed=seed), clip=clip, engine=engine, models=models,
                            out_dir=out_dir, on_step=on_step, cancel=cancel, preview_every=preview_every,
                            evaluate=evaluate, device=device, offload=offload)

    return _run_batch("temporal", run_one, seeds, drawn, out_dir, on_run, cancel)


def _batch_settings(settings_class: Any, settings: Any, count: int) -> tuple[Any, bool, list[int]]:
    """The checked settings with the first seed (drawn for seed -1), whether it was drawn, and every seed."""
    settings, drawn = _first_seed(settings_class.coerce(settings), count)
    settings = settings.validated()
    return settings, drawn, batch_seeds(settings.seed, count)


def _checked_source(source: Any) -> Any:
    """``sample:NAME`` resolved, and an image path checked, before any model loads."""
    from ..source.intake import validate_image_path
    from ..source.samples import resolve_source

    source = resolve_source(source)
    if isinstance(source, (str, os.PathLike)):
        validate_image_path(source)
    return source


def _run_batch(kind: Literal["static", "temporal"], run_one: Callable[[int], RunResult], seeds: list[int],
               drawn: bool, out_dir: str | os.PathLike | None, on_run: RunCallback | None, cancel: Any
               ) -> BatchResult:
    start = time.perf_counter()
    batch = BatchResult(kind, seeds, [], "completed", random_seed=drawn)
    ident = secrets.token_hex(3)
    place = {"id": ident, "count": len(seeds), "first_seed": seeds[0], "random_seed": drawn}
    try:
        for number, seed in enumerate(seeds, start=1):
            if cancel is not None and getattr(cancel, "cancelled", False):
                raise CancelledError(f"batch cancelled before run {number} of {len(seeds)}")
            result = run_one(seed)
            _mark_record(result.run_dir, {**place, "index": number, "seed": seed}, result)
            batch.results.append(result)
            if on_run is not None:
                on_run(number, len(seeds), result)
    except BaseException as exc:  # a failed, cancelled or interrupted run stops the batch; what finished stays
        number = len(batch.results) + 1
        batch.status = "cancelled" if isinstance(exc, (CancelledError, KeyboardInterrupt)) else "failed"
        batch.stopped_run = getattr(exc, "run_dir", None)
        batch.error = (f"the batch stopped at run {number} of {len(seeds)} (seed {seeds[number - 1]}): "
                       f"{type(exc).__name__}: {exc}".rstrip(": ") + f"; {len(batch.results)} finished run(s) kept")
        _mark_record(batch.stopped_run, {**place, "index": number, "seed": seeds[number - 1]})
        batch.seconds = time.perf_counter() - start
        if out_dir is not None and len(seeds) > 1 and (batch.results or batch.stopped_run is not None):
            _write_batch(batch, out_dir)
        try:
            exc.batch = batch  # callers (the CLI, folder runs) say what was kept
        except AttributeError:  # an exception type without a __dict__
            pass
        raise
    batch.seconds = time.perf_counter() - start
    batch.grid = make_grid(batch.images)
    if out_dir is not None and len(seeds) > 1:  # a batch of one is a plain run: no grid of one picture
        _write_batch(batch, out_dir)
    return batch


def _mark_record(run_dir: Path | None, place: dict[str, Any], result: RunResult | None = None) -> None:
    """Add the run's place in its batch to its record.json (written atomically, as the record itself was)."""
    if run_dir is None or not (Path(run_dir) / RECORD_NAME).is_file():
        return
    record = read_record(run_dir)
    record["batch"] = place
    atomic_write_json(Path(run_dir) / RECORD_NAME, record)
    if result is not None:
        result.record = record


def first_image(result: RunResult) -> Image.Image:
    """A run's picture: a still's output, a clip's first frame."""
    frames = getattr(result, "frames", None)
    return frames[0] if frames else result.image  # type: ignore[attr-defined]


def make_grid(images: Sequence[Image.Image], columns: int | None = None) -> Image.Image | None:
    """The images on a plain grid (A1111's layout: about as many columns as rows, ceil(sqrt(n)) of them), each cell
    the first image's size; None for no images."""
    if not images:
        return None
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    width, height = images[0].size
    grid = Image.new("RGB", (columns * width, rows * height), (255, 255, 255))
    for index, image in enumerate(images):
        tile = image.convert("RGB")
        if tile.size != (width, height):  # clips of other inputs may differ in size: fit them to the cell
            tile = tile.resize((width, height), Image.LANCZOS)
        grid.paste(tile, ((index % columns) * width, (index // columns) * height))
    return grid


def new_side_folder(out_dir: str | os.PathLike, kind: str) -> Path:
    """A folder beside the run folders, named like them (time, kind, short hash) and never shared."""
    root = check_output_root(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    while True:
        now = _dt.datetime.now()
        folder = root / f"{now.strftime('%Y%m%d-%H%M%S')}{now.microsecond // 1000:03d}-{kind}-{secrets.token_hex(3)}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


def _write_batch(batch: BatchResult, out_dir: str | os.PathLike) -> None:
    folder = new_side_folder(out_dir, "batch")
    runs = []
    for number, (seed, result) in enumerate(zip(batch.seeds, batch.results), start=1):
        runs.append({"index": number, "seed": seed, "status": "completed",
                     "run_dir": _relative(result.run_dir, folder.parent),
                     "seconds": round(result.timings.get("total", 0.0), 3),
                     "metrics": headline_metrics(result)})
    if batch.status != "completed":
        number = len(batch.results) + 1
        runs.append({"index": number, "seed": batch.seeds[number - 1], "status": batch.status,
                     "run_dir": _relative(batch.stopped_run, folder.parent), "error": batch.error})
    if batch.results:
        batch.grid = batch.grid or make_grid(batch.images)
        atomic_write_bytes(folder / GRID_NAME, png_bytes(batch.grid))
    atomic_write_json(folder / BATCH_NAME, {
        "format": BATCH_FORMAT, "kind": "batch", "run_kind": batch.kind, "status": batch.status,
        "count": batch.count, "first_seed": batch.seeds[0], "random_seed": batch.random_seed, "seeds": batch.seeds,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(), "seconds": round(batch.seconds, 3),
        "grid": GRID_NAME if batch.results else None, "error": batch.error, "runs": runs})
    batch.folder = folder


def _relative(path: Path | None, root: Path) -> str | None:
    """A run folder named relative to the output folder (run and batch folders sit side by side there)."""
    if path is None:
        return None
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def headline_metrics(result: RunResult) -> dict[str, float]:
    """The run's headline metrics (the registry marks them), rounded for tables."""
    from ..metrics import metric_names

    if result.metrics is None:
        return {}
    headline = set(metric_names(headline_only=True))
    return {name: round(value, 4) for name, value in result.metrics.flat().items() if name in headline}


# --------------------------------------------------------------------------------- folders of images
def list_images(folder: str | os.PathLike) -> list[Path]:
    """The source images of a folder: png, jpg, jpeg and webp files, sorted by name, hidden files skipped. A folder
    without one is an error (raised before any model loads)."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise IntakeError(f"'{path}' is not a folder of images. Give a folder holding "
                          f"{', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES)} files, or one image file.")
    found = sorted((p for p in path.iterdir() if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
                    and p.is_file()), key=lambda p: p.name)
    if not found:
        raise IntakeError(f"the folder '{path}' holds no source images: a folder input takes "
                          f"{', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES)} files (hidden files are skipped). "
                          "Put images in it, or give one image file.")
    return found


@dataclass
class FolderResult:
    rows: list[dict[str, Any]]  # one per run (and one per image that failed): image, run_dir, seed, seconds, ...
    batches: list[BatchResult] = field(default_factory=list)
    folder: Path | None = None  # where summary.csv and summary.md are
    table: str = ""  # the markdown summary

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["status"] != "completed"]


def run_static_folder(folder: str | os.PathLike, settings: StaticSettings | dict | None = None, *, count: int = 1,
                      out_dir: str | os.PathLike | None = None,
                      on_image: Callable[[Path, list[dict[str, Any]]], None] | None = None,
                      **run_options: Any) -> FolderResult:
    """Every image of ``folder`` (see list_images) as a static batch of ``count`` runs (one run folder each). An
    image that cannot be read or whose run fails is that image's failure: it is reported and the others go on.
    Cancel and Ctrl-C stop the whole folder. Writes summary.csv and summary.md under ``out_dir``."""
    images = list_images(folder)
    # one drawn seed for the whole folder: each image at the same seeds
    settings, _, _ = _batch_settings(StaticSettings, settings, count)
    root = check_output_root(out_dir) if out_dir is not None else None
    result = FolderResult([])
    try:
        for image in images:
            rows = _run_image(image, settings, count, out_dir, root, result, run_options)
            result.rows += rows
            if on_image is not None:
                on_image(image, rows)
    except BaseException as exc:  # cancel or Ctrl-C: the summary still lists what finished
        _finish_folder(result, out_dir)
        try:
            exc.folder_result = result
        except AttributeError:
            pass
        raise
    _finish_folder(result, out_dir)
    return result


def _run_image(image: Path, settings: StaticSettings, count: int, out_dir: Any, root: Path | None,
               result: FolderResult, run_options: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        batch = run_static_batch(image, settings, count=count, out_dir=out_dir, **run_options)
    except (CancelledError, KeyboardInterrupt) as exc:
        if getattr(exc, "batch", None) is not None:
            result.batches.append(exc.batch)
            result.rows += _batch_rows(image, exc.batch, root)
        raise
    except Exception as exc:  # this image's failure; the next image goes on
        batch = getattr(exc, "batch", None)
        if batch is None:  # it failed before any run started (an unreadable file, say)
            return [_row(image, None, settings.seed, None, "failed", f"{type(exc).__name__}: {exc}")]
    result.batches.append(batch)
    return _batch_rows(image, batch, root)


def _finish_folder(result: FolderResult, out_dir: Any) -> None:
    result.table = summary_markdown(result.rows)
    if out_dir is not None and result.rows:
        result.folder = write_summary(result.rows, out_dir)


def _row(image: Path, run_dir: str | None, seed: int, seconds: float | None, status: str, error: str | None,
         metrics: dict[str, float] | None = None) -> dict[str, Any]:
    return {"image": image.name, "run_dir": run_dir or "", "seed": seed,
            "seconds": round(seconds, 2) if seconds is not None else None, "status": status, "error": error or "",
            **(metrics or {})}


def _batch_rows(image: Path, batch: BatchResult, root: Path | None) -> list[dict[str, Any]]:
    def where(run_dir: Path | None) -> str | None:
        return _relative(run_dir, root) if root is not None else (str(run_dir) if run_dir else None)

    rows = [_row(image, where(r.run_dir), seed, r.timings.get("total"), "completed", None, headline_metrics(r))
            for seed, r in zip(batch.seeds, batch.results)]
    if batch.status != "completed":
        rows.append(_row(image, where(batch.stopped_run), batch.seeds[len(batch.results)], None, batch.status,
                         batch.error))
    return rows


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    base = ["image", "run_dir", "seed", "seconds", "status", "error"]
    return base + [key for key in dict.fromkeys(k for row in rows for k in row) if key not in base]


def summary_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a markdown table (what the CLI prints and summary.md holds)."""
    columns = _columns(rows)

    def cell(value: Any) -> str:
        text = "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_summary(rows: Sequence[dict[str, Any]], out_dir: str | os.PathLike) -> Path:
    """summary.csv and summary.md in a folder of their own beside the run folders."""
    folder = new_side_folder(out_dir, "images")
    columns = _columns(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(folder / SUMMARY_CSV, buffer.getvalue())
    atomic_write_text(folder / SUMMARY_MD, summary_markdown(rows))
    return folder
