"""GPU rows: fp16 512 px lab against bare diffusers, and the low-memory mode under a 6 GiB cap; without CUDA, the
same rows marked "not yet measured" so the table's shape does not depend on the machine."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .fullsize import bundle_folder, run_child
from .table import GIB, NO_GPU, Row, failed_row, format_list, format_value, row

SECTION = "GPU"
GPU_LOW_MEMORY_GIB = 6.0
GPU_LABELS = {"static": "fp16 still 512 px, 2 ControlNets, 20 steps", "clip": "fp16 16-frame clip 512 px, 20 steps"}
LOW_MEMORY_LABELS = {"still": f"{GPU_LOW_MEMORY_GIB:g} GiB cap: 512 px still",
                     "clip": f"{GPU_LOW_MEMORY_GIB:g} GiB cap: 16-frame 512 px clip"}
LOW_MEMORY_SEARCH = {"still": f"{GPU_LOW_MEMORY_GIB:g} GiB cap: largest still (long side)",
                     "clip": f"{GPU_LOW_MEMORY_GIB:g} GiB cap: most frames at 512 px"}


def gpu_row_names() -> list[str]:
    names = [f"{label}: {what}" for label in GPU_LABELS.values()
             for what in ("lab s/step", "bare diffusers s/step", "lab / bare s/step", "lab peak GPU memory",
                          "bare peak GPU memory")]
    names += [f"{label}, offload {offload}: completes" for offload in ("model", "sequential")
              for label in LOW_MEMORY_LABELS.values()]
    return names + list(LOW_MEMORY_SEARCH.values())


def gpu_rows(bundle: Path | None, on_line: Callable[[str], None]) -> list[Row]:
    """fp16 512 px rows against bare diffusers, and the 6 GiB low-memory mode; "not yet measured" without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return [Row(SECTION, name, None, status=NO_GPU) for name in gpu_row_names()]
    rows: list[Row] = []
    with bundle_folder(bundle) as folder:
        run_child("write", folder, {})
        on_line("  GPU: fp16 512 px static and 16-frame clip, lab and bare diffusers ...")
        try:
            rows += _fast_rows(run_child("gpu", folder, {}))
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
            rows.append(failed_row(SECTION, "fp16 512 px static and clip", exc))
        on_line(f"  GPU: low-memory mode under a {GPU_LOW_MEMORY_GIB:g} GiB cap ...")
        try:
            rows += _low_memory_rows(run_child("gpu-lowmem", folder, {"cap_gib": GPU_LOW_MEMORY_GIB}))
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
            rows.append(failed_row(SECTION, "low-memory mode", exc))
    return rows


def _fast_rows(fast: dict) -> list[Row]:
    rows: list[Row] = []
    for kind, label in GPU_LABELS.items():
        lab, bare = fast[kind]["lab"], fast[kind]["bare"]
        rows += [
            row(SECTION, f"{label}: lab s/step", lab["step"], "s/step", note=f"steps {format_list(lab['steps'])}"),
            row(SECTION, f"{label}: bare diffusers s/step", bare["step"], "s/step",
                note=f"steps {format_list(bare['steps'])}"),
            row(SECTION, f"{label}: lab / bare s/step", _ratio(lab["step"], bare["step"]), "x", "<= 1.05"),
            row(SECTION, f"{label}: lab peak GPU memory", lab["peak"] / GIB, "GiB"),
            row(SECTION, f"{label}: bare peak GPU memory", bare["peak"] / GIB, "GiB"),
        ]
    return rows


def _low_memory_rows(low: dict) -> list[Row]:
    rows: list[Row] = []
    for offload, result in low["modes"].items():
        for kind, label in LOW_MEMORY_LABELS.items():
            item = result[kind]
            rows.append(row(SECTION, f"{label}, offload {offload}: completes", item["ok"], "", "yes",
                            note=(f"{format_value(item.get('seconds'))} s, peak "
                                  f"{format_value(item.get('peak', 0) / GIB)} GiB"
                                  if item["ok"] else item.get("error", ""))))
    rows.append(row(SECTION, LOW_MEMORY_SEARCH["still"], low["largest_still"], "px",
                    note=f"offload model; tried {low['still_sizes']}"))
    rows.append(row(SECTION, LOW_MEMORY_SEARCH["clip"], low["most_frames"], "frames",
                    note=f"offload model; tried {low['frame_counts']}"))
    return rows


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None
