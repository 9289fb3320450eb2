"""Full-size SD1.5 rows with random weights: the parent side, which writes the bundle once and asks a fresh child
process for each measurement (``python -m zrealism_lab.bench --child TASK``), so that one measurement's memory
never inherits another's heap."""
from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .overhead import stage_note
from .table import GIB, Row, failed_row, format_list, format_value, row

SECTION = "full size (random weights)"


@contextlib.contextmanager
def bundle_folder(bundle: Path | None) -> Iterator[Path]:
    """``bundle`` as it is, or a temporary folder removed afterwards (the ~8 GiB of full-size weights)."""
    if bundle is not None:
        yield Path(bundle)
        return
    folder = Path(tempfile.mkdtemp(prefix="zrealism-fullsize-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_child(task: str, bundle: Path, params: dict[str, Any], timeout: float = 3600) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter (``python -m zrealism_lab.bench --child TASK``)."""
    with tempfile.TemporaryDirectory(prefix="zrealism-bench-child-") as folder:
        result_file = Path(folder) / "result.json"
        command = [sys.executable, "-m", "zrealism_lab.bench", "--child", task, "--bundle", str(bundle),
                   "--params", json.dumps(params), "--result", str(result_file)]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0 or not result_file.is_file():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
            raise RuntimeError(f"child {task} failed (exit {proc.returncode}): {' | '.join(tail)}")
        return json.loads(result_file.read_text(encoding="utf-8"))


def fullsize_rows(bundle: Path | None, clip_frames: Sequence[int], on_line: Callable[[str], None]) -> list[Row]:
    """Full-size SD1.5 rows from child processes over a bundle of random weights written once."""
    rows: list[Row] = []
    with bundle_folder(bundle) as folder:
        on_line(f"  writing full-size random weights to {folder} ...")
        written = run_child("write", folder, {})
        rows.append(row(SECTION, "write the full-size bundle (build + save, once)", written["seconds"], "s",
                        note=f"{written['gib']:.1f} GiB on disk"
                             + ("; already there (--fullsize-dir), nothing written" if written.get("reused") else "")))
        on_line("  static engine: load, switch to temporal, memory, seconds per step ...")
        rows += _static_rows(run_child("static", folder, {"size": 256, "steps": 4, "strength": 0.5}))
        on_line("  temporal engine alone: load, memory, 8-frame seconds per step ...")
        rows += _temporal_rows(run_child("temporal", folder, {"size": 256, "frames": 8, "steps": 2,
                                                              "strength": 0.5}))
        rows += clip_rows(folder, clip_frames, on_line)
    return rows


def _static_rows(static: dict[str, Any]) -> list[Row]:
    rows = [
        row(SECTION, "load static parts from a safetensors folder (engine path)", static["load_static"], "s",
            note="UNet, VAE, text encoder, 2 ControlNets: from_pretrained "
                 f"{format_value(static['load_static_lazy'])} s (weights stay memory-mapped) + paging every "
                 f"weight in {format_value(static['page_in_static'])} s from a warm page cache"),
        row(SECTION, "load + page in motion adapter v1-5-2", static["load_adapter"], "s"),
        row(SECTION, "static -> temporal switch (first: builds the shared motion UNet)", static["switch"], "s",
            "< 1", f"components loaded during the switch: {static['loaded_during_switch'] or 'none'}; "
                   f"bytes read by read() (imports): {static['switch_read_bytes']}"),
        row(SECTION, "static <-> temporal switch again (cached pipelines)", static["switch_again"] * 1e3, "ms"),
        row(SECTION, "resident memory: static (RSS)", static["rss_static"] / GIB, "GiB",
            note=f"weights {static['static_weight_bytes'] / GIB:.2f} GiB; {_memory_note(static['mem_static'])}"),
        row(SECTION, "resident memory: static + temporal (RSS)", static["rss_both"] / GIB, "GiB",
            f"<= {(static['rss_static'] + static['motion_bytes']) * 1.10 / GIB:.2f}",
            f"target = (static + motion modules {static['motion_bytes'] / GIB:.2f} GiB) x 1.1; "
            f"{_memory_note(static['mem_both'])}"),
        row(SECTION, "static 256 px, 2 ControlNets, CFG: seconds per denoising step", static["step"], "s/step",
            note=f"lab run_static; steps {format_list(static['steps'])} s; whole run "
                 f"{format_value(static['seconds'])} s ({stage_note(static['timings'])})"),
    ]
    if static.get("unet_forward"):
        forward = static["unet_forward"]
        rows.append(row(SECTION, "UNet forward 256 px batch 2: channels_last / default", forward["ratio"], "x",
                        note=f"default {format_list(forward['default'])} s, channels_last "
                             f"{format_list(forward['channels_last'])} s; attention processor "
                             f"{forward['attention']}"))
    return rows


def _temporal_rows(temporal: dict[str, Any]) -> list[Row]:
    rows = [
        row(SECTION, "load temporal parts (engine path, fresh process)", temporal["load"], "s"),
        row(SECTION, "resident memory: temporal only (RSS)", temporal["rss_temporal"] / GIB, "GiB",
            note=_memory_note(temporal["mem_temporal"])),
        row(SECTION, "8-frame clip 256 px, 2 ControlNets, CFG: seconds per denoising step", temporal["step"],
            "s/step", note=f"lab run_temporal; steps {format_list(temporal['steps'])} s; whole run "
                           f"{format_value(temporal['seconds'])} s ({stage_note(temporal['timings'])})"),
    ]
    cost = temporal["free_noise"]
    rows.append(row(SECTION, "context windows on (clip longer than one window), then off again",
                    cost["on"] + cost["off"], "s", "< 1",
                    f"on {format_value(cost['on'])} s, off {format_value(cost['off'])} s; anonymous memory "
                    f"left behind {cost['anon_added'] / GIB:.2f} GiB"
                    + ("; diffusers' enable/disable_free_noise rebuild every motion transformer block and "
                       "copy its weights" if cost["on"] + cost["off"] >= 1 else "")))
    return rows


def clip_rows(folder: Path, clip_frames: Sequence[int], on_line: Callable[[str], None], section: str = SECTION
              ) -> list[Row]:
    """Peak memory against clip length, one fresh process per point."""
    rows: list[Row] = []
    peaks: dict[int, dict[str, Any]] = {}
    for frames in clip_frames:
        on_line(f"  clip length {frames} frames at 128 px (fresh process) ...")
        try:
            peaks[frames] = point = run_child("clip", folder, {"frames": frames, "size": 128})
            rows.append(row(section, f"peak RSS, {frames} frames 128 px, one step", point["peak"] / GIB, "GiB",
                            note=f"after loading {point['rss_loaded'] / GIB:.2f} GiB, generation adds "
                                 f"{(point['peak'] - point['rss_loaded']) / GIB:.2f} GiB; "
                                 f"{format_value(point['seconds'])} s ({stage_note(point['timings'])}); "
                                 f"context windows: {point['windows']}"))
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
            rows.append(failed_row(section, f"peak RSS, {frames} frames", exc))
    if len(peaks) >= 2:
        low, high = min(peaks), max(peaks)
        rows.append(row(section, f"peak RSS {high} frames / {low} frames", peaks[high]["peak"] / peaks[low]["peak"],
                        "x", "<= 1.2", "context windows (FreeNoise) + window-sized chunks"))
    return rows


def _memory_note(memory: dict[str, int]) -> str:
    if "anon" not in memory:
        return ""
    return f"anonymous {memory['anon'] / GIB:.2f} GiB, file-backed (mapped weights) {memory['file'] / GIB:.2f} GiB"
